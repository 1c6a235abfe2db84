"""From target positions to orders: idempotent client order ids, sizing with :mod:`risk.sizing`, the
difference between target and current (including orders still working at the broker), and the pre-trade
check with :func:`risk.limits.validate`.

Client order ids are a pure function of (trade date, account, strategy, symbol, leg) — see
:func:`client_order_id` — so re-running a trading day decides the same ids, an id the broker already has is
never sent again, and two accounts trading the same strategy never share an id (or an audit row).

Legs: moving from the current position ``c`` (held + working orders) to the target ``t``

* same sign or one of them zero: one order, leg ``exit`` when it shrinks ``|c|`` and ``entry`` when it grows it;
* opposite signs (a flip): an ``exit`` leg closing ``c`` and an ``entry`` leg opening ``t`` (brokers refuse or
  split orders that cross zero, and the two legs carry different risk: the exit only reduces).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from execution.brokers.base import Side
from risk.book import Account, Order, Position
from risk.limits import LimitCheck, Limits, validate
from risk.sizing import percent_of_equity

EPS = 1e-9
LEGS = ("exit", "entry")


def client_order_id(trade_date: dt.date, strategy: str, symbol: str, leg: str, account: str = "default") -> str:
    """``ql-<yyyymmdd>-<account>-<strategy>-<symbol>-<leg>-<hash>``: deterministic, at most 100 characters
    (Alpaca allows 128), readable, and unique per (date, account, strategy, symbol, leg) even when the
    readable parts are shortened to fit (the hash covers the full tuple).  An interval trade decides at a
    bar's close: given a datetime, the id says ``<yyyymmdd>T<hhmm>`` (UTC) and the hash covers the instant."""
    digest = hashlib.sha256(f"{trade_date.isoformat()}|{account}|{strategy}|{symbol}|{leg}".encode()).hexdigest()[:10]
    readable_symbol = "".join(ch for ch in symbol if ch.isalnum() or ch in ".-_")[:24]
    when = f"{trade_date:%Y%m%dT%H%M}" if isinstance(trade_date, dt.datetime) else f"{trade_date:%Y%m%d}"
    return f"ql-{when}-{account[:16]}-{strategy[:24]}-{readable_symbol}-{leg[:8]}-{digest}"


def target_quantities(
    signals: pd.Series,
    prices: pd.Series,
    equity: float,
    fraction: float,
    allow_short: bool = False,
    size_multiplier: float = 1.0,
    lot_size: float = 1.0,
) -> pd.Series:
    """Signed target shares per symbol: ``|signal| × fraction × size_multiplier`` of equity in notional,
    rounded down to whole ``lot_size`` units (1 share; 0.0001 of a coin) by
    :func:`risk.sizing.percent_of_equity`; negative signals become 0 unless ``allow_short``.  A symbol
    without a positive price gets 0."""
    sig = signals.astype(float).clip(-1.0, 1.0).fillna(0.0)
    if not allow_short:
        sig = sig.clip(lower=0.0)
    px = prices.reindex(sig.index).astype(float).where(lambda p: p > 0)
    # units = equity·fraction·|signal| / price = percent_of_equity at the price divided by |signal|
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (px / sig.abs()).fillna(np.inf)
    qty = percent_of_equity(equity, fraction * size_multiplier, scaled, lot_size=lot_size)
    return (np.sign(sig) * qty).rename("target_qty") + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True)
class PlannedOrder:
    """One order a trading run decided.  ``status`` starts empty; the trader fills it in."""

    client_order_id: str
    trade_date: dt.date
    strategy: str
    symbol: str
    leg: str
    side: Side
    qty: float
    ref_price: float
    target_qty: float
    position_before: float  # held + working orders when decided
    risk_check: str = ""
    status: str = ""
    reason: str = ""

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side == "buy" else -self.qty

    @property
    def notional(self) -> float:
        return self.qty * self.ref_price

    def with_(self, **changes: object) -> PlannedOrder:
        return replace(self, **changes)  # type: ignore[arg-type]


