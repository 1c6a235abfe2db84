"""Interactive Brokers adapter (ib_async) for TWS or IB Gateway running in **paper** mode.

Connection (environment, or constructor arguments)::

    QUANTLAKE_IBKR_HOST       default 127.0.0.1
    QUANTLAKE_IBKR_PORT       default 7497 (TWS paper); IB Gateway paper is 4002
    QUANTLAKE_IBKR_CLIENT_ID  default 17
    QUANTLAKE_IBKR_ACCOUNT    account code when the login manages several (paper codes start with "D")

IBKR has no secret in the API: TWS/Gateway hold the login.  The live ports (7496, 4001) are refused, and
so is a connection whose managed accounts are not paper accounts (codes starting with ``D``).

Orders: US stock on SMART routing in USD (:func:`stock_contract`), market, time in force DAY, with the
client order id in ``orderRef`` (:func:`market_order`).  Options: one leg as a qualified ``Option``, several
as a ``BAG`` combo of the qualified legs' conIds (:func:`combo_contract`), market or net limit
(:func:`option_order`); executions are reported per leg (the combo's own report is skipped).  IBKR does not enforce unique ``orderRef`` s, so
this adapter looks the id up among the session's open and completed orders before sending
(:class:`~execution.errors.DuplicateOrderError` if found).  A refused connection (TWS not running, API
disabled, wrong port) is one :class:`~execution.errors.BrokerUnavailableError` naming host and port.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from typing import Any

from execution.brokers.base import (
    ACCEPTED,
    CANCELLED,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    REJECTED,
    AccountState,
    BrokerFill,
    BrokerOrder,
    OrderRequest,
)
from execution.errors import BrokerUnavailableError, DuplicateOrderError
from execution.option_orders import MULTIPLIER as OPTION_MULTIPLIER
from execution.option_orders import ROOT_UNDERLYING, OptionLeg, option_root, parse_occ
from quantlake.errors import BrokerError, ConfigError, InvalidSymbolError

HOST_ENV, PORT_ENV, CLIENT_ENV, ACCOUNT_ENV = (
    "QUANTLAKE_IBKR_HOST",
    "QUANTLAKE_IBKR_PORT",
    "QUANTLAKE_IBKR_CLIENT_ID",
    "QUANTLAKE_IBKR_ACCOUNT",
)
PAPER_PORT = 7497
LIVE_PORTS = frozenset({7496, 4001})
_STATUS = {
    "PendingSubmit": NEW,
    "ApiPending": NEW,
    "PreSubmitted": ACCEPTED,
    "Submitted": ACCEPTED,
    "PendingCancel": ACCEPTED,
    "ApiUpdate": ACCEPTED,
    "Filled": FILLED,
    "Cancelled": CANCELLED,
    "ApiCancelled": CANCELLED,
    "Inactive": REJECTED,
    "ValidationError": REJECTED,
}


def ib_symbol(symbol: str) -> str:
    """quantlake's symbol → IBKR's (share classes use a space: ``BRK-B``/``BRK.B`` → ``BRK B``).  Indices
    and other non-stock symbols are refused."""
    if symbol.startswith("^") or "=" in symbol:
        raise InvalidSymbolError(f"{symbol!r} is an index or a future/FX symbol, not a stock IBKR can trade here")
    return symbol.replace("-", " ").replace(".", " ")


def stock_contract(symbol: str) -> Any:
    """An ib_async ``Stock`` on SMART routing in USD."""
    from ib_async import Stock

    return Stock(ib_symbol(symbol), "SMART", "USD")


def market_order(order: OrderRequest, account: str = "") -> Any:
    """An ib_async ``MarketOrder`` (DAY) carrying the client order id in ``orderRef``."""
    from ib_async import MarketOrder

    if order.qty <= 0 or order.qty != int(order.qty):
        raise ConfigError(f"IBKR stock orders need a positive whole number of shares, got {order.qty}")
    return MarketOrder(
        "BUY" if order.side == "buy" else "SELL",
        int(order.qty),
        orderRef=order.client_order_id,
        tif="DAY",
        account=account,
    )


def option_contract(leg: OptionLeg) -> Any:
    """An ib_async ``Option`` for one leg (SMART, USD; index options under their root, e.g. SPX)."""
    from ib_async import Option

    root = leg.root or option_root(leg.underlying)
    symbol = ib_symbol(leg.underlying) if not leg.underlying.startswith("^") else root
    return Option(symbol, f"{leg.expiry:%Y%m%d}", float(leg.strike), leg.right, "SMART", currency="USD",
                  tradingClass=root if leg.underlying.startswith("^") else "")  # fmt: skip


def combo_contract(legs: Sequence[OptionLeg], con_ids: Sequence[int]) -> Any:
    """A ``BAG`` contract (IBKR's combo): one ``ComboLeg`` per leg with its ``conId``, ``ratio`` and action."""
    from ib_async import ComboLeg, Contract

    first = legs[0]
    symbol = option_root(first.underlying) if first.underlying.startswith("^") else ib_symbol(first.underlying)
    return Contract(secType="BAG", symbol=symbol, exchange="SMART", currency="USD", comboLegs=[
        ComboLeg(conId=int(cid), ratio=abs(leg.ratio), action="BUY" if leg.ratio > 0 else "SELL", exchange="SMART")
        for leg, cid in zip(legs, con_ids, strict=True)])  # fmt: skip


def option_order(order: OrderRequest, account: str = "") -> Any:
    """The ib_async order of an option package: ``BUY`` ``qty`` units (a combo's net limit is > 0 for a
    debit, < 0 for a credit, IBKR's convention for combos); a single option buys or sells its contracts at
    the absolute limit.  ``orderRef`` carries the client order id."""
    from ib_async import LimitOrder, MarketOrder

    if order.qty <= 0 or order.qty != int(order.qty):
        raise ConfigError(f"IBKR option orders need a positive whole number of units, got {order.qty}")
    single = len(order.legs) == 1
    action = ("BUY" if order.legs[0].ratio > 0 else "SELL") if single else "BUY"
    qty = int(order.qty) * (abs(order.legs[0].ratio) if single else 1)
    common = {"orderRef": order.client_order_id, "tif": order.time_in_force.upper(), "account": account}
    if order.order_type == "limit":
        if order.limit_price is None:
            raise ConfigError(f"{order.client_order_id}: a limit order needs a limit price")
        price = abs(order.limit_price) if single else order.limit_price
        return LimitOrder(action, qty, round(float(price), 2), **common)
    return MarketOrder(action, qty, **common)


def _settings(host: str | None, port: int | None, client_id: int | None) -> tuple[str, int, int]:
    host = host or os.environ.get(HOST_ENV, "").strip() or "127.0.0.1"
    try:
        port = int(port if port is not None else os.environ.get(PORT_ENV, "").strip() or PAPER_PORT)
        client_id = int(client_id if client_id is not None else os.environ.get(CLIENT_ENV, "").strip() or 17)
    except ValueError:
        raise ConfigError(f"{PORT_ENV} and {CLIENT_ENV} must be whole numbers") from None
    if port in LIVE_PORTS:
        raise ConfigError(
            f"port {port} is an IBKR *live* trading port; quantlake trades paper accounts only "
            f"(TWS paper 7497, IB Gateway paper 4002)"
        )
    return host, port, client_id


class IbkrBroker:
    name = "ibkr"
    syncs = False  # sync() does not call the broker (see execution.brokers.guard)

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        client_id: int | None = None,
        account: str | None = None,
        timeout: float = 10.0,
        ib: Any | None = None,
    ) -> None:
        self.host, self.port, self.client_id = _settings(host, port, client_id)
        self.account_code = account or os.environ.get(ACCOUNT_ENV, "").strip()
        self.timeout = timeout
        self.ib = ib if ib is not None else self._connect()
        self._legs_by_conid: dict[int, OptionLeg] = {}
        self._check_paper()

    # ------------------------------------------------------------------ plumbing
    @property
    def where(self) -> str:
        return f"IBKR at {self.host}:{self.port} (client id {self.client_id})"

    def _connect(self) -> Any:
        from ib_async import IB

        logging.getLogger("ib_async").setLevel(logging.CRITICAL)  # its own "API connection failed" lines
        ib = IB()
        try:
            ib.connect(self.host, self.port, clientId=self.client_id, timeout=self.timeout)
        except ConnectionRefusedError:
            raise BrokerUnavailableError(
                f"cannot reach {self.where}: connection refused — start TWS or IB Gateway logged into a paper "
                f"account with the API enabled on port {self.port} (TWS: Configure > API > Settings)"
            ) from None
        except TimeoutError:
            raise BrokerUnavailableError(f"cannot reach {self.where}: no answer within {self.timeout:g} s") from None
        except (ConnectionError, OSError) as exc:
            raise BrokerUnavailableError(f"cannot reach {self.where}: {type(exc).__name__}: {exc}") from None
        return ib

    def _check_paper(self) -> None:
        accounts = [str(a) for a in (self.ib.managedAccounts() or [])]
        if self.account_code and accounts and self.account_code not in accounts:
            raise ConfigError(f"IBKR account {self.account_code!r} is not managed by this login ({', '.join(accounts)})")
        live = [a for a in ([self.account_code] if self.account_code else accounts) if not a.startswith("D")]
        if live:
            self.close()
            raise BrokerError(
                f"{self.where} is logged into non-paper account(s) {', '.join(live)}; quantlake only trades paper accounts"
            )

    def _trade(self, client_order_id: str) -> Any | None:
        found = [t for t in self.ib.trades() if getattr(t.order, "orderRef", "") == client_order_id]
        return found[-1] if found else None

    def _legs(self, contract: Any) -> tuple[OptionLeg, ...]:
        """The option legs of a trade's contract (a BAG's combo legs by conId; a single OPT)."""
        if contract.secType == "OPT":
            leg = _leg_of(contract)
            return (leg,) if leg is not None else ()
        if contract.secType == "BAG":
            out = []
            for c in contract.comboLegs or []:
                known = self._legs_by_conid.get(int(c.conId))
                if known is not None:
                    out.append(known.scaled((1 if c.action == "BUY" else -1) * int(c.ratio)))
            return tuple(out)
        return ()

    def _order(self, trade: Any) -> BrokerOrder:
        status = _STATUS.get(trade.orderStatus.status, ACCEPTED)
        filled = float(trade.orderStatus.filled or 0.0)
        qty = float(trade.order.totalQuantity)
        legs = self._legs(trade.contract)
        if status == ACCEPTED and 0 < filled < qty:
            status = PARTIALLY_FILLED
        reason = None
        if status in (REJECTED, CANCELLED) and trade.log:
            last = trade.log[-1]
            reason = f"{last.status}: {last.message}" + (f" (code {last.errorCode})" if last.errorCode else "")
        commission = sum(float(f.commissionReport.commission or 0.0) for f in trade.fills)
        submitted = trade.log[0].time if trade.log else None
        side = "buy" if trade.order.action.upper() == "BUY" else "sell"
        symbol = str(trade.contract.symbol).replace(" ", "-")
        limit = float(trade.order.lmtPrice) if trade.order.orderType == "LMT" else None
        if legs:
            symbol = legs[0].underlying
            if len(legs) == 1:  # a single option: one contract per unit, bought or sold
                legs = (legs[0].scaled(1 if side == "buy" else -1),)
            elif limit is not None:
                side = "buy" if limit > 0 else "sell"
        return BrokerOrder(
            client_order_id=str(trade.order.orderRef),
            broker_order_id=str(trade.order.permId or trade.order.orderId),
            symbol=symbol,
            side=side,  # type: ignore[arg-type]
            qty=qty,
            status=status,
            filled_qty=filled,
            filled_avg_price=float(trade.orderStatus.avgFillPrice) if filled > 0 else None,
            commission=commission,
            submitted_at=submitted,
            reason=reason,
            legs=legs,
            limit_price=limit,
        )

    def _guard(self, op: str) -> None:
        if not self.ib.isConnected():
            raise BrokerUnavailableError(f"{self.where}: not connected ({op}); TWS/Gateway went away")

    # ------------------------------------------------------------------ protocol
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sync(self, as_of: dt.date) -> None:
        """Nothing to do: IBKR fills orders itself (``syncs = False``: not a broker call)."""

    def account(self) -> AccountState:
        self._guard("account")
        values: dict[str, float] = {}
        for v in self.ib.accountValues(self.account_code):
            if v.currency in ("USD", "BASE") and v.tag in ("NetLiquidation", "TotalCashValue", "BuyingPower"):
                try:
                    values.setdefault(v.tag, float(v.value))
                except ValueError:
                    continue
        if "NetLiquidation" not in values:
            raise BrokerError(f"{self.where}: no NetLiquidation in the account values (account {self.account_code or '?'})")
        return AccountState(
            equity=values["NetLiquidation"],
            cash=values.get("TotalCashValue", 0.0),
            buying_power=values.get("BuyingPower", values.get("TotalCashValue", 0.0)),
        )

    def positions(self) -> dict[str, float]:
        self._guard("positions")
        out: dict[str, float] = {}
        for p in self.ib.positions(self.account_code):
            sec = getattr(p.contract, "secType", "STK")
            if sec not in ("STK", "OPT") or not p.position:
                continue
            leg = _leg_of(p.contract) if sec == "OPT" else None
            if sec == "OPT" and leg is None:
                continue
            symbol = leg.occ if leg is not None else str(p.contract.symbol).replace(" ", "-")
            out[symbol] = out.get(symbol, 0.0) + float(p.position)
        return {s: q for s, q in out.items() if q}

    def submit(self, order: OrderRequest) -> BrokerOrder:
        self._guard("submit")
        if self._trade(order.client_order_id) is not None:
            raise DuplicateOrderError(f"IBKR already has an order with orderRef {order.client_order_id}")
        if order.is_option:
            contract = self._option_contract(order)
            trade = self.ib.placeOrder(contract, option_order(order, self.account_code))
        else:
            trade = self.ib.placeOrder(stock_contract(order.symbol), market_order(order, self.account_code))
        self.ib.sleep(0.5)  # let TWS acknowledge (or reject) the order
        return self._order(trade)

    def _option_contract(self, order: OrderRequest) -> Any:
        """The leg's qualified ``Option`` (one leg) or a ``BAG`` of the qualified legs' conIds."""
        contracts = [option_contract(leg) for leg in order.legs]
        qualified = self.ib.qualifyContracts(*contracts)
        if len(qualified) != len(contracts) or not all(getattr(c, "conId", 0) for c in qualified):
            missing = [leg.occ for leg, c in zip(order.legs, contracts, strict=True) if not getattr(c, "conId", 0)]
            raise InvalidSymbolError(f"IBKR does not know the option contract(s) {', '.join(missing)}")
        for leg, c in zip(order.legs, qualified, strict=True):
            self._legs_by_conid[int(c.conId)] = OptionLeg(leg.underlying, leg.expiry, leg.strike, leg.right, 1, leg.root)
        if len(order.legs) == 1:
            return qualified[0]
        return combo_contract(order.legs, [int(c.conId) for c in qualified])

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self._guard("get_order")
        trade = self._trade(client_order_id)
        return None if trade is None else self._order(trade)

    def open_orders(self) -> list[BrokerOrder]:
        self._guard("open_orders")
        return [self._order(t) for t in self.ib.openTrades() if getattr(t.order, "orderRef", "")]

    def cancel(self, client_order_id: str) -> BrokerOrder:
        self._guard("cancel")
        trade = self._trade(client_order_id)
        if trade is None:
            raise BrokerError(f"IBKR has no order {client_order_id} to cancel")
        if self._order(trade).is_open:
            self.ib.cancelOrder(trade.order)
            self.ib.sleep(0.5)
        return self._order(trade)

    def replace(self, client_order_id: str, new_client_order_id: str, limit_price: float) -> BrokerOrder:
        """IBKR modifies an order in place: the same order id placed again with the new limit (and the new
        client id in ``orderRef``)."""
        self._guard("replace")
        trade = self._trade(client_order_id)
        if trade is None:
            raise BrokerError(f"IBKR has no order {client_order_id} to replace")
        single = getattr(trade.contract, "secType", "") != "BAG"
        trade.order.lmtPrice = round(abs(float(limit_price)) if single else float(limit_price), 2)
        trade.order.orderRef = new_client_order_id
        self.ib.placeOrder(trade.contract, trade.order)
        self.ib.sleep(0.5)
        return self._order(trade)

    def fills(self, client_order_id: str) -> list[BrokerFill]:
        self._guard("fills")
        out = []
        for f in self.ib.fills():
            if f.execution.orderRef != client_order_id:
                continue
            sec = getattr(f.contract, "secType", "STK")
            if sec == "BAG":  # the combo's own execution report: its legs are reported one by one
                continue
            leg = _leg_of(f.contract) if sec == "OPT" else None
            out.append(
                BrokerFill(
                    fill_id=f.execution.execId,
                    client_order_id=client_order_id,
                    symbol=leg.occ if leg is not None else str(f.contract.symbol).replace(" ", "-"),
                    side="buy" if f.execution.side.upper() in ("BOT", "BUY") else "sell",
                    qty=float(f.execution.shares),
                    price=float(f.execution.price),
                    commission=float(f.commissionReport.commission or 0.0),
                    filled_at=f.time,
                    multiplier=OPTION_MULTIPLIER if leg is not None else 1.0,
                )
            )
        return out

    def close(self) -> None:
        ib = getattr(self, "ib", None)
        if ib is not None and ib.isConnected():
            ib.disconnect()


def _leg_of(contract: Any) -> OptionLeg | None:
    """The option leg (ratio 1) of an ``OPT`` contract: from its OCC ``localSymbol``, else its fields."""
    local = str(getattr(contract, "localSymbol", "") or "")
    if local:
        leg = parse_occ(local)
        if leg is not None:
            return leg
    try:
        expiry = dt.datetime.strptime(str(contract.lastTradeDateOrContractMonth)[:8], "%Y%m%d").date()
    except ValueError:
        return None
    root = str(getattr(contract, "tradingClass", "") or contract.symbol)
    underlying = ROOT_UNDERLYING.get(root, str(contract.symbol).replace(" ", "-"))
    return OptionLeg(underlying, expiry, float(contract.strike), "C" if str(contract.right).upper().startswith("C") else "P", 1,
                     root)  # fmt: skip
