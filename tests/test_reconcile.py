"""Backtest-vs-paper reconciliation: a paper account traded for 8 days reconciles with zero drift against the
backtest of the same model over the same days; fills moved by hand (and an order that never went out) show
up as fill price differences, a missing order and the P&L drift they cause (worked out here), with an alert
and an MLflow run that ``risk report --paper`` links."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from execution import audit
from execution.reconcile import compare_orders, pnl_by_symbol, reconcile
from execution.settings import TradeConfig
from execution.signal_source import SignalSource
from execution.tables import EXEC_FILLS, EXEC_ORDERS
from execution.trader import run_trade
from quantlake.lake import Lake
from quantlake.tables import EQUITY_BARS

DAYS = pd.bdate_range("2024-01-01", periods=50).date
TRADED = list(DAYS[40:48])


@pytest.fixture()
def tlake(ql_home: Path) -> Lake:
    rows = []
    for i, d in enumerate(DAYS):
        rows.append({"symbol": "AAA", "date": d, "open": 99.5 + i, "close": 100.0 + i, "volume": 1e6})
        rows.append({"symbol": "CCC", "date": d, "open": 20.0 + 0.1 * i, "close": 20.0 + 0.2 * (i % 3), "volume": 1e6})
    frame = pd.DataFrame(rows).assign(adj_close=lambda f: f["close"], source="t")
    lake = Lake(ql_home / "lake")
    lake.merge("equity_bars", frame, EQUITY_BARS)
    return lake


def flipping() -> SignalSource:
    """Long AAA on even days, CCC always half: orders on most days."""

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        day = pd.Timestamp(frame["date"].iloc[0]).day_of_year
        return frame[["symbol", "date"]].assign(signal=frame["symbol"].map({"AAA": float(day % 2), "CCC": 0.5}))

    return SignalSource("flip", [], predict)


def test_pnl_by_symbol_by_hand() -> None:
    fills = pd.DataFrame([{"date": TRADED[1], "symbol": "X", "side": "buy", "qty": 10, "price": 100.0, "commission": 1.0},
                          {"date": TRADED[3], "symbol": "X", "side": "sell", "qty": 4, "price": 110.0, "commission": 1.0}])  # fmt: skip
    closes = pd.DataFrame({"date": TRADED[:5], "symbol": "X", "close": [99.0, 101.0, 104.0, 108.0, 107.0]})
    p = pnl_by_symbol(fills, closes, TRADED[:5]).set_index("date")["pnl"]
    # day 1: -1000 - 1 + 10*101; day 2: 10*(104-101); day 3: +440 - 1 + 6*108 - 10*104; day 4: 6*(107-108)
    assert p.tolist() == pytest.approx([0.0, 9.0, 30.0, 47.0, -6.0])


@pytest.mark.slow
def test_paper_replay_reconciles_with_zero_drift_then_planted_drift_shows(tlake: Lake, ql_home: Path) -> None:
    cfg = TradeConfig(model="flip", account="rec")
    for day in TRADED:
        run_trade(cfg.model_copy(update={"as_of": day}), tlake, model=flipping())
    snapshots = audit.account_history(tlake, "paper", "rec")
    assert snapshots["lake_versions"].map(lambda t: "equity_bars" in json.loads(t)).all()

    clean = reconcile(cfg, tlake, model=flipping())
    m = clean.metrics()
    assert m["orders_matched"] >= 8 and m["orders_missing"] == m["orders_extra"] == m["orders_qty_diff"] == 0
    assert clean.fills["price_diff"].abs().max() == 0.0 and len(clean.fills) >= 8
    assert clean.drift == 0.0 and clean.max_abs_drift == 0.0 and not clean.breached
    assert clean.run_id is not None

    # plant: one AAA fill 0.50 worse than the model, and one order marked as never sent
    fills = audit.fills(tlake, "paper", "rec")
    aaa = fills[(fills["symbol"] == "AAA") & (fills["side"] == "buy")].sort_values("filled_at").iloc[0]
    moved = fills[fills["fill_id"] == aaa["fill_id"]].assign(price=aaa["price"] + 0.5)
    tlake.merge(EXEC_FILLS.name, moved[[f.name for f in EXEC_FILLS.schema if f.name != "recorded_at"]], EXEC_FILLS)
    orders = audit.orders(tlake, "paper", "rec")
    ccc = orders[orders["symbol"] == "CCC"].sort_values("trade_date").iloc[-1]
    audit.record_orders(tlake, [{**ccc.to_dict(), "status": "not_sent"}])
    assert len(audit.orders(tlake, "paper", "rec")) == len(orders)

    drifted = reconcile(cfg, tlake, model=flipping(), threshold=0.0001)
    diff = drifted.fills.dropna(subset=["price_diff"])
    diff = diff[diff["price_diff"] != 0]
    assert len(diff) == 1 and diff.iloc[0]["symbol"] == "AAA" and diff.iloc[0]["price_diff"] == pytest.approx(0.5)
    assert diff.iloc[0]["price_diff_bps"] == pytest.approx(0.5 / diff.iloc[0]["price_backtest"] * 1e4)
    assert drifted.drift == pytest.approx(-0.5 * aaa["qty"], rel=1e-9)  # paid 0.50 more per share, once
    per = drifted.pnl.groupby("symbol")["drift"].sum()
    assert per["AAA"] == pytest.approx(-0.5 * aaa["qty"]) and per["CCC"] == 0.0
    missing = drifted.orders[drifted.orders["status"] == "missing"]
    assert missing[["symbol", "side"]].values.tolist() == [["CCC", ccc["side"]]]
    assert drifted.breached

    alerts = (ql_home / "reports" / "alerts.jsonl").read_text().splitlines()
    assert any(json.loads(line).get("kind") == "reconciliation" for line in alerts)
    from risk.cli import _reconciliation

    assert _reconciliation("rec")["run_id"] == drifted.run_id  # type: ignore[index]


def test_compare_orders_statuses() -> None:
    a = pd.DataFrame([{"trade_date": TRADED[0], "symbol": "A", "leg": "entry", "side": "buy", "qty": 10, "status": "filled"},
                      {"trade_date": TRADED[0], "symbol": "B", "leg": "entry", "side": "buy", "qty": 5, "status": "filled"}])  # fmt: skip
    b = pd.DataFrame([{"trade_date": TRADED[0], "symbol": "A", "leg": "entry", "side": "buy", "qty": 11, "status": "planned"},
                      {"trade_date": TRADED[0], "symbol": "C", "leg": "entry", "side": "buy", "qty": 5, "status": "planned"}])  # fmt: skip
    out = compare_orders(a, b).set_index("symbol")["status"].to_dict()
    assert out == {"A": "qty_differs", "B": "extra", "C": "missing"}
    assert EXEC_ORDERS.keys == ("account", "broker", "client_order_id")


def test_one_sided_days_keep_numeric_dtypes() -> None:
    """A window where only one side traded (the account filled, the backtest did not, or the reverse): the
    empty side's frames are typed, so drift and cumulative drift are plain float arithmetic (pandas 3 no
    longer downcasts object columns after a merge/fillna; ``cumsum`` on them raised in the daily flow)."""
    from execution.reconcile import _fill_frame, compare_fills, compare_pnl

    days = TRADED[:3]
    fills = pd.DataFrame([{"date": days[0], "symbol": "X", "side": "buy", "qty": 10.0, "price": 100.0, "commission": 1.0}])
    closes = pd.DataFrame({"date": days, "symbol": "X", "close": [101.0, 103.0, 102.0]})
    none = _fill_frame(pd.DataFrame(columns=["symbol", "side", "qty", "price", "commission", "filled_at"]))
    assert none.dtypes[["qty", "price", "commission"]].tolist() == [float] * 3
    for paper, backtest, sign in ((fills, none, 1.0), (none, fills, -1.0)):
        pnl, daily = compare_pnl(pnl_by_symbol(paper, closes, days), pnl_by_symbol(backtest, closes, days))
        assert pnl[["pnl_paper", "pnl_backtest", "drift", "cum_drift"]].dtypes.tolist() == [float] * 4
        # by hand: day 1 -1000 - 1 + 10*101 = 9; day 2 +20; day 3 -10 -> cumulative 9, 29, 19
        assert pnl["cum_drift"].tolist() == pytest.approx([sign * 9.0, sign * 29.0, sign * 19.0])
        assert daily["drift"].tolist() == pytest.approx([sign * 9.0, sign * 29.0, sign * 19.0])
        f = compare_fills(paper, backtest)
        assert f[["price_diff", "price_diff_bps"]].dtypes.tolist() == [float] * 2 and f["price_diff"].isna().all()
    # a window where neither side filled (the flow's first day: orders placed, fills due tomorrow)
    assert compare_fills(none, none.copy()).empty
    pnl, daily = compare_pnl(pnl_by_symbol(none, closes, days), pnl_by_symbol(none, closes, days))
    assert pnl.empty and daily.empty and pnl["cum_drift"].dtype == float
    rejected = pd.DataFrame([{"trade_date": days[0], "symbol": "X", "leg": "entry", "side": "buy", "qty": 1.0,
                              "status": "risk_rejected"}])  # fmt: skip
    assert compare_orders(rejected, pd.DataFrame())["qty_paper"].dtype == float


def test_reconcile_cli_no_flow_runs_without_a_flow(tlake: Lake, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``quantlake trade reconcile --no-flow``: the same reconciliation, printed, with no Prefect flow run; a
    paper account replays with zero drift and every order it sent matched."""
    import sys
    import types

    from typer.testing import CliRunner

    import execution.signal_source
    from quantlake.cli import app

    cfg = TradeConfig(model="flip", account="cli")
    for day in TRADED[:3]:
        run_trade(cfg.model_copy(update={"as_of": day}), tlake, model=flipping())
    sent = audit.orders(tlake, "paper", "cli")
    assert len(sent) >= 3

    def no_flow(*_: object, **__: object) -> None:
        raise AssertionError("--no-flow ran the Prefect flow")

    monkeypatch.setitem(sys.modules, "flows.reconcile", types.SimpleNamespace(reconcile_flow=no_flow))
    monkeypatch.setattr(execution.signal_source, "load_champion", lambda name: flipping())  # no registry here
    res = CliRunner().invoke(app, ["trade", "reconcile", "--model", "flip", "--account", "cli", "--no-flow"],
                             env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"reconciliation of paper/cli, {TRADED[0]} – {TRADED[2]} (3 day(s))" in res.output
    assert f"orders: {len(sent)} matched, 0 missing, 0 extra" in res.output
    assert "cumulative drift 0.00" in res.output
