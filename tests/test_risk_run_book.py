"""``quantlake risk report --run ID`` on an options backtest: the open book on the worst-drawdown date and the
last day (or ``--date``) is rebuilt from the run's fills and checked against the backtest's own closed and
open legs; the report stresses it in full (historical windows, shocks, per-leg P&L), ladders it and computes
its full-revaluation VaR."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests.options.config import parse_config


def legs_held(result: object, day: dt.date) -> set[tuple[dt.date, float, str, float]]:
    """Legs open at the close of ``day`` from the backtest's own records: closed legs entered on or before it
    and closed after it, and the legs still open at the end that were entered on or before it."""
    trades, still = result.trades, result.open_positions  # type: ignore[attr-defined]
    out = {(r.expiry, float(r.strike), r.right, float(r.qty)) for r in trades.itertuples()
           if r.entry_date <= day < r.exit_date}
    for r in still.itertuples():
        if r.entry_date <= day:
            parts = r.contract.split()
            out.add((dt.date.fromisoformat(parts[1]), float(parts[2][:-1]), parts[2][-1], float(r.qty)))
    return out


def test_risk_report_of_an_options_run_stresses_its_open_book(store: Path, sample_lake_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from backtests.options.jobs import run_tracked
    from quantlake.lake import Lake
    from risk.cli import risk_app

    monkeypatch.setenv("QUANTLAKE_LAKE_URI", str(sample_lake_dir))
    cfg = parse_config({"name": "pcs08", "underlying": "^GSPC", "start": "2008-06-02", "end": "2008-12-31",
                        "strategy": {"kind": "put_credit_spread", "max_open": 3,
                                     "exits": {"exit_regimes": [], "stop_loss": 5.0}},
                        "market": {"rate": {"constant": 0.02}}, "outputs": {"plots": False}})
    run_id, result = run_tracked(cfg, Lake(sample_lake_dir))
    out = CliRunner().invoke(risk_app, ["report", "--run", run_id, "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    books = doc["books"]
    eq = result.daily["equity"]
    trough = (eq / eq.cummax() - 1).idxmin()
    assert [b["label"] for b in books] == ["worst drawdown", "last day"]
    assert [b["date"] for b in books] == [str(pd.Timestamp(trough).date()), str(result.daily.index[-1])]
    for book in books:
        day = dt.date.fromisoformat(book["date"])
        options = [leg for leg in book["legs"] if "right" in leg]
        got = {(dt.date.fromisoformat(leg["expiry"]), leg["strike"], leg["right"], leg["qty"]) for leg in options}
        assert got == legs_held(result, day)
        assert len(options) == int(result.daily.loc[day, "open_legs"])
        assert book["equity"] == pytest.approx(float(result.daily.loc[day, "equity"]))
    worst = books[0]
    assert worst["legs"], "the strategy held spreads at its worst drawdown"
    kinds = [r["kind"] for r in worst["stress"]]
    assert kinds.count("historical") == 4 and kinds.count("hypothetical") == 10
    autumn = next(r for r in worst["stress"] if r["scenario"] == "autumn 2008")
    assert autumn["data"].startswith("^GSPC: own")
    legs = worst["stress_by_leg"]["autumn 2008"]
    assert sum(legs.values()) == pytest.approx(autumn["pnl"], rel=1e-9)
    assert set(worst["ladder"]) == {str(m) for m in (-0.3, -0.25, -0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15,
                                                     0.2, 0.25, 0.3)}
    var = worst["option_var"]["currency"]
    assert var["full revaluation"]["var_99"] >= var["full revaluation"]["var_95"] > 0
    assert set(var) == {"full revaluation", "delta-gamma", "difference"}
    given = CliRunner().invoke(risk_app, ["report", "--run", run_id, "--date", "2008-09-15"])
    assert given.exit_code == 0, given.output
    assert "open book on 2008-09-15 (given date)" in given.output and "Greeks ladder" in given.output
