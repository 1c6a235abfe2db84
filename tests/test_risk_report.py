"""The risk report and ``quantlake risk report``: file reading, figures against the lake's own numbers, CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from quantlake.errors import MalformedFileError
from risk import metrics
from risk.cli import register
from risk.report import build_report, read_positions_file, read_returns_file


def test_read_returns_and_equity_files(tmp_path: Path) -> None:
    idx = pd.bdate_range("2021-01-04", periods=5)
    r = [0.01, -0.02, 0.005, 0.0, 0.03]
    pd.DataFrame({"Date": idx, "Returns": r}).to_csv(tmp_path / "r.csv", index=False)
    eq = read_returns_file(tmp_path / "r.csv")
    assert len(eq) == 6 and eq.iloc[0] == 1.0  # start value the day before the first return
    assert eq.iloc[-1] == pytest.approx(np.prod(1 + np.array(r)))
    pd.DataFrame(
        {"equity": [100.0, 101.0, 99.0, 102.0]}, index=pd.DatetimeIndex(idx[:4], name="date")
    ).to_parquet(tmp_path / "e.parquet")
    eq2 = read_returns_file(tmp_path / "e.parquet")
    assert eq2.tolist() == [100.0, 101.0, 99.0, 102.0] and isinstance(eq2.index, pd.DatetimeIndex)
    pd.DataFrame({"date": idx, "pnl": r}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(MalformedFileError, match="returns column"):
        read_returns_file(tmp_path / "bad.csv")
    pd.DataFrame({"date": idx, "returns": [5, -120, 3, 1, 2]}).to_csv(tmp_path / "pct.csv", index=False)
    with pytest.raises(MalformedFileError, match="percentages"):
        read_returns_file(tmp_path / "pct.csv")
    with pytest.raises(MalformedFileError, match="no such file"):
        read_returns_file(tmp_path / "missing.csv")
    (tmp_path / "pos.json").write_text(json.dumps([{"symbol": "spy", "qty": -3, "price": 400}]))
    assert read_positions_file(tmp_path / "pos.json")[0].symbol == "SPY"


@pytest.fixture()
def half_gspc(sample_lake) -> pd.Series:  # type: ignore[no-untyped-def]
    """A strategy that holds half its equity in the S&P 500 (rebalanced daily), 2008-2012."""
    px = sample_lake.query(
        "SELECT date, coalesce(adj_close, close) AS px FROM equity_bars WHERE symbol = '^GSPC' "
        "AND date BETWEEN DATE '2008-01-02' AND DATE '2012-12-31' ORDER BY date"
    ).set_index("date")["px"]
    px.index = pd.DatetimeIndex(px.index)
    return 0.5 * px.pct_change().dropna()


def test_report_from_returns_only(sample_lake, half_gspc: pd.Series) -> None:  # type: ignore[no-untyped-def]
    equity = metrics.equity_from_returns(half_gspc)
    rep = build_report(equity, lake=sample_lake)
    assert rep.summary["beta"] == pytest.approx(0.5, rel=1e-9)
    assert rep.summary["max_drawdown"] == pytest.approx(float((equity / equity.cummax() - 1).min()))
    assert rep.var.loc["historical", "var_95"] == pytest.approx(metrics.var_historical(half_gspc, 0.95))
    assert rep.drawdowns.iloc[0].depth == pytest.approx(rep.summary["max_drawdown"])
    autumn = rep.stress.iloc[0]
    # the stand-in book is 0.5 × ^GSPC: half the index's window move; realized: compounded daily half moves
    assert autumn.pnl_pct == pytest.approx(0.5 * autumn.spot_shock, rel=1e-9)
    w = half_gspc[(half_gspc.index > "2008-09-02") & (half_gspc.index <= "2008-11-20")]
    assert autumn.realized_pct == pytest.approx(float(np.prod(1 + w) - 1), rel=1e-9)
    assert np.isnan(rep.stress.iloc[1].realized_pct)  # March 2020 is outside the curve
    doc = rep.to_dict()
    json.dumps(doc)  # JSON-ready
    assert doc["stress"][0]["start"] == "2008-09-01" and doc["summary"]["beta"] == pytest.approx(0.5)


def test_report_without_lake_notes_what_is_missing(half_gspc: pd.Series) -> None:
    rep = build_report(metrics.equity_from_returns(half_gspc))
    assert rep.summary["beta"] is None and rep.stress.empty
    assert any("no lake" in n for n in rep.notes)


def test_cli_report_table_and_json(sample_lake, half_gspc: pd.Series, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bt.csv"
    half_gspc.rename("returns").rename_axis("date").to_csv(f)
    pos = tmp_path / "pos.json"
    pos.write_text(json.dumps([
        {"symbol": "SPY", "qty": 100, "price": 400.0},
        {"symbol": "SPY", "right": "P", "strike": 380, "expiry": "2026-03-20", "qty": 2, "price": 5.0,
         "underlying_price": 400.0, "iv": 0.2},
    ]))  # fmt: skip
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps "risk" a sub-command
    runner = CliRunner(env={"QUANTLAKE_HOME": str(sample_lake.root.parent), "COLUMNS": "160"})
    out = runner.invoke(app, ["risk", "report", "--returns", str(f)])
    assert out.exit_code == 0, out.output
    assert "VaR / CVaR" in out.output and "autumn 2008" in out.output and "drawdowns" in out.output
    out = runner.invoke(app, ["risk", "report", "--returns", str(f), "--positions", str(pos), "--as-of",
                              "2026-01-16", "--vol-shock", "10", "--spot-shock", "-0.1", "--format", "json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc) == {"summary", "var", "drawdowns", "stress", "notes", "warnings", "stress_by_underlying",
                        "stress_by_leg", "ladder", "option_var"}  # the book holds an option
    assert set(doc["var"]) == {"historical", "parametric", "cornish_fisher"}
    hypo = [s for s in doc["stress"] if s["kind"] == "hypothetical"]
    assert [(h["spot_shock"], h["vol_shock"]) for h in hypo] == [(-0.1, 0.1)]
    assert hypo[0]["pnl"] != hypo[0]["greeks_pnl"]  # the option is repriced, not only approximated


def test_cli_user_error_is_one_line_exit_2(
    tmp_path: Path, ql_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the real root CLI (quantlake.cli.main mounts risk.cli): one line on stderr, exit code 2."""
    from quantlake import cli

    monkeypatch.setattr(sys, "argv", ["quantlake", "risk", "report", "--returns", str(tmp_path / "nope.csv")])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "no such file" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_cli_optimize(sample_lake) -> None:  # type: ignore[no-untyped-def]
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    runner = CliRunner(env={"QUANTLAKE_HOME": str(sample_lake.root.parent)})
    args = ["risk", "optimize", "--symbols", "SPY,AAPL,GLD", "--method", "risk-parity", "--start", "2011-01-01",
            "--end", "2015-12-31", "--format", "json"]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    w = pd.Series(doc["weights"])
    px = (
        sample_lake.query(
            "SELECT date, symbol, coalesce(adj_close, close) AS px FROM equity_bars WHERE symbol IN ('SPY','AAPL','GLD') "
            "AND date BETWEEN DATE '2011-01-01' AND DATE '2015-12-31'"
        )
        .pivot(index="date", columns="symbol", values="px")
        .dropna()
    )
    cov = px.pct_change().dropna().cov().loc[w.index, w.index].to_numpy()
    rc = w.to_numpy() * (cov @ w.to_numpy())
    np.testing.assert_allclose(
        rc / rc.sum(), [1 / 3] * 3, atol=1e-5
    )  # equal risk, checked on the lake's data
    assert w.sum() == pytest.approx(1.0, abs=1e-5)
    out = runner.invoke(
        app, [*args[:6], "--method", "min-variance", "--max-weight", "0.4", "--format", "json"]
    )
    assert out.exit_code == 0 and max(json.loads(out.output)["weights"].values()) <= 0.4 + 1e-6
