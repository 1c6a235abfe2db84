"""The Alpaca adapter against a local HTTP server that answers like Alpaca's trading REST API (v2): orders
by client order id (422 on a duplicate id, 403 on a refused order, 404 when unknown), positions, account,
cancel.  The fake checks the API key headers on every request, so a passing call proves the keys were sent
— and the tests check they are never written anywhere else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from werkzeug import Request, Response

from execution.brokers.base import ACCEPTED, CANCELLED, FILLED, PARTIALLY_FILLED, REJECTED, OrderRequest
from execution.errors import BrokerUnavailableError, DuplicateOrderError
from quantlake.errors import BrokerError, MissingCredentialsError
from quantlake.lake import Lake
from quantlake.tables import EQUITY_BARS

KEY, SECRET = "PKTESTKEY0123456789", "s3cr3t-Alpaca-VALUE-987654321"
DAYS = pd.bdate_range("2024-01-01", periods=45).date
D0 = DAYS[40]
OPEN = {"new", "accepted", "partially_filled", "pending_new"}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class FakeAlpaca:
    """State and handlers of the fake Alpaca trading API."""

    def __init__(self, cash: float = 100_000.0) -> None:
        self.cash = cash
        self.orders: dict[str, dict[str, Any]] = {}  # by Alpaca id
        self.positions: dict[str, float] = {}
        self.prices: dict[str, float] = {}
        self.posts: list[str] = []  # client order ids POSTed (accepted or not)
        self.auth_failures = 0

    # ---------------------------------------------------------------- helpers
    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("APCA-API-KEY-ID") != KEY or request.headers.get("APCA-API-SECRET-KEY") != SECRET:
            self.auth_failures += 1
            return self._json({"code": 40110000, "message": "request is not authorized"}, 401)
        return None

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    def by_client(self, cid: str) -> dict[str, Any] | None:
        return next((o for o in self.orders.values() if o["client_order_id"] == cid), None)

    def fill(self, cid: str, price: float, qty: float | None = None) -> None:
        o = self.by_client(cid)
        assert o is not None
        done = float(o["filled_qty"])
        q = float(o["qty"]) - done if qty is None else qty
        avg = (done * float(o["filled_avg_price"] or 0.0) + q * price) / (done + q)  # cumulative, like Alpaca
        o.update(filled_qty=str(done + q), filled_avg_price=str(avg), filled_at=_now(), updated_at=_now(),
                 status="filled" if done + q >= float(o["qty"]) else "partially_filled")  # fmt: skip
        sign = 1 if o["side"] == "buy" else -1
        self.positions[o["symbol"]] = self.positions.get(o["symbol"], 0.0) + sign * q
        self.cash -= sign * q * price
        self.prices[o["symbol"]] = price

    # ---------------------------------------------------------------- endpoints
    def account(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        equity = self.cash + sum(q * self.prices.get(s, 0.0) for s, q in self.positions.items())
        return self._json({"id": str(uuid.uuid4()), "account_number": "PA3TEST", "status": "ACTIVE",
                           "currency": "USD", "cash": str(self.cash), "equity": str(equity),
                           "buying_power": str(self.cash), "portfolio_value": str(equity)})  # fmt: skip

    def list_positions(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return self._json([
            {"asset_id": str(uuid.uuid4()), "symbol": s, "exchange": "NASDAQ", "asset_class": "us_equity",
             "avg_entry_price": str(self.prices.get(s, 1.0)), "qty": str(abs(q)),
             "side": "long" if q > 0 else "short", "cost_basis": str(abs(q) * self.prices.get(s, 1.0))}
            for s, q in self.positions.items() if q
        ])  # fmt: skip

    def post_order(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        body = request.get_json()
        cid = body["client_order_id"]
        self.posts.append(cid)
        if self.by_client(cid) is not None:
            return self._json({"code": 40010001, "message": "client_order_id must be unique"}, 422)
        if body["symbol"] == "BBB":
            return self._json({"code": 40310000, "message": "insufficient buying power"}, 403)
        now = _now()
        order = {"id": str(uuid.uuid4()), "client_order_id": cid, "created_at": now, "updated_at": now,
                 "submitted_at": now, "filled_at": None, "asset_id": str(uuid.uuid4()), "symbol": body["symbol"],
                 "asset_class": "us_equity", "qty": str(body["qty"]), "filled_qty": "0", "filled_avg_price": None,
                 "order_class": "simple", "order_type": "market", "type": "market", "side": body["side"],
                 "time_in_force": body["time_in_force"], "status": "accepted", "extended_hours": False}  # fmt: skip
        self.orders[order["id"]] = order
        return self._json(order)

    def get_by_client(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        o = self.by_client(request.args.get("client_order_id", ""))
        if o is None:
            return self._json({"code": 40410000, "message": "order not found"}, 404)
        return self._json(o)

    def list_orders(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        wanted = request.args.get("status", "open")
        return self._json([o for o in self.orders.values() if wanted != "open" or o["status"] in OPEN])

    def delete_order(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        o = self.orders.get(request.path.rsplit("/", 1)[-1])
        if o is None:
            return self._json({"code": 40410000, "message": "order not found"}, 404)
        o.update(status="canceled", canceled_at=_now(), updated_at=_now())
        return Response(status=204)

    def install(self, server: Any) -> None:
        server.expect_request("/v2/account", method="GET").respond_with_handler(self.account)
        server.expect_request("/v2/positions", method="GET").respond_with_handler(self.list_positions)
        server.expect_request("/v2/orders", method="POST").respond_with_handler(self.post_order)
        server.expect_request("/v2/orders:by_client_order_id", method="GET").respond_with_handler(self.get_by_client)
        server.expect_request("/v2/orders", method="GET").respond_with_handler(self.list_orders)
        server.expect_request(re.compile(r"^/v2/orders/[^/:]+$"), method="DELETE").respond_with_handler(self.delete_order)


@pytest.fixture()
def fake(httpserver: Any, monkeypatch: pytest.MonkeyPatch) -> FakeAlpaca:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    monkeypatch.setenv("ALPACA_BASE_URL", httpserver.url_for("").rstrip("/"))
    f = FakeAlpaca()
    f.install(httpserver)
    return f


def request(cid: str, symbol: str = "AAA", side: str = "buy", qty: float = 10) -> OrderRequest:
    return OrderRequest(cid, symbol, side, qty, D0, 100.0)  # type: ignore[arg-type]


def test_adapter_speaks_alpacas_api(fake: FakeAlpaca) -> None:
    from execution.brokers.alpaca import AlpacaBroker

    b = AlpacaBroker()
    assert b.account().equity == 100_000.0 and b.positions() == {}
    placed = b.submit(request("c-1"))
    assert placed.status == ACCEPTED and placed.client_order_id == "c-1" and placed.qty == 10
    assert fake.orders[placed.broker_order_id]["time_in_force"] == "day"
    with pytest.raises(DuplicateOrderError, match="c-1"):
        b.submit(request("c-1"))
    refused = b.submit(request("c-2", symbol="BBB"))
    assert refused.status == REJECTED and "insufficient buying power" in (refused.reason or "")
    assert b.get_order("nope") is None
    assert [o.client_order_id for o in b.open_orders()] == ["c-1"]

    fake.fill("c-1", 101.25, qty=4)
    part = b.get_order("c-1")
    assert part is not None and part.status == PARTIALLY_FILLED and part.filled_qty == 4
    fake.fill("c-1", 101.25, qty=6)
    (fill,) = b.fills("c-1")  # Alpaca reports the order's cumulative fill: one record per order
    assert (fill.qty, fill.price, fill.fill_id) == (10.0, 101.25, placed.broker_order_id)
    assert b.get_order("c-1").status == FILLED  # type: ignore[union-attr]
    assert b.positions() == {"AAA": 10.0}

    b.submit(request("c-3", side="sell", qty=3))
    assert b.cancel("c-3").status == CANCELLED
    assert fake.auth_failures == 0  # every request carried the keys
    b.close()


def test_missing_keys_name_the_variables_not_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from execution.brokers.alpaca import AlpacaBroker

    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    with pytest.raises(MissingCredentialsError, match="ALPACA_API_KEY") as info:
        AlpacaBroker(base_url="http://127.0.0.1:9")
    assert SECRET not in str(info.value) and "ALPACA_API_SECRET" not in str(info.value)


def test_unreachable_alpaca_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from execution.brokers.alpaca import AlpacaBroker

    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    b = AlpacaBroker(base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(BrokerUnavailableError, match=r"cannot reach Alpaca .*connection refused") as info:
        b.account()
    with pytest.raises(BrokerUnavailableError):
        b.submit(request("x-1"))
    assert KEY not in str(info.value) and SECRET not in str(info.value)


def test_wrong_keys_fail_without_echoing_them(fake: FakeAlpaca, monkeypatch: pytest.MonkeyPatch) -> None:
    from execution.brokers.alpaca import AlpacaBroker

    monkeypatch.setenv("ALPACA_API_SECRET", "wrong-" + SECRET)
    with pytest.raises(BrokerError, match="HTTP 401: request is not authorized") as info:
        AlpacaBroker().account()
    assert SECRET not in str(info.value) and KEY not in str(info.value)


# ------------------------------------------------------------------------------------- trading runs
@pytest.fixture()
def alake(ql_home: Path) -> Lake:
    rows = [{"symbol": s, "date": d, "open": p + i, "close": p + i, "adj_close": p + i, "volume": 1e6, "source": "test"}
            for i, d in enumerate(DAYS) for s, p in (("AAA", 100.0), ("BBB", 50.0), ("CCC", 20.0))]  # fmt: skip
    lake = Lake(ql_home / "lake")
    lake.merge("equity_bars", pd.DataFrame(rows), EQUITY_BARS)
    return lake


KILL_SCRIPT = """
import datetime as dt, os, signal, sys
from quantlake.lake import Lake
from execution.settings import TradeConfig
from execution.trader import run_trade
from execution.signal_source import SignalSource

