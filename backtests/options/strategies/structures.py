"""Butterflies, calendars and debit verticals: the structures besides credit spreads.

Each builder takes the bar's chain (:meth:`Context.chain`) and returns the package's legs with ratios per
unit, or ``None`` when the chain cannot build it (the strategy stands aside that bar).  Sizing, entry and exit
handling are :class:`~backtests.options.strategies.base.PackageStrategy`'s.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from backtests.options import selection as sel
from backtests.options.config import ButterflyConfig, CalendarConfig, StrikeRule
from backtests.options.context import Context
from backtests.options.contracts import Contract, Right
from backtests.options.orders import OrderLeg
from backtests.options.strategies.base import PackageStrategy, chain_expiry


def _listed(chain: pd.DataFrame, expiry: dt.date, right: Right) -> np.ndarray:
    return np.unique(chain.loc[(chain["expiry"] == expiry) & (chain["right"] == right), "strike"].to_numpy(float))


def _nearest(strikes: np.ndarray, target: float) -> float | None:
    return None if strikes.size == 0 else float(strikes[int(np.argmin(np.abs(strikes - target)))])


def debit_vertical(ctx: Context, chain: pd.DataFrame, expiry: dt.date, right: Right,
                   distance: float) -> list[OrderLeg] | None:
    """Long the at-the-money option, short the one ``distance`` further out of the money (a call debit spread
    for calls, a put debit spread for puts)."""
    long = sel.at_the_money(chain, ctx.underlying, expiry, right, ctx.spot)
    if long is None:
        return None
    short = sel.wing(chain, long, distance)
    if short is None:
        return None
    return [OrderLeg(long, 1), OrderLeg(short, -1)]


def butterfly_legs(chain: pd.DataFrame, underlying: str, expiry: dt.date, spot: float, style: str,
                   center_rule: StrikeRule, distance: float) -> list[OrderLeg] | None:
    """Legs of a long call/put butterfly or an iron butterfly (see :class:`ButterflyConfig`)."""
    right: Right = "P" if style == "put" else "C"
    center = sel.by_rule(chain, underlying, expiry, right, spot, center_rule)
    if center is None:
        return None
    k = center.strike
    lower_right: Right = "P" if style in ("put", "iron") else "C"
    lows = _listed(chain, expiry, lower_right)
    k1 = _nearest(lows[lows < k - 1e-9], k - distance)
    if k1 is None:
        return None
    highs = _listed(chain, expiry, right)
    highs = highs[highs > k + 1e-9]
    k3 = 2 * k - k1 if np.any(np.abs(highs - (2 * k - k1)) < 1e-9) else _nearest(highs, 2 * k - k1)
    if k3 is None:
        return None

    def c(strike: float, r: Right) -> Contract:
        return Contract(underlying, expiry, float(strike), r)

    if style == "iron":
        if not np.any(np.abs(_listed(chain, expiry, "P") - k) < 1e-9):
            return None
        return [OrderLeg(c(k1, "P"), 1), OrderLeg(c(k, "P"), -1), OrderLeg(c(k, "C"), -1), OrderLeg(c(k3, "C"), 1)]
    return [OrderLeg(c(k1, right), 1), OrderLeg(c(k, right), -2), OrderLeg(c(k3, right), 1)]


def calendar_legs(chain: pd.DataFrame, underlying: str, spot: float, cfg: CalendarConfig) -> list[OrderLeg] | None:
    """Short the front-month option, long the back-month option at the same strike."""
    front = sel.pick_expiry(chain, cfg.front)
    back = sel.pick_expiry(chain, cfg.back)
    if front is None or back is None or back <= front:
        return None
    near = sel.by_rule(chain, underlying, front, cfg.right, spot, cfg.strike, need_bid=True)
    if near is None or not np.any(np.abs(_listed(chain, back, cfg.right) - near.strike) < 1e-9):
        return None
    return [OrderLeg(near, -1), OrderLeg(Contract(underlying, back, near.strike, cfg.right), 1)]


class Butterfly(PackageStrategy):
    """Long call/put butterflies or iron butterflies around the money (:class:`ButterflyConfig`)."""

    name = "butterfly"

    def __init__(self, cfg: ButterflyConfig) -> None:
        super().__init__(cfg, cfg.exits, cfg.dte.max)
        self.cfg = cfg

    def build(self, ctx: Context) -> tuple[list[OrderLeg], dict[str, float]] | None:
        found = chain_expiry(ctx, self.cfg.dte)
        if found is None:
            return None
        chain, expiry = found
        legs = butterfly_legs(chain, ctx.underlying, expiry, ctx.spot, self.cfg.style, self.cfg.center,
                              self.cfg.width.distance(ctx.spot))
        return None if legs is None else (legs, {"center": legs[1].contract.strike})


class Calendar(PackageStrategy):
    """Long calendar spreads (:class:`CalendarConfig`)."""

    name = "calendar"

    def __init__(self, cfg: CalendarConfig) -> None:
        super().__init__(cfg, cfg.exits, cfg.back.max)
        self.cfg = cfg

    def build(self, ctx: Context) -> tuple[list[OrderLeg], dict[str, float]] | None:
        chain = ctx.chain()
        if chain is None:
            return None
        legs = calendar_legs(chain, ctx.underlying, ctx.spot, self.cfg)
        return None if legs is None else (legs, {"strike": legs[0].contract.strike})
