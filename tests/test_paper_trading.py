"""Paper broker and trading runs on a small synthetic lake, with every number worked out by hand here.

Bars (weekdays from 2024-01-01, index i): AAA open = 99.5 + i, close = 100 + i; BBB close-only, close =
50 + 0.1·i; CCC close = 20, open 20; DDD close 30 only up to i = 40 (then no bars: a halted stock).
Default costs: slippage 5 bps against the order, commission max(1, 0.005 × shares).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from execution import audit
from execution.brokers.base import (
    ACCEPTED,
    CANCELLED,
    FILLED,
    NOT_SENT,
    PENDING_SUBMIT,
    REJECTED,
    OrderRequest,
)
from execution.brokers.paper import PaperBroker
from execution.errors import (
    BrokerUnavailableError,
    CircuitOpenError,
    DuplicateOrderError,
    KillSwitchError,
    ReconciliationError,
)
from execution.settings import TradeConfig
from execution.signal_source import SignalSource
from execution.trader import run_trade
from quantlake.errors import BrokerError
from quantlake.lake import Lake
from quantlake.tables import EQUITY_BARS

DAYS = pd.bdate_range("2024-01-01", periods=60).date
D0, D1, D2 = DAYS[40], DAYS[41], DAYS[42]
SLIP = 5e-4


def bars() -> pd.DataFrame:
    rows = []
    for i, d in enumerate(DAYS):
        rows.append({"symbol": "AAA", "date": d, "open": 99.5 + i, "close": 100.0 + i, "volume": 1e6})
        rows.append({"symbol": "BBB", "date": d, "open": None, "close": 50.0 + 0.1 * i, "volume": None})
        rows.append({"symbol": "CCC", "date": d, "open": 20.0, "close": 20.0, "volume": 1e6})
        if i <= 40:
            rows.append({"symbol": "DDD", "date": d, "open": 30.0, "close": 30.0, "volume": 1e6})
    frame = pd.DataFrame(rows)
    frame["adj_close"] = frame["close"]
    frame["source"] = "test"
    return frame


@pytest.fixture()
def tlake(ql_home: Path) -> Lake:
    lake = Lake(ql_home / "lake")
    lake.merge("equity_bars", bars(), EQUITY_BARS)
    return lake


def fixed(signals: dict[str, float]) -> SignalSource:
    """A model that wants ``signals`` (symbol → target in [-1, 1]) every day."""

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[["symbol", "date"]].assign(signal=frame["symbol"].map(signals).fillna(0.0).astype(float))

    return SignalSource("fixed", [], predict)


def cfg(**kw: Any) -> TradeConfig:
    return TradeConfig(model="fixed", **kw)


def ledger(home: Path, account: str = "default") -> sqlite3.Connection:
    con = sqlite3.connect(home / "paper" / f"{account}.sqlite")
    con.row_factory = sqlite3.Row
    return con


# ------------------------------------------------------------------------------------------ the broker
def test_paper_broker_fills_next_open_with_costs_and_persists(tlake: Lake, ql_home: Path) -> None:
    b = PaperBroker(tlake)
    a = b.submit(OrderRequest("c1", "AAA", "buy", 10, D0, 140.0))
    c = b.submit(OrderRequest("c2", "BBB", "buy", 100, D0, 54.0))
    assert a.status == ACCEPTED and c.status == ACCEPTED
    with pytest.raises(DuplicateOrderError):
        b.submit(OrderRequest("c1", "AAA", "buy", 10, D0, 140.0))
    b.sync(D0)  # same day: nothing fills (fills happen at the NEXT bar)
    assert b.positions() == {}
    b.sync(D1)
    # AAA fills at D1's open 140.5 plus 5 bps; BBB has no open, fills at D1's close 54.1 plus 5 bps
    pa, pb = 140.5 * (1 + SLIP), 54.1 * (1 + SLIP)
    (fa,) = b.fills("c1")
    (fb,) = b.fills("c2")
    assert fa.price == pytest.approx(pa, rel=1e-12) and fa.commission == 1.0
    assert fb.price == pytest.approx(pb, rel=1e-12) and fb.commission == 1.0  # 0.005 × 100 < 1 minimum
    assert fa.filled_at == dt.datetime(2024, 2, 27, 14, 30, tzinfo=dt.UTC)  # 09:30 New York (EST) on D1
    cash = 100_000 - 10 * pa - 100 * pb - 2.0
    acct = b.account()
    assert acct.cash == pytest.approx(cash, rel=1e-12)
    assert acct.equity == pytest.approx(cash + 10 * 141.0 + 100 * 54.1, rel=1e-12)  # marked at D1's closes
    assert b.get_order("c1").status == FILLED  # type: ignore[union-attr]
    b.close()
    again = PaperBroker(tlake)  # a new process sees the same ledger
    assert again.positions() == {"AAA": 10.0, "BBB": 100.0}
    assert again.account().cash == pytest.approx(cash, rel=1e-12)
    again.close()


def test_paper_broker_refuses_what_it_cannot_do(tlake: Lake) -> None:
    b = PaperBroker(tlake, initial_cash=1_000.0)
    big = b.submit(OrderRequest("b1", "AAA", "buy", 10, D0, 140.0))
    assert big.status == REJECTED and "insufficient buying power" in (big.reason or "")
    short = b.submit(OrderRequest("s1", "CCC", "sell", 5, D0, 20.0))
    assert short.status == REJECTED and "insufficient position" in (short.reason or "")
    ok = b.submit(OrderRequest("b2", "CCC", "buy", 40, D0, 20.0))  # 40 × 20.01 + 1 = 801.4 ≤ 1,000
    assert ok.status == ACCEPTED
    second = b.submit(OrderRequest("b3", "CCC", "buy", 10, D0, 20.0))  # only 198.6 left after the open buy
    assert second.status == REJECTED
    assert b.cancel("b2").status == CANCELLED
    b.sync(D1)
    assert b.positions() == {}
    b.close()


# ------------------------------------------------------------------------------------------ trading runs
def test_two_days_orders_fills_audit_and_snapshot(tlake: Lake, ql_home: Path) -> None:
    model = fixed({"AAA": 1.0, "BBB": 1.0, "CCC": 0.5})
    r0 = run_trade(cfg(as_of=D0), tlake, model=model)
    # 10 % of 100,000 per full signal, rounded down: AAA 10,000/140, BBB 10,000/54, CCC 5,000/20
    want = {"AAA": 71.0, "BBB": 185.0, "CCC": 250.0}
    assert dict(zip(r0.orders["symbol"], r0.orders["qty"], strict=True)) == want
    assert set(r0.orders["status"]) == {ACCEPTED} and set(r0.orders["side"]) == {"buy"}
    assert r0.fills == [] and r0.positions == {}

    r1 = run_trade(cfg(as_of=D1), tlake, model=model)
    prices = {"AAA": 140.5 * (1 + SLIP), "BBB": 54.1 * (1 + SLIP), "CCC": 20.0 * (1 + SLIP)}
    assert {f.symbol: f.price for f in r1.fills} == pytest.approx(prices, rel=1e-12)
    assert r1.positions == want
    # commissions max(1, 0.005 × qty): AAA 0.355 → 1, BBB 0.925 → 1, CCC 1.25
    cash = 100_000 - sum(want[s] * prices[s] for s in want) - 3.25
    equity = cash + 71 * 141.0 + 185 * 54.1 + 250 * 20.0
    assert r1.cash == pytest.approx(cash, rel=1e-12) and r1.equity == pytest.approx(equity, rel=1e-12)
    assert r1.orders.empty  # every position is within 10 % of its new target: no churn

    orders = audit.orders(tlake, "paper", "default")
    assert set(orders["status"]) == {FILLED} and len(orders) == 3
    assert orders.set_index("symbol")["filled_avg_price"].to_dict() == pytest.approx(prices, rel=1e-12)
    fills = audit.fills(tlake, "paper", "default")
    assert len(fills) == 3 and fills["commission"].sum() == pytest.approx(3.25)
    snaps = audit.account_history(tlake, "paper", "default")
    assert [pd.Timestamp(d).date() for d in snaps["trade_date"]] == [D0, D1]
    assert snaps["equity"].iloc[-1] == pytest.approx(equity, rel=1e-12)
    assert json.loads(snaps["positions"].iloc[-1]) == want
    assert snaps["peak_equity"].iloc[-1] == pytest.approx(max(100_000, equity))
    assert r1.reconciliation == []


def test_rerun_same_day_sends_nothing_twice(tlake: Lake, ql_home: Path) -> None:
    model = fixed({"AAA": 1.0, "CCC": 1.0})
    run_trade(cfg(as_of=D0), tlake, model=model)
    again = run_trade(cfg(as_of=D0), tlake, model=model)
    assert again.orders.empty  # the working orders count as held
    assert ledger(ql_home).execute("SELECT count(*) FROM orders").fetchone()[0] == 2


KILL_SCRIPT = """
import datetime as dt, os, signal, sys
from quantlake.lake import Lake
from execution.settings import TradeConfig
from execution.trader import run_trade
from execution.signal_source import SignalSource

