"""The IBKR adapter: contract and order construction with ib_async's own classes, paper-only safety,
connection failures as one clear error, and the mapping of ib_async's trades/fills/positions/account values
(a stand-in ``IB`` object holding real ib_async records; no TWS is available offline)."""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import Any

import pytest

from execution.brokers.base import ACCEPTED, CANCELLED, FILLED, PARTIALLY_FILLED, REJECTED, OrderRequest
from execution.errors import BrokerUnavailableError, DuplicateOrderError
from quantlake.errors import BrokerError, ConfigError, InvalidSymbolError

D0 = dt.date(2024, 2, 26)


def req(cid: str, symbol: str = "AAPL", side: str = "buy", qty: float = 10) -> OrderRequest:
    return OrderRequest(cid, symbol, side, qty, D0, 180.0)  # type: ignore[arg-type]


def test_contract_and_order_construction() -> None:
    from ib_async import MarketOrder, Stock

    from execution.brokers.ibkr import market_order, stock_contract

    c = stock_contract("AAPL")
    assert isinstance(c, Stock) and (c.symbol, c.secType, c.exchange, c.currency) == ("AAPL", "STK", "SMART", "USD")
    assert stock_contract("BRK-B").symbol == "BRK B" and stock_contract("BRK.B").symbol == "BRK B"
    with pytest.raises(InvalidSymbolError, match="index"):
        stock_contract("^GSPC")
    o = market_order(req("ql-1", side="sell", qty=25), account="DU123")
    assert isinstance(o, MarketOrder)
    assert (o.action, o.totalQuantity, o.orderType, o.tif, o.orderRef, o.account) == (
        "SELL", 25, "MKT", "DAY", "ql-1", "DU123"
    )
    with pytest.raises(ConfigError, match="whole number"):
        market_order(req("ql-2", qty=2.5))


def test_refused_connection_is_one_clear_error() -> None:
    from execution.brokers.ibkr import IbkrBroker

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.perf_counter()
    with pytest.raises(BrokerUnavailableError, match=rf"cannot reach IBKR at 127.0.0.1:{port} .*connection refused"):
        IbkrBroker(port=port, timeout=2)
    assert time.perf_counter() - t0 < 5  # fails fast, no retry loop


def test_live_ports_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from execution.brokers.ibkr import IbkrBroker

    for port in (7496, 4001):
        with pytest.raises(ConfigError, match=r"\*live\* trading port"):
            IbkrBroker(port=port, ib=FakeIB())
    monkeypatch.setenv("QUANTLAKE_IBKR_PORT", "4001")
    with pytest.raises(ConfigError, match="live"):
        IbkrBroker(ib=FakeIB())


