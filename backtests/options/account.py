"""The account ledger: cash, shares, open option positions, and the records a run reports.

Only the engine mutates it.  Cash moves on every fill (``-qty * 100 * price - fees``), on cash settlement,
on physical delivery (the option closes at its intrinsic value and the shares change hands at the spot, so
the net is delivery at the strike) and on interest.  Records: ``fills`` (every event), ``trades`` (each
closed leg with entry and exit prices, fees, IV and delta), ``positions`` (each closed position).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtests.options.config import ExitRules
from backtests.options.contracts import MULTIPLIER, Contract


@dataclass
class Leg:
    contract: Contract
    qty: int  # signed contracts held
    entry_date: dt.date
    entry_price: float
    entry_fees: float
    entry_iv: float
    entry_delta: float
    entry_spot: float
    mark: float = float("nan")
    iv: float = float("nan")
    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    modeled: bool = False


@dataclass
class Position:
    id: int
    tag: str
    legs: list[Leg]
    opened: dt.date
    units: int
    entry_net: float  # per unit at fill prices: > 0 debit paid, < 0 credit received
    regime: str
    exits: ExitRules | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    fees: float = 0.0
    realized: float = 0.0  # cash flows of closed legs (premiums, settlements), fees excluded

    @property
    def first_expiry(self) -> dt.date:
        return min(leg.contract.expiry for leg in self.legs)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """qty, strike, phi, mark of the open legs."""
        return (
            np.array([leg.qty for leg in self.legs], dtype=float),
            np.array([leg.contract.strike for leg in self.legs], dtype=float),
            np.array([leg.contract.phi for leg in self.legs], dtype=float),
            np.array([leg.mark for leg in self.legs], dtype=float),
        )

    def mark_net(self) -> float:
        """Current net value per unit at the marks (same sign convention as ``entry_net``)."""
        return float(sum(leg.qty * leg.mark for leg in self.legs)) / self.units

    def value(self) -> float:
        return float(sum(leg.qty * MULTIPLIER * leg.mark for leg in self.legs))


def position_risk(pos: Position) -> float:
    """Capital a position risked: its maximum loss (``meta["max_loss"]`` per share, credit spreads), else
    the premium paid for a debit; 0 when neither is known."""
    per_share = pos.meta.get("max_loss")
    if per_share is None and pos.entry_net > 0:
        per_share = pos.entry_net
    return float(per_share) * MULTIPLIER * pos.units if per_share is not None and per_share > 0 else 0.0


class Account:
    def __init__(self, cash: float) -> None:
        self.cash = float(cash)
        self.shares = 0.0
        self.share_cost = 0.0  # average cost per share of the current share position
        self.positions: dict[int, Position] = {}
        self._next_id = 1
        self.fees = 0.0
        self.interest = 0.0
        self.dividends = 0.0
        self.fills: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.closed: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ valuation
    def options_value(self) -> float:
        return float(sum(p.value() for p in self.positions.values()))

    def equity(self, spot: float) -> float:
        return self.cash + self.shares * spot + self.options_value()

    # ------------------------------------------------------------------ cash
    def accrue(self, amount: float) -> None:
        self.cash += amount
        self.interest += amount

    def receive_dividends(self, amount: float) -> None:
        self.cash += amount
        self.dividends += amount

    # ------------------------------------------------------------------ options
    def open_position(self, day: dt.date, tag: str, legs: list[Leg], units: int, entry_net: float, regime: str,
                      exits: ExitRules | None, meta: dict[str, Any], fees: float, spot: float, reason: str,
                      sources: list[str]) -> Position:
        pos = Position(self._next_id, tag, legs, day, units, entry_net, regime, exits, dict(meta), fees=fees)
        self._next_id += 1
        self.positions[pos.id] = pos
        self.fees += fees
        for leg, src in zip(legs, sources, strict=True):
            flow = -leg.qty * MULTIPLIER * leg.entry_price
            self.cash += flow
            pos.realized += flow
            self._fill(day, pos, leg, "open", leg.qty, leg.entry_price, leg.entry_fees, leg.entry_iv,
                       leg.entry_delta, spot, src, reason)
        self.cash -= fees
        return pos

    def close_leg(self, day: dt.date, pos: Position, leg: Leg, price: float, fees: float, iv: float, delta: float,
                  spot: float, action: str, reason: str, source: str) -> None:
        """Remove ``leg`` from ``pos`` at ``price`` per share (a trade, a settlement or a delivery)."""
        flow = leg.qty * MULTIPLIER * price
        self.cash += flow - fees
        self.fees += fees
        pos.fees += fees
        pos.realized += flow
        self._fill(day, pos, leg, action, -leg.qty, price, fees, iv, delta, spot, source, reason)
        pnl = leg.qty * MULTIPLIER * (price - leg.entry_price) - leg.entry_fees - fees
        c = leg.contract
        self.trades.append({
            "position_id": pos.id, "tag": pos.tag, "contract": c.label(), "expiry": c.expiry, "strike": c.strike,
            "right": c.right, "qty": leg.qty, "entry_date": leg.entry_date, "entry_price": leg.entry_price,
            "entry_fees": leg.entry_fees, "entry_iv": leg.entry_iv, "entry_delta": leg.entry_delta,
            "entry_spot": leg.entry_spot, "exit_date": day, "exit_price": price, "exit_fees": fees,
            "exit_iv": iv, "exit_delta": delta, "exit_spot": spot, "exit_action": action, "exit_reason": reason,
            "pnl": pnl, "regime_at_entry": pos.regime,
        })
        pos.legs.remove(leg)
        if not pos.legs:
            self._close_position(day, pos, reason)

    def _close_position(self, day: dt.date, pos: Position, reason: str) -> None:
        del self.positions[pos.id]
        exit_net = (pos.realized + pos.entry_net * pos.units * MULTIPLIER) / (pos.units * MULTIPLIER)
        self.closed.append({
            "position_id": pos.id, "tag": pos.tag, "opened": pos.opened, "closed": day, "units": pos.units,
            "entry_net": pos.entry_net, "exit_net": exit_net, "pnl": pos.realized - pos.fees,
            "fees": pos.fees, "exit_reason": reason, "regime_at_entry": pos.regime,
            "days_held": (day - pos.opened).days, "risk": position_risk(pos),
        })

    def _fill(self, day: dt.date, pos: Position | None, leg: Leg | None, action: str, qty: float, price: float,
              fees: float, iv: float, delta: float, spot: float, source: str, reason: str) -> None:
        c = leg.contract if leg is not None else None
        self.fills.append({
            "date": day, "position_id": pos.id if pos else None, "tag": pos.tag if pos else "shares",
            "action": action, "contract": c.label() if c else "shares", "expiry": c.expiry if c else None,
            "strike": c.strike if c else None, "right": c.right if c else None, "qty": qty, "price": price,
            "fees": fees, "iv": iv, "delta": delta, "spot": spot, "source": source, "reason": reason,
        })

    # ------------------------------------------------------------------ shares
    def trade_shares(self, day: dt.date, shares: float, price: float, fees: float, reason: str) -> None:
        new = self.shares + shares
        if self.shares == 0 or np.sign(new) != np.sign(self.shares):
            self.share_cost = price if new != 0 else 0.0
        elif abs(new) > abs(self.shares):
            self.share_cost = (self.share_cost * self.shares + price * shares) / new
        self.shares = new
        self.cash -= shares * price + fees
        self.fees += fees
        self._fill(day, None, None, "shares", shares, price, fees, float("nan"), 1.0, price, "bar", reason)

    def reject(self, day: dt.date, tag: str, reason: str, **details: float) -> None:
        self.rejections.append({"date": day, "tag": tag, "reason": reason, **details})