def predict(frame):
    return frame[["symbol", "date"]].assign(signal=frame["symbol"].map({"AAA": 1.0, "CCC": 1.0}).fillna(0.0))
def hook(where, payload):
    if where == "after_submit":
        os.kill(os.getpid(), signal.SIGKILL)
run_trade(TradeConfig(model="fixed", broker="alpaca", as_of=dt.date.fromisoformat(sys.argv[1])), Lake(),
          model=SignalSource("fixed", [], predict), hook=hook)
"""


@pytest.mark.integration
def test_trade_on_alpaca_killed_after_submit_and_rerun_sends_each_order_once(
    fake: FakeAlpaca, alake: Lake, ql_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from execution import audit
    from execution.settings import TradeConfig
    from execution.signal_source import SignalSource
    from execution.trader import alert, run_trade

    caplog.set_level(logging.DEBUG)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, D0.isoformat()], env={**os.environ},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(fake.posts) == 1  # killed right after the first order reached Alpaca

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[["symbol", "date"]].assign(signal=frame["symbol"].map({"AAA": 1.0, "CCC": 1.0}).fillna(0.0))

    model = SignalSource("fixed", [], predict)
    cfg = TradeConfig(model="fixed", broker="alpaca", as_of=D0)
    result = run_trade(cfg, alake, model=model)
    assert len(fake.posts) == 2 and len(set(fake.posts)) == 2  # one POST per client order id, ever
    assert {o["symbol"] for o in fake.orders.values()} == {"AAA", "CCC"}
    assert set(audit.orders(alake, "alpaca", "default")["status"]) == {ACCEPTED}
    assert alert(result, cfg, email=False) is None

    # Alpaca fills both during the day; the next run records the fills and sees the positions
    for o in list(fake.orders.values()):
        fake.fill(o["client_order_id"], 141.0 if o["symbol"] == "AAA" else 61.0)
    nxt = run_trade(TradeConfig(model="fixed", broker="alpaca", as_of=DAYS[41]), alake, model=model)
    assert nxt.positions == {"AAA": 71.0, "CCC": 166.0}  # 10,000 / 140 and 10,000 / 60, rounded down
    assert nxt.reconciliation == []
    fills = audit.fills(alake, "alpaca", "default")
    assert sorted(fills["qty"]) == [71.0, 166.0] and set(audit.orders(alake, "alpaca", "default")["status"]) == {FILLED}

    # a broker refusal is recorded, alerted and turned into a failure
    refused = run_trade(TradeConfig(model="fixed", broker="alpaca", as_of=DAYS[42]), alake,
                        model=SignalSource("fixed", [], lambda f: f[["symbol", "date"]].assign(signal=1.0)))  # fmt: skip
    assert refused.orders.set_index("symbol").loc["BBB", "status"] == REJECTED
    err = alert(refused, cfg, email=False)
    assert err is not None and "insufficient buying power" in str(err)

    # the keys went to the server on every request and nowhere else
    assert fake.auth_failures == 0
    texts = [caplog.text, proc.stdout, proc.stderr, str(err)]
    for table in alake.tables():
        texts.append(alake.read(table).to_csv())
    for path in ql_home.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".log", ".txt"):
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        assert KEY not in text and SECRET not in text