class FakeIB:
    """The parts of ``ib_async.IB`` the adapter uses, holding real ib_async records."""

    def __init__(self, accounts: tuple[str, ...] = ("DU1234567",)) -> None:
        from ib_async import AccountValue, Position, Stock

        self.accounts = list(accounts)
        self._trades: list[Any] = []
        self._fills: list[Any] = []
        self.connected = True
        self.next_id = 1
        self._positions = [Position(self.accounts[0], Stock("MSFT", "SMART", "USD"), 12.0, 300.0)]
        self._values = [
            AccountValue(self.accounts[0], "NetLiquidation", "101234.5", "USD", ""),
            AccountValue(self.accounts[0], "TotalCashValue", "97634.5", "USD", ""),
            AccountValue(self.accounts[0], "BuyingPower", "390538.0", "USD", ""),
            AccountValue(self.accounts[0], "NetLiquidation", "93000", "EUR", ""),  # other currency: ignored
        ]

    def managedAccounts(self) -> list[str]:
        return self.accounts

    def isConnected(self) -> bool:
        return self.connected

    def trades(self) -> list[Any]:
        return self._trades

    def openTrades(self) -> list[Any]:
        return [t for t in self._trades if t.orderStatus.status in ("PreSubmitted", "Submitted", "PendingSubmit")]

    def fills(self) -> list[Any]:
        return self._fills

    def positions(self, account: str = "") -> list[Any]:
        return self._positions

    def accountValues(self, account: str = "") -> list[Any]:
        return self._values

    def placeOrder(self, contract: Any, order: Any) -> Any:
        from ib_async import OrderStatus, Trade, TradeLogEntry

        order.orderId = order.permId = self.next_id
        self.next_id += 1
        status = "Inactive" if contract.symbol == "XXX" else "Submitted"
        log = [TradeLogEntry(dt.datetime(2024, 2, 26, 21, tzinfo=dt.UTC), status,
                             "Order rejected: no trading permissions" if status == "Inactive" else "", 201 if status == "Inactive" else 0)]  # fmt: skip
        trade = Trade(contract, order, OrderStatus(orderId=order.orderId, status=status), [], log)
        self._trades.append(trade)
        return trade

    def execute(self, ref: str, shares: float, price: float, commission: float) -> None:
        from ib_async import CommissionReport, Execution, Fill

        trade = next(t for t in self._trades if t.order.orderRef == ref)
        n = len(self._fills) + 1
        when = dt.datetime(2024, 2, 27, 14, 30, n, tzinfo=dt.UTC)
        ex = Execution(execId=f"0001.{n}", time=when, side="BOT" if trade.order.action == "BUY" else "SLD",
                       shares=shares, price=price, orderRef=ref)  # fmt: skip
        fill = Fill(trade.contract, ex, CommissionReport(execId=ex.execId, commission=commission), when)
        self._fills.append(fill)
        trade.fills.append(fill)
        st = trade.orderStatus
        st.avgFillPrice = (st.avgFillPrice * st.filled + price * shares) / (st.filled + shares)
        st.filled += shares
        st.status = "Filled" if st.filled >= trade.order.totalQuantity else "Submitted"

    def cancelOrder(self, order: Any) -> None:
        trade = next(t for t in self._trades if t.order is order)
        trade.orderStatus.status = "Cancelled"

    def sleep(self, seconds: float = 0) -> None:
        return None

    def disconnect(self) -> None:
        self.connected = False


def test_trades_fills_positions_and_account_are_mapped() -> None:
    from execution.brokers.ibkr import IbkrBroker

    ib = FakeIB()
    b = IbkrBroker(ib=ib)
    acct = b.account()
    assert (acct.equity, acct.cash, acct.buying_power) == (101234.5, 97634.5, 390538.0)
    assert b.positions() == {"MSFT": 12.0}

    placed = b.submit(req("ql-a", qty=10))
    assert placed.status == ACCEPTED and placed.client_order_id == "ql-a" and placed.qty == 10
    with pytest.raises(DuplicateOrderError, match="ql-a"):  # IBKR does not enforce unique orderRefs: we do
        b.submit(req("ql-a", qty=10))
    assert len(ib.trades()) == 1

    ib.execute("ql-a", 4, 180.10, 0.35)
    part = b.get_order("ql-a")
    assert part is not None and part.status == PARTIALLY_FILLED and part.filled_qty == 4
    ib.execute("ql-a", 6, 180.20, 0.65)
    done = b.get_order("ql-a")
    assert done is not None and done.status == FILLED
    assert done.filled_avg_price == pytest.approx((4 * 180.10 + 6 * 180.20) / 10, rel=1e-12)
    assert done.commission == pytest.approx(1.00)
    fills = b.fills("ql-a")
    assert [(f.fill_id, f.side, f.qty, f.price, f.commission) for f in fills] == [
        ("0001.1", "buy", 4.0, 180.10, 0.35), ("0001.2", "buy", 6.0, 180.20, 0.65)
    ]
    assert b.get_order("unknown") is None

    bad = b.submit(req("ql-x", symbol="XXX"))
    assert bad.status == REJECTED and "no trading permissions" in (bad.reason or "") and "201" in (bad.reason or "")

    b.submit(req("ql-s", side="sell", qty=5))
    assert [o.client_order_id for o in b.open_orders()] == ["ql-s"]
    assert b.cancel("ql-s").status == CANCELLED
    b.close()
    assert not ib.isConnected()
    with pytest.raises(BrokerUnavailableError, match="not connected"):
        b.positions()


def test_only_paper_accounts() -> None:
    from execution.brokers.ibkr import IbkrBroker

    with pytest.raises(BrokerError, match="non-paper account"):
        IbkrBroker(ib=FakeIB(accounts=("U7654321",)))
    with pytest.raises(ConfigError, match="not managed"):
        IbkrBroker(account="DU999", ib=FakeIB())
