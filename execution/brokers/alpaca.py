"""Alpaca adapter (alpaca-py ``TradingClient``), paper endpoint by default.

Keys: ``$ALPACA_API_KEY`` / ``$ALPACA_API_SECRET`` or the Prefect Secret blocks ``alpaca-api-key`` /
``alpaca-api-secret``.  ``$ALPACA_BASE_URL`` (or ``base_url``) points the client elsewhere — a proxy, or
the local fake server the tests use (alpaca-py's ``url_override``).

Market orders are sent with time in force ``day`` and the caller's client order id.  Option orders
(:func:`option_request`): a single option by its OCC symbol, or a multi-leg ``mleg`` order (2-4 legs, one
net price, filled together); expiry events come from the account activities (:meth:`AlpacaBroker.events`).
Alpaca refuses a second order with the same client id (HTTP 422), which this adapter turns into
:class:`~execution.errors.DuplicateOrderError`.  A refusal of the order itself (HTTP 403/422: buying
power, unknown asset...) is returned as a ``rejected`` order with Alpaca's message, not raised.  An
unreachable server (DNS failure offline, refused connection, timeout) raises
:class:`~execution.errors.BrokerUnavailableError`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from execution.brokers.base import (
    ACCEPTED,
    CANCELLED,
    EXPIRED,
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
from execution.option_orders import MULTIPLIER, OptionLeg, parse_occ
from execution.secrets import secret
from quantlake.errors import BrokerError, MissingCredentialsError
from quantlake.redact import redact_urls, strip_url_credentials

T = TypeVar("T")
KEY_ENV, SECRET_ENV, URL_ENV = "ALPACA_API_KEY", "ALPACA_API_SECRET", "ALPACA_BASE_URL"
KEY_BLOCK, SECRET_BLOCK = "alpaca-api-key", "alpaca-api-secret"
PAPER_URL = "https://paper-api.alpaca.markets"

_STATUS = {
    "new": NEW,
    "pending_new": NEW,
    "accepted": ACCEPTED,
    "accepted_for_bidding": ACCEPTED,
    "pending_review": ACCEPTED,
    "held": ACCEPTED,
    "calculated": ACCEPTED,
    "done_for_day": ACCEPTED,
    "pending_cancel": ACCEPTED,
    "pending_replace": ACCEPTED,
    "stopped": ACCEPTED,
    "suspended": ACCEPTED,
    "partially_filled": PARTIALLY_FILLED,
    "filled": FILLED,
    "canceled": CANCELLED,
    "replaced": CANCELLED,
    "expired": EXPIRED,
    "rejected": REJECTED,
}


class _TimeoutSession(requests.Session):
    """alpaca-py sets no timeout; a hung server must not hang the trading run."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def _credentials() -> tuple[str, str]:
    key, sec = secret(KEY_ENV, KEY_BLOCK), secret(SECRET_ENV, SECRET_BLOCK)
    if not key or not sec:
        missing = [n for n, v in ((KEY_ENV, key), (SECRET_ENV, sec)) if not v]
        raise MissingCredentialsError(
            f"Alpaca needs {' and '.join(missing)} (paper-trading keys from the Alpaca dashboard) in the "
            f"environment or the Prefect Secret blocks {KEY_BLOCK!r} / {SECRET_BLOCK!r}"
        )
    return key, sec


def _enum(value: Any) -> str:
    return str(getattr(value, "value", value))


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


