"""Option orders on IBKR through ib_async: a single option as a qualified ``Option``, a multi-leg package as a
``BAG`` combo of the legs' conIds with one net limit (IBKR's convention: > 0 debit, < 0 credit), executions
reported per leg (plus the combo's own report, skipped), a partial fill, a refusal and option positions —
against a fake ``IB`` holding real ib_async records (contracts, orders, trades, fills)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from execution.brokers.base import ACCEPTED, FILLED, PARTIALLY_FILLED, REJECTED, OrderRequest
from execution.errors import DuplicateOrderError
from execution.option_orders import OptionLeg
from quantlake.errors import InvalidSymbolError
from tests.test_ibkr_broker import FakeIB

EXP = dt.date(2024, 3, 15)
SPREAD = (OptionLeg("^GSPC", EXP, 4900.0, "P", -1), OptionLeg("^GSPC", EXP, 4850.0, "P", 1))


class FakeIBOptions(FakeIB):
    """Adds ``qualifyContracts`` (conIds and OCC local symbols for known strikes) and per-leg executions."""

    def __init__(self) -> None:
        super().__init__()
        self.con_ids: dict[tuple[str, str, float, str], int] = {}
        self.placed: list[tuple[Any, Any]] = []

    def qualifyContracts(self, *contracts: Any) -> list[Any]:
        out = []
        for c in contracts:
            if c.strike == 9999.0:  # a strike the exchange does not list: IBKR leaves it unqualified
                continue
            key = (c.symbol, c.lastTradeDateOrContractMonth, float(c.strike), c.right)
            c.conId = self.con_ids.setdefault(key, 700_000 + len(self.con_ids))
            root = c.tradingClass or c.symbol
            c.localSymbol = f"{root.ljust(6)}{c.lastTradeDateOrContractMonth[2:]}{c.right}{round(c.strike * 1000):08d}"
            out.append(c)
        return out

    def placeOrder(self, contract: Any, order: Any) -> Any:
        self.placed.append((contract, order))
        return super().placeOrder(contract, order)

    def execute_combo(self, ref: str, units: float, leg_prices: list[float]) -> None:
        """Per-leg executions of a BAG order (and the combo's own report), like TWS's execDetails."""
        from ib_async import CommissionReport, Contract, Execution, Fill, Option

        trade = next(t for t in self._trades if t.order.orderRef == ref)
        by_id = {v: k for k, v in self.con_ids.items()}
        for leg, price in zip(trade.contract.comboLegs, leg_prices, strict=True):
            symbol, expiry, strike, right = by_id[leg.conId]
            n = len(self._fills) + 1
            when = dt.datetime(2024, 2, 27, 14, 30, n, tzinfo=dt.UTC)
            opt = Option(symbol, expiry, strike, right, "SMART", tradingClass="SPX", conId=leg.conId,
                         localSymbol=f"SPX   {expiry[2:]}{right}{round(strike * 1000):08d}")  # fmt: skip
            ex = Execution(execId=f"0002.{n}", time=when, side="BOT" if leg.action == "BUY" else "SLD",
                           shares=units * leg.ratio, price=price, orderRef=ref)  # fmt: skip
            fill = Fill(opt, ex, CommissionReport(execId=ex.execId, commission=0.65 * units * leg.ratio), when)
            self._fills.append(fill)
            trade.fills.append(fill)
        net = sum((1 if g.action == "BUY" else -1) * g.ratio * p for g, p in zip(trade.contract.comboLegs, leg_prices,
                                                                               strict=True))  # fmt: skip
        bag = Execution(execId=f"0002.bag.{len(self._fills)}", time=when, side="BOT", shares=units, price=net, orderRef=ref)
        self._fills.append(Fill(Contract(secType="BAG", symbol="SPX"), bag, CommissionReport(execId=bag.execId), when))
        st = trade.orderStatus
        st.avgFillPrice = (st.avgFillPrice * st.filled + net * units) / (st.filled + units)
        st.filled += units
        st.status = "Filled" if st.filled >= trade.order.totalQuantity else "Submitted"


def spread(cid: str, units: float = 2, limit: float | None = -1.85) -> OrderRequest:
    return OrderRequest(cid, "^GSPC", "sell", units, dt.date(2024, 2, 26), -1.9, order_type="limit" if limit else "market",
                        legs=SPREAD, limit_price=limit, time_in_force="gtc")  # type: ignore[arg-type]  # fmt: skip


def test_combo_order_legs_fills_and_partial_fill() -> None:
    from ib_async import Option, Position

    from execution.brokers.ibkr import IbkrBroker

    ib = FakeIBOptions()
    b = IbkrBroker(ib=ib)
    placed = b.submit(spread("ql-ps"))
    contract, order = ib.placed[-1]
    assert contract.secType == "BAG" and contract.symbol == "SPX" and len(contract.comboLegs) == 2
    legs = [(g.action, g.ratio, g.exchange) for g in contract.comboLegs]
    assert legs == [("SELL", 1, "SMART"), ("BUY", 1, "SMART")] and all(g.conId for g in contract.comboLegs)
    assert (order.action, order.totalQuantity, order.orderType, order.lmtPrice, order.tif, order.orderRef) == (
        "BUY", 2, "LMT", -1.85, "GTC", "ql-ps")
    assert placed.status == ACCEPTED and placed.symbol == "^GSPC" and placed.side == "sell"
    assert placed.legs == tuple(OptionLeg(g.underlying, g.expiry, g.strike, g.right, g.ratio, "SPX") for g in SPREAD)
    with pytest.raises(DuplicateOrderError):
        b.submit(spread("ql-ps"))

    ib.execute_combo("ql-ps", 1, [4.10, 2.20])
    part = b.get_order("ql-ps")
    assert part is not None and part.status == PARTIALLY_FILLED and part.filled_qty == 1
    assert part.filled_avg_price == pytest.approx(-4.10 + 2.20)
    ib.execute_combo("ql-ps", 1, [4.00, 2.20])
    done = b.get_order("ql-ps")
    assert done is not None and done.status == FILLED and done.filled_avg_price == pytest.approx((-1.9 - 1.8) / 2)
    fills = b.fills("ql-ps")  # the BAG's own report is not a fill of a position
    assert [(f.symbol, f.side, f.qty, f.price, f.multiplier) for f in fills] == [
        ("SPX240315P04900000", "sell", 1.0, 4.10, 100.0), ("SPX240315P04850000", "buy", 1.0, 2.20, 100.0),
        ("SPX240315P04900000", "sell", 1.0, 4.00, 100.0), ("SPX240315P04850000", "buy", 1.0, 2.20, 100.0)]

    ib._positions.append(Position("DU1234567", Option("SPX", "20240315", 4900.0, "P", "SMART", tradingClass="SPX",
                                                      localSymbol="SPX   240315P04900000"), -2.0, 410.0))  # fmt: skip
    assert b.positions() == {"MSFT": 12.0, "SPX240315P04900000": -2.0}


def test_single_option_refusal_and_unknown_contract() -> None:
    from execution.brokers.ibkr import IbkrBroker

    ib = FakeIBOptions()
    b = IbkrBroker(ib=ib)
    one = OrderRequest("ql-1", "SPY", "buy", 3, dt.date(2024, 2, 26), 2.0, legs=(OptionLeg("SPY", EXP, 500.0, "C", 1),))
    got = b.submit(one)
    contract, order = ib.placed[-1]
    assert contract.secType == "OPT" and contract.localSymbol == "SPY   240315C00500000"
    assert (order.action, order.totalQuantity, order.orderType) == ("BUY", 3, "MKT")
    assert got.legs == (OptionLeg("SPY", EXP, 500.0, "C", 1, "SPY"),) and got.qty == 3

    # the fake refuses contracts on XXX (TWS: status Inactive with an error): the order comes back REJECTED
    bad = b.submit(OrderRequest("ql-2", "XXX", "buy", 1, dt.date(2024, 2, 26), 1.0,
                                legs=(OptionLeg("XXX", EXP, 10.0, "C", 1),)))  # fmt: skip
    assert bad.status == REJECTED and "no trading permissions" in (bad.reason or "")
    with pytest.raises(InvalidSymbolError, match="SPY240315C09999000"):
        b.submit(OrderRequest("ql-3", "SPY", "buy", 1, dt.date(2024, 2, 26), 1.0,
                              legs=(OptionLeg("SPY", EXP, 9999.0, "C", 1),)))  # fmt: skip


def test_replace_modifies_the_working_combo_in_place() -> None:
    from execution.brokers.ibkr import IbkrBroker

    ib = FakeIBOptions()
    b = IbkrBroker(ib=ib)
    b.submit(spread("ql-w"))
    contract, order = ib.placed[-1]
    got = b.replace("ql-w", "ql-w-r1", -1.60)
    again_contract, again_order = ib.placed[-1]
    assert again_order is order and again_contract is contract  # the same order id placed again: a modification
    assert (order.lmtPrice, order.orderRef) == (-1.60, "ql-w-r1") and got.client_order_id == "ql-w-r1"
    assert got.limit_price == -1.60 and b.get_order("ql-w") is None
