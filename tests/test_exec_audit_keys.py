"""Issue 19 items 3 and 6: accounts never share audit rows, and the circuit breaker counts only real broker
calls (the adapters' no-op ``sync`` must not reset it).

* Two accounts trading the same model on the same day each keep their own ``exec_orders`` rows; client order
  ids carry the account; a lake written before the fix is migrated (rows another account overwrote are
  restored from the table's history) with one log line.
* Four runs against a dead fake Alpaca: the first three reach it and fail, the fourth finds the circuit open
  and sends nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from werkzeug import Request, Response

from execution import audit
from execution.errors import BrokerUnavailableError, CircuitOpenError
from execution.orders import client_order_id
from execution.settings import TradeConfig
from execution.signal_source import SignalSource
from execution.tables import EXEC_ORDERS
from execution.trader import run_trade
from quantlake.errors import BrokerError
from quantlake.lake import Lake
from quantlake.tables import EQUITY_BARS, TableSpec

DAYS = pd.bdate_range("2024-01-01", periods=45).date
D0 = DAYS[40]


@pytest.fixture()
def tlake(ql_home: Path) -> Lake:
    rows = [{"symbol": s, "date": d, "open": p + i, "close": p + i, "adj_close": p + i, "volume": 1e6, "source": "t"}
            for i, d in enumerate(DAYS) for s, p in (("AAA", 100.0), ("CCC", 20.0))]  # fmt: skip
    lake = Lake(ql_home / "lake")
    lake.merge("equity_bars", pd.DataFrame(rows), EQUITY_BARS)
    return lake


def model() -> SignalSource:
    return SignalSource("fixed", [], lambda f: f[["symbol", "date"]].assign(signal=1.0))


# ------------------------------------------------------------------------------------------ item 3
def test_two_accounts_on_one_day_keep_their_own_audit_rows(tlake: Lake) -> None:
    for account in ("alice", "bob"):
        run_trade(TradeConfig(model="fixed", account=account, as_of=D0), tlake, model=model())
    alice = audit.orders(tlake, "paper", "alice")
    bob = audit.orders(tlake, "paper", "bob")
    assert sorted(alice["symbol"]) == ["AAA", "CCC"] and sorted(bob["symbol"]) == ["AAA", "CCC"]
    assert set(alice["status"]) == {"accepted"} and set(bob["status"]) == {"accepted"}
    assert set(alice["client_order_id"]).isdisjoint(set(bob["client_order_id"]))
    assert all("-alice-" in cid for cid in alice["client_order_id"])
    # the next day both accounts settle their own orders: no order of alice is left open forever
    for account in ("alice", "bob"):
        run_trade(TradeConfig(model="fixed", account=account, as_of=DAYS[41]), tlake, model=model())
    assert set(audit.orders(tlake, "paper", "alice")["status"]) == {"filled"}
    assert audit.orders(tlake, "paper", "alice", open_only=True).empty


def test_client_order_id_names_the_account_and_differs_per_account() -> None:
    a = client_order_id(D0, "strat", "AAA", "entry", account="alice")
    b = client_order_id(D0, "strat", "AAA", "entry", account="bob")
    assert a != b and "-alice-" in a and len(a) <= 100
    assert a == client_order_id(D0, "strat", "AAA", "entry", account="alice")  # deterministic
    long = client_order_id(D0, "s" * 64, "BRK-B", "entry", account="a" * 64)
    assert len(long) <= 100


OLD_SPEC = TableSpec(name="exec_orders", keys=("client_order_id",), schema=EXEC_ORDERS.schema,
                     date_column="trade_date")  # the contract before the fix


def _old_row(cid: str, account: str, status: str) -> dict[str, Any]:
    now = dt.datetime(2024, 2, 26, 21, tzinfo=dt.UTC)
    return {"client_order_id": cid, "trade_date": D0, "strategy": "fixed", "broker": "paper", "account": account,
            "symbol": "AAA", "leg": "entry", "side": "buy", "qty": 10.0, "order_type": "market",
            "ref_price": 140.0, "target_qty": 10.0, "position_before": 0.0, "status": status,
            "broker_order_id": f"paper-{account}", "filled_qty": 0.0, "filled_avg_price": None, "commission": 0.0,
            "reason": None, "risk_check": None, "flow_run_id": None, "created_at": now, "updated_at": now}  # fmt: skip


def test_old_ledger_is_migrated_and_overwritten_rows_come_back(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    def write(rows: list[dict[str, Any]]) -> None:
        fields = [f for f in EXEC_ORDERS.schema]
        lake.merge("exec_orders", pa.Table.from_pylist(rows, schema=pa.schema(fields)), OLD_SPEC)

    write([_old_row("ql-old-1", "alice", "accepted"), _old_row("ql-old-2", "alice", "accepted")])
    write([_old_row("ql-old-1", "bob", "accepted")])  # the defect: bob's row replaced alice's
    write([_old_row("ql-old-2", "alice", "filled")])
    assert set(lake.read("exec_orders")["account"]) == {"alice", "bob"} and len(lake.read("exec_orders")) == 2

    caplog.set_level(logging.INFO)
    got = audit.orders(lake, "paper", "alice")
    lines = [r.getMessage() for r in caplog.records if "exec_orders" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "restored 1" in lines[0]
    assert sorted(zip(got["client_order_id"], got["status"], strict=True)) == [
        ("ql-old-1", "accepted"), ("ql-old-2", "filled")]
    assert list(audit.orders(lake, "paper", "bob")["client_order_id"]) == ["ql-old-1"]
    assert json.loads(lake.delta("exec_orders").metadata().description)["keys"] == list(EXEC_ORDERS.keys)
    caplog.clear()
    audit.orders(lake, "paper", "alice")  # migrated once: no second message
    assert not [r for r in caplog.records if "exec_orders" in r.getMessage()]


# ------------------------------------------------------------------------------------------ item 6
class DeadAlpaca:
    """Every endpoint answers 503, like a broker in an outage; counts the requests that reached it."""

    def __init__(self) -> None:
        self.requests = 0

    def handler(self, request: Request) -> Response:
        self.requests += 1
        return Response(json.dumps({"message": "service unavailable"}), status=503, content_type="application/json")


def test_circuit_opens_across_runs_against_a_dead_broker(
    tlake: Lake, httpserver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    monkeypatch.setenv("ALPACA_API_KEY", "PKTEST")
    monkeypatch.setenv("ALPACA_API_SECRET", "secret")
    monkeypatch.setenv("ALPACA_BASE_URL", httpserver.url_for("").rstrip("/"))
    dead = DeadAlpaca()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(dead.handler)
    cfg = TradeConfig(model="fixed", broker="alpaca", as_of=D0, circuit_failures=3)
    seen = []
    for _ in range(3):
        before = dead.requests
        with pytest.raises(BrokerError) as info:
            run_trade(cfg, tlake, model=model())
        assert not isinstance(info.value, CircuitOpenError)
        seen.append(dead.requests - before)
    assert all(n >= 1 for n in seen)  # each run reached the broker and failed
    with pytest.raises(CircuitOpenError, match="3 consecutive failure"):
        run_trade(cfg, tlake, model=model())
    assert dead.requests == sum(seen)  # the fourth run never called it


def test_noop_sync_neither_counts_nor_bypasses_an_open_circuit(tlake: Lake, tmp_path: Path) -> None:
    from execution.brokers.guard import CircuitBreaker, GuardedBroker

    class Live:
        name = "live"
        syncs = False  # like Alpaca and IBKR: the broker fills by itself

        def sync(self, as_of: dt.date) -> None:
            return None

        def account(self) -> Any:
            raise BrokerUnavailableError("down")

    breaker = CircuitBreaker(2, 60.0, state_file=tmp_path / "c.json")
    g = GuardedBroker(Live(), breaker)  # type: ignore[arg-type]
    for _ in range(2):
        g.sync(D0)
        with pytest.raises(BrokerUnavailableError):
            g.account()
    assert breaker.state == "open" and breaker.calls == 2
    with pytest.raises(CircuitOpenError):
        g.sync(D0)