class AlpacaBroker:
    name = "alpaca"
    syncs = False  # sync() does not call the broker (see execution.brokers.guard)

    def __init__(self, base_url: str | None = None, timeout: float = 15.0, client: Any | None = None) -> None:
        self.base_url = (base_url or os.environ.get(URL_ENV) or PAPER_URL).rstrip("/")
        self.display_url = strip_url_credentials(self.base_url)  # for messages: never the URL's credentials
        if client is None:
            with warnings.catch_warnings():  # alpaca-py imports websockets.legacy (deprecated upstream)
                warnings.simplefilter("ignore", DeprecationWarning)
                from alpaca.trading.client import TradingClient

            key, sec = _credentials()
            client = TradingClient(api_key=key, secret_key=sec, paper=True, url_override=self.base_url)
            client._session = _TimeoutSession(timeout)  # alpaca-py keeps its requests session here
            client._retry = 0  # the circuit breaker decides about retrying, not a 3 s sleep per call
        self.client = client

    # ------------------------------------------------------------------ plumbing
    def _call(self, op: str, fn: Callable[[], T]) -> T:
        from alpaca.common.exceptions import APIError

        try:
            return fn()
        except APIError as exc:
            status = exc.status_code
            raise BrokerError(f"Alpaca {op} failed: HTTP {status}: {_message(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailableError(
                f"cannot reach Alpaca at {self.display_url} ({op}): {type(exc).__name__}: {_short(exc)}"
            ) from None

    def _order(self, o: Any) -> BrokerOrder:
        status = _STATUS.get(_enum(o.status), ACCEPTED)
        legs = _option_legs(o)
        symbol = str(o.symbol) if o.symbol else (legs[0].underlying if legs else "")
        if legs and o.symbol and _enum(getattr(o, "order_class", "")) != "mleg":
            symbol = legs[0].underlying  # a single option: the order is on the underlying
        side = _enum(o.side) if o.side else ("buy" if (_float(o.limit_price) or 0.0) > 0 else "sell")
        return BrokerOrder(
            client_order_id=str(o.client_order_id),
            broker_order_id=str(o.id),
            symbol=symbol,
            side="buy" if side == "buy" else "sell",
            qty=float(o.qty or 0.0),
            status=status,
            filled_qty=float(o.filled_qty or 0.0),
            filled_avg_price=_float(o.filled_avg_price),
            submitted_at=o.submitted_at,
            reason=None,
            legs=legs,
            limit_price=_float(o.limit_price),
        )

    # ------------------------------------------------------------------ protocol
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sync(self, as_of: dt.date) -> None:
        """Nothing to do: Alpaca fills orders itself (``syncs = False``: not a broker call)."""

    def account(self) -> AccountState:
        a = self._call("get_account", self.client.get_account)
        equity = _float(a.equity) or 0.0
        return AccountState(equity=equity, cash=_float(a.cash) or 0.0, buying_power=_float(a.buying_power) or 0.0)

    def positions(self) -> dict[str, float]:
        out = {}
        for p in self._call("get_all_positions", self.client.get_all_positions):
            qty = float(p.qty)
            if _enum(p.side) == "short" and qty > 0:
                qty = -qty
            if qty:
                out[str(p.symbol)] = qty
        return out

    def submit(self, order: OrderRequest) -> BrokerOrder:
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        req: Any
        if order.is_option:
            req = option_request(order)
        else:
            req = MarketOrderRequest(
                symbol=order.symbol,
                qty=order.qty,
                side=OrderSide.BUY if order.side == "buy" else OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                client_order_id=order.client_order_id,
            )
        try:
            placed = self.client.submit_order(req)
        except APIError as exc:
            message = _message(exc)
            if exc.status_code == 422 and "client_order_id" in message.lower():
                raise DuplicateOrderError(f"Alpaca already has order {order.client_order_id}: {message}") from None
            if exc.status_code in (403, 422):
                return BrokerOrder(
                    client_order_id=order.client_order_id,
                    broker_order_id="",
                    symbol=order.symbol,
                    side=order.side,
                    qty=order.qty,
                    status=REJECTED,
                    reason=f"Alpaca refused the order (HTTP {exc.status_code}): {message}",
                )
            raise BrokerError(f"Alpaca submit_order failed: HTTP {exc.status_code}: {message}") from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailableError(
                f"cannot reach Alpaca at {self.display_url} (submit_order): {type(exc).__name__}: {_short(exc)}"
            ) from None
        return self._order(placed)

    def _raw_order(self, client_order_id: str) -> Any | None:
        from alpaca.common.exceptions import APIError

        try:
            return self.client.get_order_by_client_id(client_order_id)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise BrokerError(f"Alpaca get_order failed: HTTP {exc.status_code}: {_message(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailableError(
                f"cannot reach Alpaca at {self.display_url} (get_order): {type(exc).__name__}: {_short(exc)}"
            ) from None

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        raw = self._raw_order(client_order_id)
        return None if raw is None else self._order(raw)

    def open_orders(self) -> list[BrokerOrder]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        found = self._call(
            "get_orders", lambda: self.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))
        )
        return [self._order(o) for o in found]

    def cancel(self, client_order_id: str) -> BrokerOrder:
        order = self.get_order(client_order_id)
        if order is None:
            raise BrokerError(f"Alpaca has no order {client_order_id} to cancel")
        if order.is_open:
            broker_id = order.broker_order_id
            self._call("cancel_order_by_id", lambda: self.client.cancel_order_by_id(broker_id))
            order = self.get_order(client_order_id) or order
        return order

    def replace(self, client_order_id: str, new_client_order_id: str, limit_price: float) -> BrokerOrder:
        """Alpaca's replace (``PATCH /v2/orders/{id}``): a new order with the new limit and client id replaces
        the old one (which becomes ``replaced``)."""
        from alpaca.trading.requests import ReplaceOrderRequest

        order = self.get_order(client_order_id)
        if order is None:
            raise BrokerError(f"Alpaca has no order {client_order_id} to replace")
        req = ReplaceOrderRequest(limit_price=round(float(limit_price), 2), client_order_id=new_client_order_id)
        placed = self._call("replace_order_by_id", lambda: self.client.replace_order_by_id(order.broker_order_id, req))
        return self._order(placed)

    def fills(self, client_order_id: str) -> list[BrokerFill]:
        """Alpaca's order carries its cumulative fill: one record per order (per leg of a multi-leg order, each
        leg being an order of its own at Alpaca) that grows as it fills."""
        raw = self._raw_order(client_order_id)
        if raw is None:
            return []
        o = self._order(raw)
        if o.filled_qty <= 0:
            return []
        when = raw.filled_at or raw.updated_at or self.now()
        if raw.legs:
            return [
                BrokerFill(fill_id=str(leg.id), client_order_id=client_order_id, symbol=str(leg.symbol),
                           side="buy" if _enum(leg.side) == "buy" else "sell", qty=float(leg.filled_qty or 0.0),
                           price=float(_float(leg.filled_avg_price) or 0.0), commission=0.0,
                           filled_at=leg.filled_at or when, multiplier=MULTIPLIER)
                for leg in raw.legs if float(leg.filled_qty or 0.0) > 0
            ]  # fmt: skip
        if o.filled_avg_price is None:
            return []
        if o.legs:  # a single option: contracts at a price per share
            return [BrokerFill(fill_id=o.broker_order_id, client_order_id=client_order_id, symbol=str(raw.symbol),
                               side=o.side, qty=o.filled_qty, price=o.filled_avg_price, commission=0.0,
                               filled_at=when, multiplier=MULTIPLIER)]  # fmt: skip
        return [
            BrokerFill(
                fill_id=o.broker_order_id,
                client_order_id=client_order_id,
                symbol=o.symbol,
                side=o.side,
                qty=o.filled_qty,
                price=o.filled_avg_price,
                commission=0.0,
                filled_at=when,
            )
        ]

    def events(self, since: dt.date | None = None) -> list[BrokerFill]:
        """Option expiry events from Alpaca's account activities (non-trade activities ``OPASN`` assignment,
        ``OPEXC`` exercise, ``OPEXP`` expiry, and the ``OPTRD`` share trades they cause), after ``since``."""
        params: dict[str, str] = {"activity_types": ",".join(_EVENTS)}
        if since is not None:
            params["after"] = since.isoformat()
        rows = self._call("get_account_activities", lambda: self.client.get("/account/activities", params)) or []
        out = []
        for a in rows:
            kind = _EVENTS.get(str(a.get("activity_type")))
            qty = float(a.get("qty") or 0.0)
            if kind is None or not qty:
                continue
            option = parse_occ(str(a.get("symbol", ""))) is not None
            day = dt.date.fromisoformat(str(a.get("date"))[:10])
            out.append(BrokerFill(fill_id=str(a.get("id")), client_order_id=f"{kind}-{day:%Y%m%d}-{a.get('symbol')}",
                                  symbol=str(a.get("symbol")), side="buy" if qty > 0 else "sell", qty=abs(qty),
                                  price=float(a.get("price") or 0.0), commission=0.0,
                                  filled_at=dt.datetime.combine(day, dt.time(21, 0), tzinfo=dt.UTC),
                                  multiplier=MULTIPLIER if option else 1.0, kind=kind))  # fmt: skip
        return out

    def close(self) -> None:
        session = getattr(self.client, "_session", None)
        if session is not None:
            session.close()