def plan_orders(
    trade_date: dt.date,
    strategy: str,
    targets: Mapping[str, float],
    current: Mapping[str, float],
    prices: Mapping[str, float],
    band: float = 0.0,
    account: str = "default",
) -> list[PlannedOrder]:
    """Orders taking each symbol of ``targets`` from ``current`` (held + working, signed) to its target.

    ``band`` avoids churn: a position on the target's side is left alone while it is within ``band`` × its
    size of the target (prices moved a little since it was sized); closing, opening and flipping always
    trade.  Symbols absent from ``targets`` are left alone.  Exits come first (they free cash and
    exposure), then entries; within each group, symbols in alphabetical order."""
    out: list[PlannedOrder] = []
    for symbol in sorted(targets):
        t = float(targets[symbol])
        c = float(current.get(symbol, 0.0))
        if abs(t - c) < EPS or (c * t > 0 and abs(t - c) <= band * abs(c) + EPS):
            continue
        legs: list[tuple[str, float]] = []
        if c * t < 0:  # flip: close, then open
            legs = [("exit", -c), ("entry", t)]
        elif abs(t) < abs(c):
            legs = [("exit", t - c)]
        else:
            legs = [("entry", t - c)]
        for leg, delta in legs:
            out.append(
                PlannedOrder(
                    client_order_id=client_order_id(trade_date, strategy, symbol, leg, account),
                    trade_date=trade_date,
                    strategy=strategy,
                    symbol=symbol,
                    leg=leg,
                    side="buy" if delta > 0 else "sell",
                    qty=abs(delta),
                    ref_price=float(prices[symbol]),
                    target_qty=t,
                    position_before=c,
                )
            )
    return sorted(out, key=lambda o: (LEGS.index(o.leg), o.symbol))


def book_positions(quantities: Mapping[str, float], prices: Mapping[str, float]) -> list[Position]:
    """:class:`risk.book.Position` objects for signed quantities marked at ``prices`` (zeros dropped)."""
    return [
        Position(symbol=s, qty=float(q), price=float(prices[s]))
        for s, q in sorted(quantities.items())
        if abs(q) > EPS and s in prices and math.isfinite(prices[s])
    ]


def check_order(
    order: PlannedOrder,
    account: Account,
    book: Mapping[str, float],
    prices: Mapping[str, float],
    limits: Limits,
    max_order_value_fraction: float,
) -> LimitCheck | str:
    """The risk verdict on ``order`` given the book (held + working + orders already approved this run):
    a failed :class:`LimitCheck`, a string naming the order-value limit it breaks, or a passed check."""
    value = order.notional / account.equity
    reducing = order.leg == "exit"
    if not reducing and value > max_order_value_fraction + EPS:
        return (
            f"order value {order.notional:,.2f} is {value:.1%} of equity, above max_order_value_fraction "
            f"{max_order_value_fraction:.1%}"
        )
    risk_order = Order(symbol=order.symbol, price=order.ref_price, qty=order.qty, side=order.side)
    return validate(risk_order, account, book_positions(book, prices), limits)


def default_limits(max_position_fraction: float, alert_drawdown: float, kill_drawdown: float) -> Limits:
    """The limits a trading run checks unless given others: no leverage (gross and net exposure ≤ 1), one
    symbol at most ``max_position_fraction`` of equity, size halved from ``alert_drawdown`` and new risk
    halted at ``kill_drawdown`` (the kill switch also stops it)."""
    return Limits(
        max_gross_exposure=1.0,
        max_net_exposure=1.0,
        max_symbol_concentration=max_position_fraction,
        drawdown_reduce_at=alert_drawdown,
        drawdown_reduce_factor=0.5,
        drawdown_halt_at=kill_drawdown,
    )
