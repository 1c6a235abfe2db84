"""Interactive Brokers adapter (ib_async) for TWS or IB Gateway running in **paper** mode.

Connection (environment, or constructor arguments)::

    QUANTLAKE_IBKR_HOST       default 127.0.0.1
    QUANTLAKE_IBKR_PORT       default 7497 (TWS paper); IB Gateway paper is 4002
    QUANTLAKE_IBKR_CLIENT_ID  default 17
    QUANTLAKE_IBKR_ACCOUNT    account code when the login manages several (paper codes start with "D")

IBKR has no secret in the API: TWS/Gateway hold the login.  The live ports (7496, 4001) are refused, and
so is a connection whose managed accounts are not paper accounts (codes starting with ``D``).

Orders: US stock on SMART routing in USD (:func:`stock_contract`), market, time in force DAY, with the
client order id in ``orderRef`` (:func:`market_order`).  IBKR does not enforce unique ``orderRef`` s, so
this adapter looks the id up among the session's open and completed orders before sending
(:class:`~execution.errors.DuplicateOrderError` if found).  A refused connection (TWS not running, API
disabled, wrong port) is one :class:`~execution.errors.BrokerUnavailableError` naming host and port.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
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

    def _order(self, trade: Any) -> BrokerOrder:
        status = _STATUS.get(trade.orderStatus.status, ACCEPTED)
        filled = float(trade.orderStatus.filled or 0.0)
        qty = float(trade.order.totalQuantity)
        if status == ACCEPTED and 0 < filled < qty:
            status = PARTIALLY_FILLED
        reason = None
        if status in (REJECTED, CANCELLED) and trade.log:
            last = trade.log[-1]
            reason = f"{last.status}: {last.message}" + (f" (code {last.errorCode})" if last.errorCode else "")
        commission = sum(float(f.commissionReport.commission or 0.0) for f in trade.fills)
        submitted = trade.log[0].time if trade.log else None
        return BrokerOrder(
            client_order_id=str(trade.order.orderRef),
            broker_order_id=str(trade.order.permId or trade.order.orderId),
            symbol=str(trade.contract.symbol).replace(" ", "-"),
            side="buy" if trade.order.action.upper() == "BUY" else "sell",
            qty=qty,
            status=status,
            filled_qty=filled,
            filled_avg_price=float(trade.orderStatus.avgFillPrice) if filled > 0 else None,
            commission=commission,
            submitted_at=submitted,
            reason=reason,
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
            if getattr(p.contract, "secType", "STK") != "STK" or not p.position:
                continue
            symbol = str(p.contract.symbol).replace(" ", "-")
            out[symbol] = out.get(symbol, 0.0) + float(p.position)
        return {s: q for s, q in out.items() if q}

    def submit(self, order: OrderRequest) -> BrokerOrder:
        self._guard("submit")
        if self._trade(order.client_order_id) is not None:
            raise DuplicateOrderError(f"IBKR already has an order with orderRef {order.client_order_id}")
        trade = self.ib.placeOrder(stock_contract(order.symbol), market_order(order, self.account_code))
        self.ib.sleep(0.5)  # let TWS acknowledge (or reject) the order
        return self._order(trade)

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

    def fills(self, client_order_id: str) -> list[BrokerFill]:
        self._guard("fills")
        out = []
        for f in self.ib.fills():
            if f.execution.orderRef != client_order_id:
                continue
            out.append(
                BrokerFill(
                    fill_id=f.execution.execId,
                    client_order_id=client_order_id,
                    symbol=str(f.contract.symbol).replace(" ", "-"),
                    side="buy" if f.execution.side.upper() in ("BOT", "BUY") else "sell",
                    qty=float(f.execution.shares),
                    price=float(f.execution.price),
                    commission=float(f.commissionReport.commission or 0.0),
                    filled_at=f.time,
                )
            )
        return out

    def close(self) -> None:
        ib = getattr(self, "ib", None)
        if ib is not None and ib.isConnected():
            ib.disconnect()
