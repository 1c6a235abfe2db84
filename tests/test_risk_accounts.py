"""``quantlake risk report`` for a paper account (the ledger read back) and for a tracked backtest run."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from risk.accounts import PaperLedger, ledger_path

DAYS = [dt.date(2021, 1, d) for d in (4, 5, 6, 7, 8, 11, 12)]
AAA = [100.0, 101.0, 99.0, 104.0, 103.0, 105.0, 106.0]
BBB = [50.0, 50.5, 51.0, 50.0, 49.0, 48.0, 47.5]


def _bars(lake) -> None:  # type: ignore[no-untyped-def]
    rows = [{"symbol": s, "date": d, "open": c, "high": c, "low": c, "close": c, "adj_close": c * 0.9,
             "volume": 1e6, "source": "t"} for s, closes in (("AAA", AAA), ("BBB", BBB))
            for d, c in zip(DAYS, closes, strict=True)]  # fmt: skip
    lake.merge("equity_bars", pd.DataFrame(rows))


def _ledger(
    path: Path, fills: list[tuple[str, str, float, float, float, dt.date]], clock: dt.date | None
) -> None:
    """A ledger with the paper broker's table layout (only what the reader relies on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE fills (fill_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, "
        "side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, commission REAL NOT NULL, "
        "fill_date TEXT NOT NULL, filled_at TEXT NOT NULL);"
    )
    con.execute("INSERT INTO meta VALUES ('initial_cash', '10000.0')")
    if clock:
        con.execute("INSERT INTO meta VALUES ('clock', ?)", (clock.isoformat(),))
    for i, (sym, side, qty, price, fee, day) in enumerate(fills):
        con.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"f{i}", f"o{i}", sym, side, qty, price, fee, day.isoformat(), day.isoformat()))  # fmt: skip
    con.commit()
    con.close()