_EVENTS = {"OPASN": "assign", "OPEXC": "exercise", "OPEXP": "expire", "OPTRD": "option_trade"}


def _option_legs(o: Any) -> tuple[OptionLeg, ...]:
    """The option legs of an Alpaca order (a multi-leg order's ``legs``, or a single option's symbol)."""
    if o.legs:
        out = []
        for leg in o.legs:
            sign = 1 if _enum(leg.side) == "buy" else -1
            parsed = parse_occ(str(leg.symbol))
            if parsed is not None:
                out.append(parsed.scaled(sign * int(float(leg.ratio_qty or 1))))
        return tuple(out)
    parsed = parse_occ(str(o.symbol or ""))
    if parsed is None:
        return ()
    return (parsed.scaled(1 if _enum(o.side) == "buy" else -1),)


def option_request(order: OrderRequest) -> Any:
    """The alpaca-py request of an option order: a single option (``simple`` class, contracts = units ×
    ratio) or a multi-leg ``mleg`` order (``qty`` = units, each leg's ``ratio_qty``); market, or limit at the
    net price per unit (> 0 debit, < 0 credit, as Alpaca takes it).  Options trade ``day`` orders only."""
    from alpaca.trading.enums import OrderClass, OrderSide, PositionIntent, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, OptionLegRequest

    def intent(leg: OptionLeg) -> PositionIntent:
        if order.intent == "close":
            return PositionIntent.BUY_TO_CLOSE if leg.ratio > 0 else PositionIntent.SELL_TO_CLOSE
        return PositionIntent.BUY_TO_OPEN if leg.ratio > 0 else PositionIntent.SELL_TO_OPEN

    common: dict[str, Any] = {"time_in_force": TimeInForce.DAY, "client_order_id": order.client_order_id}
    if order.order_type == "limit":
        if order.limit_price is None:
            raise BrokerError(f"{order.client_order_id}: a limit order needs a limit price")
        cls: Any = LimitOrderRequest
        common["limit_price"] = round(float(order.limit_price if len(order.legs) > 1 else abs(order.limit_price)), 2)
    else:
        cls = MarketOrderRequest
    if len(order.legs) == 1:
        leg = order.legs[0]
        return cls(symbol=leg.occ, qty=abs(leg.ratio) * order.qty, side=OrderSide.BUY if leg.ratio > 0 else OrderSide.SELL,
                   position_intent=intent(leg), **common)  # fmt: skip
    legs = [OptionLegRequest(symbol=leg.occ, ratio_qty=abs(leg.ratio), side=OrderSide.BUY if leg.ratio > 0
                             else OrderSide.SELL, position_intent=intent(leg)) for leg in order.legs]  # fmt: skip
    return cls(qty=order.qty, order_class=OrderClass.MLEG, legs=legs, **common)


def _message(exc: Exception) -> str:
    raw = str(exc)
    try:
        return str(json.loads(raw).get("message", raw))[:300]
    except (ValueError, AttributeError):
        return raw[:300]


def _short(exc: Exception) -> str:
    text = str(exc)
    if "NameResolutionError" in text or "Failed to resolve" in text:
        return "DNS lookup failed (offline?)"
    if "Connection refused" in text:
        return "connection refused"
    return redact_urls(text)[:200]
