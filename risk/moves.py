"""Market moves for scenarios, from the lake: each underlying's own moves where the lake has its history, else
the proxy's (``^GSPC``) scaled by the underlying's beta to it — and a line saying which, for every symbol.

* **Beta** to the proxy: ``cov(r, r_proxy) / var(r_proxy)`` (:func:`risk.metrics.beta`) over the last
  ``lookback`` daily returns both have up to ``as_of``; with fewer than ``min_obs`` of them (a symbol the lake
  does not have, or one listed too recently) beta is 1 and the note says so.
* **Window moves** (stress): per day of the window, the close relative to the window's first close; a symbol
  whose history does not cover the window (within ``coverage_days`` at both ends) moves by beta × the
  proxy's relative move (floored at −99 %).
* **Daily moves** (VaR): per day, the simple return; a day a symbol has no return takes beta × the proxy's.
* **Vol moves**: the change of the vol index (``^VIX`` points / 100) since the window's first day, or day
  over day; zero (and said so) when the lake lacks it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantlake.lake import Lake
from risk import metrics
from risk.data import load_closes
from risk.errors import InsufficientDataError


@dataclass
class Moves:
    """Moves per date (rows) and symbol (columns), the vol-index moves, and where each symbol's came from."""

    spot: pd.DataFrame
    vol: pd.Series
    sources: dict[str, str] = field(default_factory=dict)
    proxy_move: float = float("nan")

    def notes(self) -> str:
        return "; ".join(f"{s}: {how}" for s, how in self.sources.items())


def betas(lake: Lake, symbols: Sequence[str], proxy: str, as_of: dt.date, lookback: int = 252,
          min_obs: int = 60) -> dict[str, tuple[float, str]]:
    """Beta of each symbol to ``proxy`` and how it was obtained (see the module docstring)."""
    closes = load_closes(lake, [*symbols, proxy], None, as_of)  # a few columns: the whole history is cheap
    out: dict[str, tuple[float, str]] = {}
    if proxy not in closes.columns:
        return {s: (1.0, f"beta 1 (no {proxy} history up to {as_of})") for s in symbols}
    rets = closes.pct_change(fill_method=None)
    for sym in symbols:
        if sym == proxy:
            out[sym] = (1.0, "the proxy itself")
            continue
        both = rets[[sym, proxy]].dropna().tail(lookback) if sym in rets.columns else pd.DataFrame()
        if len(both) < min_obs:
            out[sym] = (1.0, f"beta 1: too little history to estimate it ({len(both)} of {min_obs} returns)")
            continue
        try:
            b = metrics.beta(both[sym], both[proxy])
        except InsufficientDataError as exc:
            out[sym] = (1.0, f"beta 1: {exc}")
            continue
        out[sym] = (b, f"beta {b:.2f} over {len(both)} daily returns to {both.index[-1].date()}")
    return out


def _vol_moves(closes: pd.DataFrame, vol_index: str | None, index: pd.DatetimeIndex,
               sources: dict[str, str], daily: bool) -> pd.Series:
    if vol_index and vol_index in closes.columns and closes[vol_index].notna().sum() >= 2:
        sources[vol_index] = "vol shock"
        if daily:  # day-over-day change (the day before the first scenario day is in ``closes``)
            moves = closes[vol_index].ffill().diff().reindex(index).fillna(0.0)
        else:
            v = closes[vol_index].reindex(index).ffill().bfill()
            moves = v - v.iloc[0]
        return (moves / 100.0).astype(float)
    if vol_index:
        sources[vol_index] = "no data: vol unchanged"
    return pd.Series(0.0, index=index)


def window_moves(lake: Lake, symbols: Sequence[str], start: dt.date, end: dt.date, proxy: str,
                 vol_index: str | None, coverage_days: int, beta: dict[str, tuple[float, str]],
                 name: str = "") -> Moves:
    """Relative moves since ``start`` per symbol over the window (see the module docstring)."""
    wanted = [*symbols, proxy] + ([vol_index] if vol_index else [])
    closes = load_closes(lake, wanted, start, end)
    tol = dt.timedelta(days=coverage_days)

    def covered(sym: str) -> bool:
        if sym not in closes.columns:
            return False
        s = closes[sym].dropna()
        return bool(len(s) >= 2 and s.index[0].date() <= start + tol and s.index[-1].date() >= end - tol)

    if not covered(proxy):
        raise InsufficientDataError(
            f"stress window {name + ' ' if name else ''}({start}..{end}): the proxy {proxy} has no data in the "
            "lake for it (ingest it, or "
            "choose another proxy/window)"
        )
    px = closes[proxy].dropna()
    index = pd.DatetimeIndex(px.index)
    proxy_rel = px / px.iloc[0] - 1.0
    sources: dict[str, str] = {}
    spot: dict[str, pd.Series] = {}
    for sym in symbols:
        if covered(sym):
            s = closes[sym].reindex(index).ffill().bfill()
            spot[sym] = s / s.iloc[0] - 1.0
            sources[sym] = "own"
        else:
            b, how = beta.get(sym, (1.0, "beta 1"))
            spot[sym] = np.maximum(b * proxy_rel, -0.99)
            sources[sym] = f"proxy {proxy} × {how}"
    vol = _vol_moves(closes, vol_index, index, sources, daily=False)
    return Moves(pd.DataFrame(spot, index=index), vol, sources, float(proxy_rel.iloc[-1]))


def daily_moves(lake: Lake, symbols: Sequence[str], end: dt.date, days: int, proxy: str, vol_index: str | None,
                beta: dict[str, tuple[float, str]]) -> Moves:
    """The last ``days`` daily returns up to ``end`` per symbol (gaps filled by beta × the proxy's)."""
    start = end - dt.timedelta(days=int(days * 1.6) + 30)
    wanted = [*symbols, proxy] + ([vol_index] if vol_index else [])
    closes = load_closes(lake, wanted, start, end)
    if proxy not in closes.columns or closes[proxy].notna().sum() < 3:
        raise InsufficientDataError(f"no {proxy} history up to {end} in the lake to draw daily scenarios from")
    rets = closes.pct_change(fill_method=None)
    proxy_r = rets[proxy].dropna().tail(days)
    index = pd.DatetimeIndex(proxy_r.index)
    sources: dict[str, str] = {}
    spot: dict[str, pd.Series] = {}
    for sym in symbols:
        own = rets[sym].reindex(index) if sym in rets.columns else pd.Series(np.nan, index=index)
        b, how = beta.get(sym, (1.0, "beta 1"))
        missing = int(own.isna().sum())
        spot[sym] = own.fillna(b * proxy_r)
        if missing == 0:
            sources[sym] = "own"
        elif missing == len(index):
            sources[sym] = f"proxy {proxy} × {how}"
        else:
            sources[sym] = f"own, {missing} of {len(index)} days from proxy {proxy} × {how}"
    vol = _vol_moves(closes, vol_index, index, sources, daily=True)
    return Moves(pd.DataFrame(spot, index=index), vol, sources, float("nan"))
