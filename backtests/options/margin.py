"""Buying-power rule: the requirement each position puts on the account's equity.

The account can carry its book while ``equity - sum(requirements) >= 0`` (the *excess*); an opening order
that would make the excess negative is rejected.  Equity is the net liquidation value ``cash + shares * S +
sum(contracts * 100 * mark)`` (short options count negatively).  A position's requirement on equity is

    requirement = (value of its option legs) + (cash it must hold)

so that, for a position alone, ``excess >= 0`` means ``cash >= cash it must hold``.  The cash a position must
hold is its broker requirement:

* **defined risk** (the payoff at expiry of the legs, plus the shares that cover short calls, is bounded
  below): the worst payoff at expiry, ``max(0, -min_S payoff(S))``.  This gives the familiar numbers:
  a cash-secured put holds ``strike x 100``; a credit vertical ``width x 100`` (so with the credit in cash,
  buying power falls by ``(width - credit) x 100``); an iron condor the wider side's width; covered calls
  and long options nothing beyond paying for them.
* **naked** (uncovered short calls, whose loss is unbounded, or short puts under ``short_puts: reg_t``
  when the position has no long option and no cover): the Reg-T/CBOE formula per short leg,
  ``premium + max(naked_pct * S - OTM amount, naked_min_pct * (S for calls, K for puts))``; for short calls
  and puts together (a strangle) the larger side plus the other side's premium.  Long legs of a position
  with naked shorts are not credited (conservative for ratio spreads).

Stock: long shares require ``stock * value`` (1.0: fully paid), short shares ``(short_stock - 1) * value``
(Reg-T's 150 % including the sale proceeds).  This is a single initial = maintenance rule; a margin call
(negative excess after a move) is recorded each day, not liquidated.
"""

from __future__ import annotations

import numpy as np

from backtests.options.config import MarginConfig
from backtests.options.contracts import MULTIPLIER


def payoff_floor(qty: np.ndarray, strike: np.ndarray, phi: np.ndarray, cover_shares: float = 0.0) -> float:
    """Minimum over terminal prices S >= 0 of the expiry payoff ``sum(qty * 100 * intrinsic) + cover * S``;
    ``-inf`` when the slope above the highest strike is negative (uncovered short calls)."""
    slope_up = float(np.sum(qty[phi > 0]) * MULTIPLIER + cover_shares)
    if slope_up < -1e-9:
        return float("-inf")
    s = np.concatenate(([0.0], np.unique(strike)))[:, None]
    intrinsic = np.maximum(phi * (s - strike), 0.0)
    payoff = (intrinsic * qty * MULTIPLIER).sum(axis=1) + cover_shares * s[:, 0]
    return float(payoff.min())


def naked_cash(qty: np.ndarray, strike: np.ndarray, phi: np.ndarray, mark: np.ndarray, spot: float,
               cfg: MarginConfig) -> float:
    """Reg-T cash requirement of the short legs (see module doc)."""
    short = qty < 0
    otm = np.maximum(np.where(phi > 0, strike - spot, spot - strike), 0.0)
    base = np.where(phi > 0, spot, strike)
    per_share = np.maximum(cfg.naked_pct * spot - otm, cfg.naked_min_pct * base)
    n = -qty * MULTIPLIER
    premium = np.where(short, n * mark, 0.0)
    req = np.where(short, premium + n * per_share, 0.0)
    calls, puts = short & (phi > 0), short & (phi < 0)
    if calls.any() and puts.any():
        rc, rp = float(req[calls].sum()), float(req[puts].sum())
        return rc + float(premium[puts].sum()) if rc >= rp else rp + float(premium[calls].sum())
    return float(req.sum())


def position_requirement(qty: np.ndarray, strike: np.ndarray, phi: np.ndarray, mark: np.ndarray, spot: float,
                         cfg: MarginConfig, cover_shares: float = 0.0) -> float:
    """Requirement on equity of one multi-leg option position (``qty`` signed contracts, ``mark`` per share)."""
    value = float(np.sum(qty * MULTIPLIER * mark))
    floor = payoff_floor(qty, strike, phi, cover_shares)
    plain_short_puts = (
        cfg.short_puts == "reg_t" and cover_shares == 0 and not (qty > 0).any() and (qty[phi < 0] < 0).any()
    )
    if np.isinf(floor) or plain_short_puts:
        return value + naked_cash(qty, strike, phi, mark, spot, cfg)
    return value + max(0.0, -floor)


def stock_requirement(shares: float, spot: float, cfg: MarginConfig) -> float:
    if shares >= 0:
        return cfg.stock * shares * spot
    return (cfg.short_stock - 1.0) * (-shares) * spot


def short_calls_to_cover(qty: np.ndarray, phi: np.ndarray) -> float:
    """Shares needed to cover a position's net short calls (100 per contract), 0 if calls net long."""
    return max(0.0, -float(np.sum(qty[phi > 0]))) * MULTIPLIER
