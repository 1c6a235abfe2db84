"""Terminal output: tables that fit 80 and 120 columns without cutting values, literal text (no rich markup),
one-line --source errors, help without type noise, and --no-flow ingests that never import Prefect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quantlake.cli import app
from quantlake.display import Col, console, print_table
from quantlake.errors import UserInputError

RUN_ID = "0123456789abcdef0123456789abcdef"
PATH = "/home/user/.quantlake/reports/equity_sweep/ema_cross_SPY_2010-2017_a1b2c3/heatmap.html"
ROWS = [
    {"run_id": RUN_ID, "name": "ema_cross SPY,AAPL,GOOG 2010-2017 a1b2c3", "sharpe": 1.23456, "dd": -0.1234,
     "trades": 1234.0, "reason": "close outside [low, high] on 3 rows of the vendor file", "path": PATH},
    {"run_id": "fedcba9876543210", "name": "rsi SPY 2010-2017", "sharpe": float("nan"), "dd": -0.5,
     "trades": 3, "reason": "ok", "path": "/x/y.html"},
]
COLS = [Col("run_id", "run", "id"), Col("name"), Col("sharpe", kind="float"), Col("dd", "max dd", "pct"),
        Col("trades", kind="int"), Col("reason"), Col("path", kind="path", optional=True)]


def _render(width: int) -> tuple[str, object]:
    con = console(width=width)
    with con.capture() as cap:
        lay = print_table(ROWS, COLS, title="runs", out=con)
    return cap.get(), lay


def _words(text: str) -> list[str]:
    return text.replace("│", " ").replace("┃", " ").split()


@pytest.mark.parametrize("width", [80, 120])
def test_table_fits_the_width_and_keeps_every_value(width: int) -> None:
    out, lay = _render(width)
    assert max(len(line) for line in out.splitlines()) <= width
    words = _words(out)
    # ids abbreviated to 8 characters, counts as integers, fractions as percentages, floats to 4 digits
    assert "01234567" in words and RUN_ID not in out
    assert "1,234" in words and "3" in words and "1234.0" not in out
    assert "-12.3%" in words and "-50.0%" in words and "1.235" in words
    # wrapped, never truncated: every word of every text value is there, markup characters included
    for word in ["ema_cross", "SPY,AAPL,GOOG", "2010-2017", "a1b2c3", "close", "outside", "[low,", "high]"]:
        assert word in words, (word, out)
    assert "…" not in out
    # a path is shown whole or not at all (then the footer says so)
    if PATH in out:
        assert width == 120 or lay.pivoted  # type: ignore[attr-defined]
    else:
        assert "not shown at this width: path" in out
        assert not any(part in out for part in ("/home/user", "heatmap.html"))


def test_too_narrow_pivots_to_one_line_per_field() -> None:
    out, lay = _render(50)
    assert lay.pivoted  # type: ignore[attr-defined]
    assert f"path    {PATH}" in out  # one unbroken line per field, the path whole
    assert "reason  close outside [low, high] on 3 rows of the vendor file" in out


def test_wrong_source_is_one_line_listing_the_valid_sources(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"QUANTLAKE_HOME": str(tmp_path), "COLUMNS": "80"}
    for args, valid in [
        (["ingest", "equity", "--source", "fred"], "sample, csv, yahoo"),
        (["ingest", "options", "--source", "fred"], "sample, csv, yahoo"),
        (["ingest", "macro", "--source", "yahoo"], "sample, fred"),
    ]:
        res = runner.invoke(app, args, env=env)
        assert isinstance(res.exception, UserInputError) and res.exception.exit_code == 2  # main(): exit 2
        msg = str(res.exception)
        assert f"valid sources for {args[1]}: {valid}" in msg and "\n" not in msg


def test_help_lists_only_valid_sources_and_no_type_noise() -> None:
    runner = CliRunner()
    helps = {kind: runner.invoke(app, ["ingest", kind, "--help"], env={"COLUMNS": "120"}).output
             for kind in ("equity", "options", "macro", "cot")}
    assert "sample | csv | yahoo" in helps["equity"] and "fred" not in helps["equity"]
    flat = " ".join(helps["options"].replace("│", " ").split())  # the help wraps inside its box
    assert "sample | csv | yahoo" in flat and "fred" not in flat
    assert "sample | fred" in helps["macro"]
    for text in helps.values():
        assert "<bool>" not in text and "<list[str]>" not in text and "<str>" not in text
        assert "--no-flow" in text


def _ql(args: list[str], home: Path, code: str = "") -> subprocess.CompletedProcess[str]:
    script = f"import sys; sys.argv = ['quantlake', *{args!r}]\nfrom quantlake.cli import main\n" + (
        "try:\n    main()\nfinally:\n" + "".join(f"    {line}\n" for line in code.splitlines()) if code else "main()\n"
    )
    env = {**os.environ, "QUANTLAKE_HOME": str(home), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


def test_no_flow_ingest_never_imports_prefect_and_prints_reasons_literally(tmp_path: Path) -> None:
    data = tmp_path / "vendor"
    data.mkdir()
    (data / "ABC.csv").write_text(
        "date,open,high,low,close,volume\n2024-01-02,10,11,9,10.5,1000\n2024-01-03,10.5,11,10,12,1200\n"
        "2024-01-04,10.8,11.2,10.1,11,900\n"
    )
    res = _ql(["ingest", "equity", "--source", "csv", "--path", str(data), "--no-flow", "--no-progress"], tmp_path,
              code="print('PREFECT_IMPORTED', 'prefect' in sys.modules)")
    assert res.returncode == 0, res.stderr
    assert "PREFECT_IMPORTED False" in res.stdout
    assert "close outside [low, high]" in res.stdout  # literal, not eaten as rich markup
    assert "Traceback" not in res.stderr


def test_error_lines_are_printed_literally(tmp_path: Path) -> None:
    res = _ql(["query", "select * from \"no_such_table_[x]\""], tmp_path)
    assert res.returncode == 2
    assert "no_such_table_[x]" in res.stderr
    assert res.stderr.count("\n") == 1


@pytest.mark.parametrize("width", [80, 120])
def test_sweep_summary_fits(width: int) -> None:
    from backtests.equity.cli import _print

    digest = {
        "top": [{"fast": 10, "slow": 50, "symbol": "SPY", "sharpe": 1.2345, "total_return": 0.4567,
                 "max_drawdown": -0.2356, "trades": 42.0, "win_rate": 0.55, "sortino": 1.9, "calmar": 0.8}] * 3,
        "metrics": {"best.sharpe": 1.2345, "dsr.dsr": 0.9123, "pbo.pbo": 0.25, "n_trials": 175.0},
        "timing": {"backtests_per_s": 1234.5},
        "files": {"heatmap": "/very/long/path/to/reports/equity/ema_cross_sample-20240101-120000/heatmap.html"},
        "run_id": RUN_ID,
    }
    con = console(width=width)
    with con.capture() as cap:
        _print(con, digest)
    out = cap.get()
    assert max(len(line) for line in out.splitlines() if "heatmap:" not in line) <= width
    words = _words(out)
    assert "-23.6%" in words and "42" in words and "45.7%" in words and "25.0%" in words and "175" in words
    assert "heatmap: /very/long/path/to/reports/equity/ema_cross_sample-20240101-120000/heatmap.html" in out
    assert RUN_ID in out  # the full id where it is meant to be copied


@pytest.mark.parametrize("width", [80, 120])
def test_features_list_fits(width: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import features.build

    rows = [{"table": "features_options", "key": "quote_date, underlying, expiry, strike, right", "version": 3,
             "rows": 1234567, "from": "2018-04-27", "to": "2018-06-29",
             "inputs": "option_quotes@4, macro_series@2, equity_bars@7", "description": ""},
            {"table": "features_positioning", "key": "market_code, report_type, report_date", "version": None,
             "rows": None, "from": None, "to": None, "inputs": "", "description": ""}]
    monkeypatch.setattr(features.build, "table_status", lambda lake: rows)
    res = CliRunner().invoke(app, ["features", "list"],
                             env={"COLUMNS": str(width), "QUANTLAKE_HOME": str(tmp_path)})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= width and len(lines) < 25
    words = _words(res.output)
    assert "1,234,567" in words and "features_positioning" in words and "not" in words
    if width >= 120:
        assert "option_quotes@4," in words


def test_rejects_and_query_print_text_literally_and_fit(tmp_path: Path) -> None:
    """`quantlake rejects` printed `close outside` with `[low, high]` eaten as rich markup; query tables fit
    the terminal and show numbers as stored."""
    data = tmp_path / "vendor"
    data.mkdir()
    (data / "ABC.csv").write_text(
        "date,open,high,low,close,volume\n2024-01-02,10,11,9,10.5,1000\n2024-01-03,10.5,11,10,12,1200\n"
    )
    runner = CliRunner()
    env = {"QUANTLAKE_HOME": str(tmp_path / "home"), "COLUMNS": "80"}
    res = runner.invoke(app, ["ingest", "equity", "--source", "csv", "--path", str(data), "--no-flow",
                              "--no-progress"], env=env)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["rejects"], env=env)
    assert res.exit_code == 0, res.output
    assert "close outside [low, high]" in " ".join(res.output.replace("│", " ").split())
    assert str(data / "ABC.csv") in res.output  # the file path whole (the long path makes it one line per field)
    res = runner.invoke(app, ["query", "select symbol, close, volume from equity_bars"], env=env)
    assert res.exit_code == 0 and "10.5" in res.output and "1000" in res.output
