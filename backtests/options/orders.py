"""Orders a strategy hands to the engine.

* :class:`OptionOrder` opens one multi-leg position (a package: all legs fill together or none do);
* :class:`CloseOrder` closes a whole position (every remaining leg, as one package);
* :class:`ShareOrder` buys or sells shares (index units for an index) at the bar's close.

Two optional rules are checked when an opening order fills (not when it is decided, a bar earlier):

* ``fit`` (option orders) / ``fit_lot`` (share orders): when the whole order does not fit the account's buying
  power at the fill's prices, fees and slippage, fill the largest number of units (whole lots of shares) that
  does, instead of rejecting it; ``reserve`` keeps that much excess buying power free after a share purchase
  (e.g. for the puts that will protect the shares);
* ``covered`` (option orders): every short call of the account, this order's included, must be covered by
  shares held (100 per contract); an order that would leave a call naked is trimmed (with ``fit``) or
  rejected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from backtests.options.config import ExitRules
from backtests.options.contracts import Contract
from backtests.options.errors import OrderError


@dataclass(frozen=True)
class OrderLeg:
    contract: Contract
    ratio: int  # contracts per package unit: +1 buy, -1 sell, +2 buy two ...


@dataclass
class OptionOrder:
    legs: tuple[OrderLeg, ...]
    units: int
    tag: str
    reason: str = "entry"
    exits: ExitRules | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    created: dt.date | None = None
    limit: float | None = None  # net price per unit (set by the engine in limit mode)
    bars_left: int = 0
    fit: bool = False  # fill fewer units when all of them do not fit (see the module doc)
    covered: bool = False  # short calls only against shares held

    def __post_init__(self) -> None:
        if not self.legs:
            raise OrderError(f"{self.tag}: an option order needs at least one leg")
        if self.units <= 0:
            raise OrderError(f"{self.tag}: units must be positive, got {self.units}")
        if any(leg.ratio == 0 for leg in self.legs):
            raise OrderError(f"{self.tag}: a leg ratio of 0")
        if len({leg.contract for leg in self.legs}) != len(self.legs):
            raise OrderError(f"{self.tag}: the same contract twice in one order")


@dataclass
class CloseOrder:
    position_id: int
    reason: str
    created: dt.date | None = None
    limit: float | None = None
    bars_left: int = 0


@dataclass
class ShareOrder:
    shares: int  # signed: + buy, - sell
    reason: str
    created: dt.date | None = None
    fit_lot: int = 0  # > 0: a purchase that does not fit is cut to whole lots of this size that do
    reserve: float = 0.0  # excess buying power a fitted purchase leaves free

    def __post_init__(self) -> None:
        if self.shares == 0:
            raise OrderError("a share order of 0 shares")
        if self.fit_lot < 0 or self.reserve < 0:
            raise OrderError("fit_lot and reserve must not be negative")


Order = OptionOrder | CloseOrder | ShareOrder
