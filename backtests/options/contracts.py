"""Option contracts and the listed-expiry calendar (standard monthly = third Friday of the month).

A :class:`Contract` is immutable and hashable, so it keys quotes and positions.  ``right`` is ``"C"`` or
``"P"``; ``strike`` in the underlying's price units; the contract multiplier is :data:`MULTIPLIER` (DESIGN §5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from features.calendar import third_friday

Right = Literal["C", "P"]
MULTIPLIER = 100.0


@dataclass(frozen=True, slots=True)
class Contract:
    underlying: str
    expiry: dt.date
    strike: float
    right: Right

    @property
    def phi(self) -> float:
        """+1 for a call, -1 for a put."""
        return 1.0 if self.right == "C" else -1.0

    def key(self) -> tuple[dt.date, float, str]:
        return (self.expiry, float(self.strike), self.right)

    def label(self) -> str:
        return f"{self.underlying} {self.expiry.isoformat()} {self.strike:g}{self.right}"

    def intrinsic(self, spot: float) -> float:
        return max(self.phi * (spot - self.strike), 0.0)


def is_third_friday(day: dt.date) -> bool:
    return day.weekday() == 4 and 15 <= day.day <= 21


def monthly_expiries(start: dt.date, end: dt.date) -> list[dt.date]:
    """Third Fridays in ``[start, end]``."""
    out: list[dt.date] = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        d = third_friday(y, m)
        if start <= d <= end:
            out.append(d)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def next_monthly_expiry(day: dt.date, min_days: int = 0) -> dt.date:
    """The first third Friday at least ``min_days`` calendar days after ``day`` (``day`` itself if 0)."""
    y, m = day.year, day.month
    while True:
        d = third_friday(y, m)
        if (d - day).days >= min_days:
            return d
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def settlement_dates(expiries: Sequence[dt.date], calendar: np.ndarray) -> list[dt.date | None]:
    """For each expiry, the last trading day on or before it in ``calendar`` (sorted ``datetime64[D]``).

    Exchanges move an expiration that falls on a holiday to the previous trading day; the backtest settles
    on that day.  ``None`` when the calendar has no day on or before the expiry.
    """
    if len(expiries) == 0:
        return []
    exp = np.asarray([np.datetime64(e, "D") for e in expiries])
    idx = np.searchsorted(calendar, exp, side="right") - 1
    out: list[dt.date | None] = []
    last = calendar[-1] if len(calendar) else None
    for e, i in zip(exp, idx, strict=True):
        out.append(None if i < 0 or last is None or e > last else calendar[i].astype(dt.date))
    return out