def test_paper_ledger_equity_by_hand(lake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _bars(lake)
    path = tmp_path / "paper" / "acct.sqlite"
    _ledger(
        path,
        [("AAA", "buy", 10, 100.5, 1.0, DAYS[1]), ("BBB", "buy", 20, 50.2, 1.0, DAYS[2]),
         ("AAA", "sell", 4, 103.5, 1.0, DAYS[4])],
        clock=DAYS[5],
    )  # fmt: skip
    ledger = PaperLedger(path, lake)
    curve = ledger.equity_curve()
    # by hand: cash after each fill, shares marked at that day's (unadjusted) close
    c1 = 10_000 - 10 * 100.5 - 1  # 8944
    c2 = c1 - 20 * 50.2 - 1  # 7939
    c3 = c2 + 4 * 103.5 - 1  # 8352
    want = {
        DAYS[0]: 10_000.0,  # the trading day before the first fill: all cash
        DAYS[1]: c1 + 10 * AAA[1],
        DAYS[2]: c2 + 10 * AAA[2] + 20 * BBB[2],
        DAYS[3]: c2 + 10 * AAA[3] + 20 * BBB[3],
        DAYS[4]: c3 + 6 * AAA[4] + 20 * BBB[4],
        DAYS[5]: c3 + 6 * AAA[5] + 20 * BBB[5],  # the clock: nothing after it
    }
    assert [d.date() for d in curve.index] == list(want)
    np.testing.assert_allclose(curve.to_numpy(), list(want.values()), rtol=0, atol=1e-9)
    held = {p.symbol: (p.qty, p.price) for p in ledger.positions()}
    assert held == {"AAA": (6.0, AAA[5]), "BBB": (20.0, BBB[5])}

    # unknown account, invalid name, a file that is not a ledger: one clear error each
    from quantlake.errors import MalformedFileError, UserInputError

    with pytest.raises(UserInputError, match=r"accounts there: acct"):
        PaperLedger.for_account("nope", lake, tmp_path / "paper")
    with pytest.raises(UserInputError, match="invalid paper account"):
        ledger_path("../etc/passwd")
    (tmp_path / "paper" / "junk.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(MalformedFileError, match=r"junk\.sqlite"):
        PaperLedger(tmp_path / "paper" / "junk.sqlite", lake)


def test_paper_ledger_agrees_with_the_paper_broker(lake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The reader against the broker's own valuation (execution.brokers.paper), on fills it made itself."""
    from execution.brokers.base import OrderRequest
    from execution.brokers.paper import PaperBroker

    _bars(lake)
    broker = PaperBroker(lake, ledger_dir=tmp_path / "paper", account="bt", initial_cash=10_000.0)
    try:
        orders = [("a1", "AAA", "buy", 12, 0), ("b1", "BBB", "buy", 30, 1), ("a2", "AAA", "sell", 5, 3)]
        for cid, sym, side, qty, i in orders:
            ref = dict(zip(DAYS, AAA if sym == "AAA" else BBB, strict=True))[DAYS[i]]
            broker.submit(OrderRequest(cid, sym, side, qty, DAYS[i], ref))
            broker.sync(DAYS[i + 1])
        broker.sync(DAYS[6])
        state = broker.account()
        ledger = PaperLedger.for_account("bt", lake, tmp_path / "paper")
        curve = ledger.equity_curve()
        assert curve.index[-1].date() == DAYS[6]
        assert curve.iloc[-1] == pytest.approx(state.equity, rel=1e-12)
        assert {p.symbol: p.qty for p in ledger.positions()} == broker.positions()
    finally:
        broker.close()


def _cli() -> typer.Typer:
    from risk.cli import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    return app


def test_cli_report_for_a_paper_account(lake, ql_home: Path) -> None:  # type: ignore[no-untyped-def]
    _bars(lake)
    _ledger(ledger_path("acct", ql_home / "paper"), [("AAA", "buy", 50, 100.0, 0.0, DAYS[0])], clock=DAYS[6])
    runner = CliRunner(env={"QUANTLAKE_HOME": str(ql_home)})
    out = runner.invoke(
        _cli(), ["risk", "report", "--paper", "acct", "--format", "json", "--benchmark", "BBB"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    # 5,000 cash + 50 AAA: equity moves by 50 × ΔAAA; the last close is 106
    assert doc["summary"]["total_return"] == pytest.approx((5_000 + 50 * 106.0) / 10_000 - 1)
    assert doc["summary"]["positions"] == 1
    hypo = {(s["spot_shock"], s["vol_shock"]): s["pnl"] for s in doc["stress"] if s["kind"] == "hypothetical"}
    assert hypo[(-0.1, 0.0)] == pytest.approx(-0.1 * 50 * 106.0)  # the position itself is stressed
    assert any("historical stress skipped" in n and "autumn 2008" in n for n in doc["notes"])
    bad = runner.invoke(_cli(), ["risk", "report", "--paper", "acct", "--returns", "x.csv"])
    assert bad.exit_code != 0 and "exactly one of" in str(bad.exception)


@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


def test_cli_report_for_a_tracked_backtest_run(store: Path, lake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pydantic import BaseModel

    from tracking.run_context import tracked_run

    class Cfg(BaseModel):
        name: str = "bt"

    idx = pd.bdate_range("2021-01-04", periods=60)
    equity = 100_000 * np.cumprod(1 + np.sin(np.arange(60)) / 100)
    daily = pd.DataFrame({"date": idx, "equity": equity, "cash": 1.0, "delta": 0.0})
    with tracked_run("options_backtest", "test.options", Cfg(), lake) as run:
        run.log_frame("daily", daily)  # the options backtester's layout
    options_run = run.run_id
    rets = pd.DataFrame(
        {"fast=5": np.sin(np.arange(60)) / 100, "fast=9": np.cos(np.arange(60)) / 100}, index=idx
    )
    rets.to_parquet(tmp_path / "returns.parquet")
    with tracked_run(
        "equity_sweep", "test.equity", Cfg(), lake, extra_tags={"equity.selected_combo": "fast=9"}
    ) as r:
        r.log_artifact(tmp_path / "returns.parquet", artifact_path="tables")  # the equity research's layout
    equity_run = r.run_id
    with tracked_run("other", "test.none", Cfg(), lake) as r2:
        r2.log_text("x", "notes.txt")

    runner = CliRunner(env={"QUANTLAKE_HOME": str(store)})
    out = runner.invoke(_cli(), ["risk", "report", "--run", options_run, "--no-lake", "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["summary"]["total_return"] == pytest.approx(equity[-1] / equity[0] - 1, rel=1e-12)
    assert doc["summary"]["max_drawdown"] == pytest.approx(
        float((equity / np.maximum.accumulate(equity) - 1).min())
    )

    out = runner.invoke(_cli(), ["risk", "report", "--run", equity_run, "--no-lake", "--format", "json"])
    assert out.exit_code == 0, out.output
    want = float(np.prod(1 + rets["fast=9"]) - 1)  # the selected combination, not the first column
    assert json.loads(out.output)["summary"]["total_return"] == pytest.approx(want, rel=1e-12)
    out = runner.invoke(_cli(), ["risk", "report", "--run", equity_run, "--no-lake", "--column", "fast=5",
                                 "--format", "json"])  # fmt: skip
    assert json.loads(out.output)["summary"]["total_return"] == pytest.approx(
        float(np.prod(1 + rets["fast=5"]) - 1), rel=1e-12
    )
    out = runner.invoke(_cli(), ["risk", "report", "--run", r2.run_id, "--no-lake"])
    assert out.exit_code != 0 and "notes.txt" in str(out.exception)
