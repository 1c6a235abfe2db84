"""The one protocol every broker adapter implements, and the plain records it speaks.

Quantities are shares (always positive in orders and fills; the side gives the direction); positions are
signed (negative = short).  Orders are identified by the caller's ``client_order_id`` — derived from
(date, strategy, symbol, leg), so the same decision always has the same id and a broker that already has it
must not get it again (see :mod:`execution.orders`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

from execution.option_orders import OptionLeg

Side = Literal["buy", "sell"]

# statuses of an order in the audit trail (the first four come from the trader, the rest from brokers)
PLANNED = "planned"  # decided, not yet recorded for submission (dry run)
PENDING_SUBMIT = "pending_submit"  # recorded, about to be sent (or the send's outcome is unknown)
RISK_REJECTED = "risk_rejected"  # the risk gate refused it; never sent
NOT_SENT = "not_sent"  # not sent (circuit open, kill switch, expired intent)
NEW = "new"
ACCEPTED = "accepted"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"
EXPIRED = "expired"

OPEN_STATUSES = frozenset({NEW, ACCEPTED, PARTIALLY_FILLED})
FINAL_STATUSES = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED, RISK_REJECTED, NOT_SENT})


@dataclass(frozen=True)
class OrderRequest:
    """An order decided at the close of ``trade_date`` (fills at the next session).

    Shares: ``qty`` shares of ``symbol``, ``ref_price`` the close it was sized at (the paper broker checks
    buying power with it).  Options (``legs`` given, :class:`execution.option_orders.OptionLeg`): one package
    of legs on the underlying ``symbol`` — a single option, a spread, a condor, a calendar — traded as one
    order of ``qty`` units, each leg ``ratio`` contracts per unit; ``ref_price`` and ``limit_price`` are net
    prices per unit and per share (> 0 a debit paid, < 0 a credit received); ``side`` is ``buy`` for a debit
    and ``sell`` for a credit; ``intent`` says whether it opens or closes positions."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    trade_date: dt.date
    ref_price: float
    order_type: Literal["market", "limit"] = "market"
    legs: tuple[OptionLeg, ...] = ()
    limit_price: float | None = None
    time_in_force: Literal["day", "gtc"] = "day"
    intent: Literal["open", "close"] = "open"
    decided_at: dt.datetime | None = None  # the instant it was decided (interval trading: the bar's close, UTC)

    @property
    def is_option(self) -> bool:
        return bool(self.legs)


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one order."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: float
    status: str
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    commission: float = 0.0
    submitted_at: dt.datetime | None = None
    reason: str | None = None
    legs: tuple[OptionLeg, ...] = ()  # option packages: qty and filled_qty count units, prices are net per unit
    limit_price: float | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_signed(self) -> float:
        """Signed shares still to fill (positive = buy)."""
        rest = max(self.qty - self.filled_qty, 0.0) if self.is_open else 0.0
        return rest if self.side == "buy" else -rest

    def with_status(self, status: str, reason: str | None = None) -> BrokerOrder:
        return replace(self, status=status, reason=reason if reason is not None else self.reason)


@dataclass(frozen=True)
class BrokerFill:
    """One execution.  ``fill_id`` is unique per broker; brokers that only report an order's cumulative
    fill (Alpaca) use one id per order and the record grows as the order fills."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    commission: float
    filled_at: dt.datetime
    multiplier: float = 1.0  # 100 for option contracts (qty contracts, price per share)
    kind: str = "trade"  # trade, or an expiry event: expire, cash_settle, exercise, assign
    source: str | None = None  # option fills of the paper broker: the chain row was observed or modeled


@dataclass(frozen=True)
class AccountState:
    equity: float
    cash: float
    buying_power: float
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Broker(Protocol):
    """What the trader needs from a broker.  Failures of the broker itself raise
    :class:`~quantlake.errors.BrokerError` (:class:`~execution.errors.BrokerUnavailableError` when it
    cannot be reached); an order the broker refuses is returned with status ``rejected`` and a reason."""

    name: str
    syncs: bool  # whether sync() does broker work (paper) or nothing (live brokers fill by themselves)

    def now(self) -> dt.datetime:
        """The broker's clock (UTC): wall time for live brokers, the simulated close for the paper broker."""
        ...

    def sync(self, as_of: dt.date) -> None:
        """Bring the broker's view up to the close of ``as_of`` (paper: fill open orders at the bars since
        they were placed; live brokers: nothing to do)."""
        ...

    def account(self) -> AccountState: ...

    def positions(self) -> dict[str, float]:
        """Signed shares per symbol and signed contracts per OCC option symbol (no zero entries)."""
        ...

    def submit(self, order: OrderRequest) -> BrokerOrder:
        """Send one order.  Raises :class:`~execution.errors.DuplicateOrderError` if the broker already has
        this client order id."""
        ...

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client id, or ``None`` if the broker never received it."""
        ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def cancel(self, client_order_id: str) -> BrokerOrder:
        """Cancel an open order; returns its state afterwards."""
        ...

    def replace(self, client_order_id: str, new_client_order_id: str, limit_price: float) -> BrokerOrder:
        """Replace an open limit order's net limit (cancel/replace); the replacement carries
        ``new_client_order_id`` and is returned."""
        ...

    def fills(self, client_order_id: str) -> list[BrokerFill]: ...

    def close(self) -> None:
        """Release connections (idempotent)."""
        ...
