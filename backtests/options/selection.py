"""Contract selection on one bar's chain (a :meth:`ChainSnapshot.frame`): expiry by DTE window or the
third-Friday monthly rule, strike by target delta, % out of the money or at the money, and spread wings.

All helpers take the chain frame and work on whole columns (no per-row Python); each returns a
:class:`Contract` or ``None`` when nothing on the chain fits (the strategy then stands aside that bar).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np
import pandas as pd

from backtests.options.config import DteWindow, StrikeRule
from backtests.options.contracts import Contract, Right, is_third_friday

AtmRule = Literal["nearest", "at_or_above", "at_or_below"]


def _is_monthly(expiries: pd.Series) -> np.ndarray:
    """Third Fridays, or the Thursday before one (a Good-Friday expiration moved a day earlier)."""
    return np.array([is_third_friday(d) or is_third_friday(d + dt.timedelta(days=1)) for d in expiries], dtype=bool)


def _expiry_arrays(chain: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct expiries (ascending), their dte and monthly flag.  An expiry's ``dte`` is the same on every row
    of one bar's chain, so the distinct expiries are found on that float column (numpy, not object hashing:
    this runs on every bar a strategy looks for an entry)."""
    dte = chain["dte"].to_numpy(dtype=float)
    _, first = np.unique(dte, return_index=True)  # ascending dte = ascending expiry
    expiries = chain["expiry"].to_numpy()[first]
    return expiries, dte[first], _is_monthly(expiries) if len(first) else np.array([], dtype=bool)


def expiry_table(chain: pd.DataFrame) -> pd.DataFrame:
    """One row per expiry: expiry, dte, monthly (sorted by expiry)."""
    expiries, dte, monthly = _expiry_arrays(chain)
    return pd.DataFrame({"expiry": expiries, "dte": dte, "monthly": monthly})


def pick_expiry(chain: pd.DataFrame, window: DteWindow) -> dt.date | None:
    """The expiry inside ``window`` closest to its target DTE (ties: the earlier one)."""
    expiries, dte, monthly = _expiry_arrays(chain)
    ok = (dte >= window.min) & (dte <= window.max)
    if window.monthly_only:
        ok &= monthly
    cand = np.flatnonzero(ok)
    if cand.size == 0:
        return None
    best: dt.date = expiries[cand[int(np.argmin(np.abs(dte[cand] - window.target_days)))]]
    return best


def monthly_expiry(chain: pd.DataFrame, min_dte: int = 0, max_dte: int | None = None) -> dt.date | None:
    """The first third-Friday monthly expiry with at least ``min_dte`` days left (and at most ``max_dte``)."""
    expiries, dte, monthly = _expiry_arrays(chain)
    ok = monthly & (dte >= min_dte)
    if max_dte is not None:
        ok &= dte <= max_dte
    cand = np.flatnonzero(ok)
    return None if cand.size == 0 else expiries[cand[0]]


def _side(chain: pd.DataFrame, expiry: dt.date, right: Right, need_bid: bool) -> pd.DataFrame:
    mask = (chain["expiry"].to_numpy() == expiry) & (chain["right"].to_numpy() == right)
    if need_bid:
        mask &= chain["bid"].to_numpy(dtype=float) > 0
    return chain[mask]


def _contract(underlying: str, expiry: dt.date, right: Right, strike: float) -> Contract:
    return Contract(underlying, expiry, float(strike), right)


def by_delta(chain: pd.DataFrame, underlying: str, expiry: dt.date, right: Right, target: float,
             need_bid: bool = False) -> Contract | None:
    """The strike whose absolute delta is closest to ``target`` (0.30 → the 30-delta call or -0.30 put)."""
    sub = _side(chain, expiry, right, need_bid)
    sub = sub[np.isfinite(sub["delta"])]
    if sub.empty:
        return None
    i = int(np.argmin(np.abs(np.abs(sub["delta"].to_numpy()) - abs(target))))
    return _contract(underlying, expiry, right, sub["strike"].iloc[i])


def by_moneyness(chain: pd.DataFrame, underlying: str, expiry: dt.date, right: Right, spot: float,
                 pct_otm: float, need_bid: bool = False) -> Contract | None:
    """The strike closest to ``pct_otm`` out of the money: ``spot*(1+pct)`` for calls, ``spot*(1-pct)`` puts."""
    sub = _side(chain, expiry, right, need_bid)
    if sub.empty:
        return None
    target = spot * (1.0 + pct_otm) if right == "C" else spot * (1.0 - pct_otm)
    k = sub["strike"].to_numpy()
    return _contract(underlying, expiry, right, k[int(np.argmin(np.abs(k - target)))])


def at_the_money(chain: pd.DataFrame, underlying: str, expiry: dt.date, right: Right, spot: float,
                 rule: AtmRule = "nearest", need_bid: bool = False) -> Contract | None:
    """The at-the-money strike: ``nearest`` the spot, or the nearest ``at_or_above`` / ``at_or_below`` it."""
    sub = _side(chain, expiry, right, need_bid)
    k = np.unique(sub["strike"].to_numpy())
    if rule == "at_or_above":
        k = k[k >= spot - 1e-9]
        return None if k.size == 0 else _contract(underlying, expiry, right, k.min())
    if rule == "at_or_below":
        k = k[k <= spot + 1e-9]
        return None if k.size == 0 else _contract(underlying, expiry, right, k.max())
    if k.size == 0:
        return None
    return _contract(underlying, expiry, right, k[int(np.argmin(np.abs(k - spot)))])


def by_rule(chain: pd.DataFrame, underlying: str, expiry: dt.date, right: Right, spot: float, rule: StrikeRule,
            need_bid: bool = False) -> Contract | None:
    """Dispatch on a :class:`StrikeRule`."""
    if rule.by == "delta":
        return by_delta(chain, underlying, expiry, right, rule.value, need_bid)
    if rule.by == "pct_otm":
        return by_moneyness(chain, underlying, expiry, right, spot, rule.value, need_bid)
    return at_the_money(chain, underlying, expiry, right, spot, rule.atm, need_bid)


def wing(chain: pd.DataFrame, short: Contract, distance: float) -> Contract | None:
    """The long wing of a vertical: the listed strike further out of the money than ``short`` whose
    distance from it is closest to ``distance`` (price points)."""
    same = (chain["expiry"].to_numpy() == short.expiry) & (chain["right"].to_numpy() == short.right)
    k = np.unique(chain["strike"].to_numpy()[same])
    k = k[k < short.strike - 1e-9] if short.right == "P" else k[k > short.strike + 1e-9]
    if k.size == 0:
        return None
    target = short.strike - distance if short.right == "P" else short.strike + distance
    return Contract(short.underlying, short.expiry, float(k[int(np.argmin(np.abs(k - target)))]), short.right)
