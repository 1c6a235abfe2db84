"""Full revaluation of a book of stock and option legs under market scenarios, with the Greeks (Taylor)
approximation beside it.  Stress tests, the Greeks ladder and option VaR all price through :class:`Book`.

How a leg is valued
-------------------
* Stock: the spot.  Options: ``features.pricing`` — Black-Scholes-Merton for European exercise, the binomial
  tree (``american_price``, early exercise honored) for American exercise.  A leg's style is its
  ``exercise`` field, else the book's default: ``auto`` prices options on an index (``^…``, cash-settled)
  as European and every other option (physical delivery) as American.
* Each option is valued at its own implied volatility (``iv``, else implied from its ``price`` with the
  European formula) plus the scenario's vol move in vol points (decimals: 0.05 = +5 points), floored at 1 %;
  time to expiry ACT/365 from ``as_of`` (less the scenario's ``days`` forward, never below 0: at expiry an
  option is worth its intrinsic value); the config's rate and dividend yield.
* A scenario's P&L is model(shocked) − model(now) per leg × signed quantity × multiplier, so a mark that
  differs from the model does not leak into the result.

The Greeks approximation is ``Δ·dS + ½Γ·dS² + vega·dσ + θ·dt`` per leg with Black-Scholes Greeks at the
current inputs (the delta-gamma approximation, with the vol and time terms so that its difference from the
full revaluation is the convexity and early-exercise value it misses, not an omitted input).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from risk.book import Position
from risk.errors import PricingInputError

MIN_VOL = 0.01
DAYS_PER_YEAR = 365.0
Exercise = Literal["auto", "european", "american"]
FloatArray = npt.NDArray[np.float64]


class Book:
    """Column arrays of the legs (one per position) and their values under scenarios (see module doc)."""

    def __init__(self, positions: Sequence[Position], as_of: dt.date, rate: float = 0.0,
                 dividend_yield: float = 0.0, exercise: Exercise = "auto", steps: int = 201) -> None:
        from features import pricing

        self.positions = list(positions)
        self.as_of, self.r, self.q, self.steps = as_of, float(rate), float(dividend_yield), int(steps)
        self.symbols = [p.symbol for p in self.positions]
        self.labels = [_label(p) for p in self.positions]
        self.units = np.array([p.qty * p.multiplier for p in self.positions], dtype=float)
        self.spot = np.array([p.spot for p in self.positions], dtype=float)
        self.is_option = np.array([p.is_option for p in self.positions], dtype=bool)
        self.right = np.array([p.right or "C" for p in self.positions], dtype=object)
        self.strike = np.array([p.strike or 1.0 for p in self.positions], dtype=float)
        self.days = np.array([max(((p.expiry or as_of) - as_of).days, 0) for p in self.positions], dtype=float)
        styles = [p.exercise or ("european" if exercise == "auto" and p.symbol.startswith("^") else
                                 "european" if exercise == "european" else "american") for p in self.positions]
        self.american = self.is_option & np.array([s == "american" for s in styles], dtype=bool)
        iv = np.array([p.iv if p.iv is not None else np.nan for p in self.positions], dtype=float)
        need = self.is_option & np.isnan(iv)
        if need.any():
            iv[need] = pricing.implied_vol(
                np.array([p.price for p in self.positions])[need], self.right[need], self.spot[need],
                self.strike[need], self.days[need] / DAYS_PER_YEAR, self.r, self.q,
            )  # fmt: skip
        bad = [self.positions[i].describe() for i in np.flatnonzero(self.is_option & ~np.isfinite(iv))]
        if bad:
            raise PricingInputError(
                f"cannot reprice {', '.join(bad)}: give iv, or a price inside the no-arbitrage bounds (and an "
                f"expiry after {as_of})"
            )
        self.iv = np.where(self.is_option, iv, 0.0)
        n = len(self.positions)
        self.base = self.value(np.zeros((1, n)), np.zeros((1, n)))[0] if n else np.zeros(0)
        g = pricing.bs_greeks(self.right, self.spot, self.strike, self.days / DAYS_PER_YEAR, self.r, self.q,
                              self._vol(self.iv))
        self.delta = np.where(self.is_option, g["delta"], 1.0)
        self.gamma = np.where(self.is_option, g["gamma"], 0.0)
        self.vega = np.where(self.is_option, g["vega"], 0.0)
        self.theta = np.where(self.is_option, g["theta"], 0.0)

    def __len__(self) -> int:
        return len(self.positions)

    def _vol(self, vol: FloatArray) -> FloatArray:
        return np.where(self.is_option, np.maximum(vol, MIN_VOL), MIN_VOL)

    def value(self, moves: FloatArray, vol_moves: FloatArray, days: float | FloatArray = 0.0) -> FloatArray:
        """Per-unit value of every leg, shape (scenarios, legs): spots × (1 + ``moves``), vols + ``vol_moves``
        (both (scenarios, legs)), ``days`` forward (a number, (scenarios,) or (scenarios, legs))."""
        from features import binomial, pricing

        moves = np.atleast_2d(np.asarray(moves, dtype=float))
        shape = moves.shape
        spot = np.broadcast_to(self.spot * (1.0 + moves), shape)
        vol = np.broadcast_to(self._vol(self.iv + np.asarray(vol_moves, dtype=float)), shape)
        fwd = np.asarray(days, dtype=float)
        fwd = fwd[:, None] if fwd.ndim == 1 else fwd
        t = np.broadcast_to(np.maximum(self.days - fwd, 0.0) / DAYS_PER_YEAR, shape)
        right = np.broadcast_to(self.right, shape)
        strike = np.broadcast_to(self.strike, shape)
        out = np.array(spot, dtype=float)  # stock legs are worth the spot
        eur = np.broadcast_to(self.is_option & ~self.american, shape)
        if eur.any():
            out[eur] = pricing.bs_price(right[eur], spot[eur], strike[eur], t[eur], self.r, self.q, vol[eur])
        ame = np.broadcast_to(self.american, shape)
        if ame.any():
            out[ame] = binomial.american_price(right[ame], spot[ame], strike[ame], t[ame], self.r, self.q,
                                              vol[ame], steps=self.steps)
        return out

    def leg_pnl(self, moves: FloatArray, vol_moves: FloatArray, days: float | FloatArray = 0.0) -> FloatArray:
        """Full-revaluation P&L per scenario and leg (currency), shape (scenarios, legs)."""
        return (self.value(moves, vol_moves, days) - self.base) * self.units

    def greeks_pnl(self, moves: FloatArray, vol_moves: FloatArray, days: float | FloatArray = 0.0) -> FloatArray:
        """Greeks approximation per scenario and leg (currency), shape (scenarios, legs)."""
        moves = np.atleast_2d(np.asarray(moves, dtype=float))
        ds = self.spot * moves
        dvol = np.where(self.is_option, np.broadcast_to(np.asarray(vol_moves, dtype=float), moves.shape), 0.0)
        fwd = np.asarray(days, dtype=float)
        fwd = fwd[:, None] if fwd.ndim == 1 else fwd
        dt_years = np.broadcast_to(np.minimum(fwd, self.days) / DAYS_PER_YEAR, moves.shape)
        approx = self.delta * ds + 0.5 * self.gamma * ds**2 + self.vega * dvol + self.theta * dt_years
        return approx * self.units

    def by_symbol(self, per_leg: FloatArray) -> dict[str, FloatArray]:
        """Sum of per-leg columns per underlying, in order of first appearance."""
        out: dict[str, FloatArray] = {}
        for sym in dict.fromkeys(self.symbols):
            cols = [i for i, s in enumerate(self.symbols) if s == sym]
            out[sym] = per_leg[:, cols].sum(axis=1)
        return out


def _label(p: Position) -> str:
    label = p.describe()
    return f"{label} ({p.qty:+g})"
