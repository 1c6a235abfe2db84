"""The CLI as a user meets it: --help everywhere, one clear line and exit 2 for mistakes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from quantlake.cli import app

EXE = [sys.executable, "-m", "quantlake.cli"]


def run(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTLAKE_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``run`` through the entry point in this process (``quantlake.cli.main``: the same exit codes and
    output; no interpreter start and no Prefect API start per command)."""
    from clirun import run_main

    def call(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("QUANTLAKE_HOME", str(home))
        monkeypatch.setenv("COLUMNS", "200")
        code, out, err = run_main(monkeypatch, capsys, *args)
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        out.append(path)
        if hasattr(cmd, "commands"):  # a group (typer may vendor its own click)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])

    walk(root, [])
    return out


def test_help_on_every_command() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    paths = _all_command_paths()
    assert ["lake", "tables"] in paths and ["query"] in paths and ["ingest", "equity"] in paths
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "Usage" in res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ingest", "equity", "--symbols", "BAD SYMBOL!"], "invalid symbol"),
        (["ingest", "equity", "--symbols", "ZZZZ"], "unknown symbol(s) for source 'sample': ZZZZ"),
        (["ingest", "equity", "--start", "2020-13-01"], "Invalid value for '--start'"),
        (["ingest", "equity", "--source", "nope"], "valid sources for equity: sample, csv, yahoo"),
        (["ingest", "equity", "--source", "csv"], "needs --path"),
        (["ingest", "options", "--source", "csv"], "needs --path"),
        (["ingest", "options", "--source", "csv", "--path", "/no/such/dir"], "does not exist"),
        (["ingest", "options", "--source", "csv", "--path", "/", "--format", "nope"], "Invalid value for '--format'"),
        (["ingest", "options", "--underlying", "SPX"], "are options of --source csv"),
        (["query", "select * from equity_bars"], "does not exist"),
        (["lake", "history", "equity_bars"], "does not exist"),
        (["query", "select 1", "--as-of", "equity_bars"], "TABLE=VERSION"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    res = run(args, tmp_path)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_chain_files_through_the_cli(tmp_path: Path, cli: Any) -> None:
    """``ingest options --source csv``: a file that is no chain file stops with its name; a chain file lands
    with its counts, quarantine reasons and the run's notes printed."""
    d = tmp_path / "chains"
    d.mkdir()
    (d / "x.csv").write_text("date,close\n2020-01-01,3\n")
    res = cli(["ingest", "options", "--source", "csv", "--path", str(d)], tmp_path)
    assert res.returncode == 2 and "x.csv: the header (date, close) matches no chain layout" in res.stderr
    assert "Traceback" not in res.stderr
    (d / "x.csv").write_text(
        "underlying,underlying_last,exchange,optionroot,type,expiration,quotedate,strike,last,net,bid,ask,volume,"
        "openinterest,impliedvol,delta,gamma\n"
        "SPX,2876.32,CBOE,SPXW190520C02900000,call,05/20/2019,05/16/2019,2900,1,0,3.1,3.3,10,5,0.12,0.3,0.01\n"
        "SPX,2876.32,CBOE,SPXW190520C02950000,call,05/20/2019,05/16/2019,2950,1,0,3.5,3.3,10,5,0.12,0.3,0.01\n"
    )
    res = cli(["ingest", "options", "--source", "csv", "--path", str(d), "--no-progress"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "bid > ask" in res.stdout and "layout daily" in res.stdout
    assert "SPX: no equity_bars in the lake" in res.stdout
    q = cli(["query", "select root, settlement, strike from option_quotes", "-f", "csv"], tmp_path)
    assert q.stdout.splitlines()[1:] == ["SPXW,PM,2900.0"]


def test_malformed_file_is_a_user_error(tmp_path: Path) -> None:
    d = tmp_path / "vendor"
    d.mkdir()
    (d / "ACME.csv").write_text("day;px\n2020-01-01;3\n")
    res = run(["ingest", "equity", "--source", "csv", "--path", str(d)], tmp_path)
    assert res.returncode == 2
    assert "ACME.csv: missing required column(s)" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_ingest_query_and_quarantine_end_to_end(tmp_path: Path, cli: Any) -> None:
    home = tmp_path / "home"
    first = cli(["ingest", "equity", "--source", "sample", "--no-progress"], home)
    assert first.returncode == 0, first.stderr
    again = cli(["ingest", "equity", "--source", "sample", "--no-progress"], home)
    assert again.returncode == 0, again.stderr
    q = cli(["query", "select symbol, count(*) n from equity_bars group by 1 order by 1", "-f", "json"], home)
    rows = json.loads(q.stdout)
    assert {r["symbol"] for r in rows} >= {"SPY", "AAPL", "GOOG", "INTC", "^VIX", "^GSPC"}
    hist = cli(["lake", "history", "equity_bars"], home)
    assert hist.returncode == 0
    # the second ingest committed nothing: still version 0
    tables = cli(["query", "select 1 as one", "--as-of", "equity_bars=0"], home)
    assert tables.returncode == 0
    missing_version = cli(["query", "select 1", "--as-of", "equity_bars=1"], home)
    assert missing_version.returncode == 2 and "has no version 1" in missing_version.stderr

    d = tmp_path / "vendor"
    d.mkdir()
    (d / "ACME.csv").write_text(
        "date,open,high,low,close,volume\n2021-01-04,10,11,9,10.5,100\n2021-01-05,10,9,11,10,100\n"
    )
    res = cli(["ingest", "equity", "--source", "csv", "--path", str(d), "--no-progress"], home)
    assert res.returncode == 0, res.stderr
    assert "high < low" in res.stdout
    rej = cli(["query", 'select "table", row_no, reason from rejected_rows', "-f", "csv"], home)
    assert rej.stdout.splitlines()[1:] == ['equity_bars,2,"high < low; close outside [low, high]"']