point = sys.argv[2]
def predict(frame):
    return frame[["symbol", "date"]].assign(signal=1.0)
def hook(where, payload):
    if where == point:
        os.kill(os.getpid(), signal.SIGKILL)
run_trade(TradeConfig(model="fixed", as_of=dt.date.fromisoformat(sys.argv[1])), Lake(),
          model=SignalSource("fixed", [], predict), hook=hook)
"""


@pytest.mark.integration
@pytest.mark.parametrize("point", ["after_submit", "after_intents"])
def test_killed_after_submit_then_rerun_sends_each_order_once(tlake: Lake, ql_home: Path, point: str) -> None:
    env = {**os.environ, "QUANTLAKE_HOME": str(ql_home)}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, D0.isoformat(), point], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]
    intents = audit.orders(tlake, "paper", "default")
    assert len(intents) == 4 and set(intents["status"]) == {PENDING_SUBMIT}  # written before sending
    sent_before = ledger(ql_home).execute("SELECT count(*) FROM orders").fetchone()[0]
    assert sent_before == (1 if point == "after_submit" else 0)

    result = run_trade(cfg(as_of=D0), tlake, model=fixed(dict.fromkeys(["AAA", "BBB", "CCC", "DDD"], 1.0)))
    rows = ledger(ql_home).execute("SELECT client_order_id, symbol FROM orders").fetchall()
    assert len(rows) == 4 and len({r["client_order_id"] for r in rows}) == 4  # one order per symbol, ever
    assert sorted(r["symbol"] for r in rows) == ["AAA", "BBB", "CCC", "DDD"]
    final = audit.orders(tlake, "paper", "default")
    assert len(final) == 4 and set(final["status"]) == {ACCEPTED}
    assert set(final["client_order_id"]) == {r["client_order_id"] for r in rows}
    assert len(result.orders) == 4 - sent_before


class FlakyBroker:
    """A paper broker whose ``fail`` operations raise like an unreachable broker; counts calls."""

    def __init__(self, inner: PaperBroker, fail: set[str]) -> None:
        self.inner, self.fail, self.name = inner, fail, "paper"
        self.calls: dict[str, int] = {}

    def __getattr__(self, op: str) -> Any:
        target = getattr(self.inner, op)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[op] = self.calls.get(op, 0) + 1
            if op in self.fail:
                raise BrokerUnavailableError(f"paper {op}: connection refused (test)")
            return target(*args, **kwargs)

        return call


def test_circuit_breaker_stops_calling_a_failing_broker_and_nothing_is_lost(tlake: Lake, ql_home: Path) -> None:
    from execution.trader import alert

    model = fixed({"AAA": 1.0, "BBB": 1.0, "CCC": 1.0})
    flaky = FlakyBroker(PaperBroker(tlake), {"submit"})
    c = cfg(as_of=D0, circuit_failures=2)
    result = run_trade(c, tlake, model=model, broker=flaky)
    assert flaky.calls["submit"] == 2  # the third order never reached the broker
    status = result.orders.set_index("symbol")["status"].to_dict()
    assert status == {"AAA": PENDING_SUBMIT, "BBB": PENDING_SUBMIT, "CCC": NOT_SENT}
    assert "circuit breaker open" in result.orders.set_index("symbol").loc["CCC", "reason"]
    err = alert(result, c, email=False)
    assert isinstance(err, BrokerError) and "failed during the run" in str(err)

    # the open circuit is remembered across runs: the next run does not call the broker at all
    healthy = FlakyBroker(PaperBroker(tlake), set())
    with pytest.raises(CircuitOpenError, match="consecutive failure"):
        run_trade(c, tlake, model=model, broker=healthy)
    assert sum(healthy.calls.values()) == 0

    from execution.account_state import circuit_breaker

    circuit_breaker(c).reset()
    done = run_trade(c, tlake, model=model, broker=healthy)
    assert set(done.orders["status"]) == {ACCEPTED} and len(done.orders) == 3
    assert ledger(ql_home).execute("SELECT count(*) FROM orders").fetchone()[0] == 3


def test_outage_at_start_is_one_clear_error_and_records_nothing(tlake: Lake) -> None:
    flaky = FlakyBroker(PaperBroker(tlake), {"sync"})
    with pytest.raises(BrokerUnavailableError, match="connection refused"):
        run_trade(cfg(as_of=D0), tlake, model=fixed({"AAA": 1.0}), broker=flaky)
    assert not tlake.exists("exec_orders") and not tlake.exists("exec_account")


def test_kill_switch_halts_orders_cancels_working_and_needs_a_reset(tlake: Lake, ql_home: Path) -> None:
    from execution.account_state import kill_switch, reset_kill_switch
    from execution.trader import alert

    run_trade(cfg(as_of=D0), tlake, model=fixed({"AAA": 1.0, "CCC": 1.0}))
    run_trade(cfg(as_of=D1), tlake, model=fixed({"AAA": 1.0, "BBB": 1.0, "CCC": 1.0}))  # fills; BBB working
    # an earlier snapshot with a peak of 130,000: equity ≈ 100,000 is a 23 % drawdown (kill at 20 %)
    audit.record_account(tlake, "paper", "default", "fixed", DAYS[30], 130_000, 130_000, 130_000, {}, [], False)
    c = cfg(as_of=D1)
    result = run_trade(c, tlake, model=fixed({"BBB": 1.0, "CCC": 1.0}))  # would sell AAA
    assert result.kill_switch and kill_switch("paper", "default") is not None
    assert result.orders[["symbol", "leg", "status", "reason"]].values.tolist() == [
        ["AAA", "exit", NOT_SENT, "kill switch on"]
    ]
    con = ledger(ql_home)
    rows = {r["symbol"]: r["status"] for r in con.execute("SELECT symbol, status FROM orders")}
    assert rows == {"AAA": FILLED, "CCC": FILLED, "BBB": CANCELLED}  # the working BBB buy was cancelled
    reasons = audit.orders(tlake, "paper", "default").set_index("client_order_id")["reason"]
    assert reasons[result.cancelled[0]] == "cancelled: kill switch on"
    assert isinstance(alert(result, c, email=False), KillSwitchError)
    again = run_trade(c, tlake, model=fixed({"BBB": 1.0, "CCC": 1.0}))  # still halted on the next run
    assert again.kill_switch and con.execute("SELECT count(*) FROM orders").fetchone()[0] == 3
    assert reset_kill_switch("paper", "default") and kill_switch("paper", "default") is None


def test_drawdown_past_alert_level_halves_size(tlake: Lake) -> None:
    from execution.trader import alert

    audit.record_account(tlake, "paper", "default", "fixed", DAYS[30], 115_000, 115_000, 115_000, {}, [], False)
    c = cfg(as_of=D0)
    result = run_trade(c, tlake, model=fixed({"AAA": 1.0}))
    assert not result.kill_switch
    assert result.orders["qty"].tolist() == [math.floor(100_000 * 0.10 * 0.5 / 140.0)]  # 35, not 71
    assert any("past alert_drawdown" in a for a in result.alerts)
    assert alert(result, c, email=False) is None  # a warning, not a failure


def test_unfilled_orders_are_cancelled_after_the_timeout(tlake: Lake, ql_home: Path) -> None:
    run_trade(cfg(as_of=D0), tlake, model=fixed({"DDD": 1.0}))  # DDD has no bar after D0: never fills
    run_trade(cfg(as_of=D1), tlake, model=fixed({}))  # 24 h later: still within 30 h
    assert audit.orders(tlake, "paper", "default")["status"].tolist() == [ACCEPTED]
    r = run_trade(cfg(as_of=D2), tlake, model=fixed({}))
    row = audit.orders(tlake, "paper", "default").iloc[0]
    assert row["status"] == CANCELLED and "unfilled after 48 h" in row["reason"] and len(r.cancelled) == 1
    assert ledger(ql_home).execute("SELECT status FROM orders").fetchone()[0] == CANCELLED


def test_reconciliation_reports_positions_the_audit_does_not_know(tlake: Lake, ql_home: Path) -> None:
    run_trade(cfg(as_of=D0), tlake, model=fixed({}))
    ledger_con = ledger(ql_home)
    with ledger_con:  # a trade made outside quantlake
        ledger_con.execute(
            "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, fill_date, filled_at) "
            "VALUES ('manual-1', 'manual', 'CCC', 'buy', 7, 20.0, 1.0, ?, ?)",
            (D0.isoformat(), dt.datetime(2024, 2, 26, 15, tzinfo=dt.UTC).isoformat()),
        )
    r = run_trade(cfg(as_of=D1), tlake, model=fixed({}))
    assert r.reconciliation == [{"symbol": "CCC", "broker": 7.0, "audit": 0.0, "difference": 7.0}]
    with pytest.raises(ReconciliationError, match="CCC broker 7 vs audit 0"):
        run_trade(cfg(as_of=D1, strict_reconcile=True), tlake, model=fixed({}))


def test_risk_gate_rejects_and_records_without_sending(tlake: Lake, ql_home: Path) -> None:
    from risk.limits import Limits

    limits = Limits(max_gross_exposure=0.15, max_net_exposure=None)
    r = run_trade(cfg(as_of=D0), tlake, model=fixed({"AAA": 1.0, "CCC": 1.0}), limits=limits)
    by = r.orders.set_index("symbol")
    assert by.loc["AAA", "status"] == ACCEPTED  # 71 × 140 = 9.94 % of equity
    assert by.loc["CCC", "status"] == "risk_rejected" and "gross exposure" in by.loc["CCC", "risk_check"]
    assert ledger(ql_home).execute("SELECT count(*) FROM orders").fetchone()[0] == 1
    assert set(audit.orders(tlake, "paper", "default")["status"]) == {ACCEPTED, "risk_rejected"}


def test_dry_run_sends_and_records_nothing(tlake: Lake, ql_home: Path) -> None:
    r = run_trade(cfg(as_of=D0), tlake, model=fixed({"AAA": 1.0}), dry_run=True)
    assert r.dry_run and r.orders["status"].tolist() == ["planned"] and r.orders["qty"].tolist() == [71.0]
    assert not tlake.exists("exec_orders")
    assert ledger(ql_home).execute("SELECT count(*) FROM orders").fetchone()[0] == 0


def test_a_second_run_on_the_same_account_is_refused(tlake: Lake) -> None:
    from execution.account_state import TradeInProgressError, account_lock

    with account_lock("paper", "default"), pytest.raises(TradeInProgressError, match="another trading run"):
        run_trade(cfg(as_of=D0), tlake, model=fixed({"AAA": 1.0}))


def test_rejection_by_the_broker_is_an_alert_and_a_failure(tlake: Lake, ql_home: Path) -> None:
    from execution.errors import OrderRejectedError
    from execution.trader import alert

    c = cfg(as_of=D0, initial_cash=5_000.0, max_order_value_fraction=1.0, max_position_fraction=1.0)
    # the risk gate passes (exposure ≤ 1) but costs push the buy past the ledger's cash: the broker refuses
    r = run_trade(c, tlake, model=fixed({"CCC": 1.0}), broker=_NoBuyingPowerCheck(PaperBroker(tlake, initial_cash=5_000.0)))
    assert r.orders["status"].tolist() == [REJECTED]
    err = alert(r, c, email=False)
    assert isinstance(err, OrderRejectedError) and "insufficient buying power" in str(err)
    record = (ql_home / "reports" / "alerts.jsonl").read_text().splitlines()
    assert any("rejected" in json.loads(line)["subject"] for line in record)


class _NoBuyingPowerCheck:
    """Reports unlimited buying power so the trader's own pre-check lets the order through to the broker."""

    def __init__(self, inner: PaperBroker) -> None:
        self.inner, self.name = inner, "paper"

    def account(self) -> Any:
        from dataclasses import replace

        return replace(self.inner.account(), buying_power=1e12)

    def __getattr__(self, op: str) -> Any:
        return getattr(self.inner, op)
