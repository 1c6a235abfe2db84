"""Chain sources that need no lake: a fixed table of quotes, and a Black-Scholes chain on a strike grid.

They implement :class:`~backtests.options.quotes.ChainSource` for tests, benchmarks and what-if studies
(e.g. a flat-vol world to isolate a strategy's mechanics).  Production runs read
``features.chains.ChainProvider`` (observed quotes, else modeled).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from backtests.options.contracts import monthly_expiries


class QuoteTable:
    """Quotes given row by row: columns quote_date, expiry, strike, right, bid, ask (+ iv, source)."""

    def __init__(self, quotes: pd.DataFrame) -> None:
        cols = ["quote_date", "expiry", "strike", "right", "bid", "ask"]
        q = quotes.copy() if len(quotes) else pd.DataFrame(columns=cols)
        q["quote_date"] = pd.to_datetime(q["quote_date"]).dt.date
        q["expiry"] = pd.to_datetime(q["expiry"]).dt.date
        if "source" not in q:
            q["source"] = "observed"
        self._by_date = {d: g.reset_index(drop=True) for d, g in q.groupby("quote_date")}
        self.calls = 0

    def chain(self, underlying: str, date: dt.date, mode: str = "auto") -> pd.DataFrame:
        self.calls += 1
        empty = pd.DataFrame(columns=["quote_date", "expiry", "strike", "right", "bid", "ask", "source"])
        return self._by_date.get(date, empty)


class BlackScholesChains:
    """Monthly (third-Friday) expiries up to ``months`` ahead, strikes every ``step`` within ``±width`` of
    the spot, priced with Black-Scholes at ``vol`` (a number, or a Series by date), quoted ``mid ± half
    spread`` where the half spread is ``max(min_half_spread, spread_pct * mid / 2)``; ``source`` tags every
    row (``"modeled"`` counts the leg-days as modeled)."""

    def __init__(self, closes: pd.Series, vol: float | pd.Series = 0.2, rate: float | pd.Series = 0.0,
                 dividend_yield: float = 0.0, step: float = 5.0, width: float = 0.25, months: int = 3,
                 spread_pct: float = 0.0, min_half_spread: float = 0.0, source: str = "modeled") -> None:
        self.closes = {pd.Timestamp(k).date(): float(v) for k, v in closes.items()}
        self.vol = vol if not isinstance(vol, pd.Series) else {pd.Timestamp(k).date(): float(v) for k, v in vol.items()}
        self.rate = rate if not isinstance(rate, pd.Series) else {pd.Timestamp(k).date(): float(v)
                                                                 for k, v in rate.items()}
        self.q, self.step, self.width, self.months = dividend_yield, step, width, months
        self.spread_pct, self.min_half = spread_pct, min_half_spread
        self.source = source
        self.calls = 0

    @staticmethod
    def _at(value: float | Mapping[dt.date, float], day: dt.date) -> float:
        return float(value[day]) if isinstance(value, Mapping) else float(value)

    def chain(self, underlying: str, date: dt.date, mode: str = "auto") -> pd.DataFrame:
        from features.pricing import bs_price

        self.calls += 1
        spot = self.closes.get(date)
        if spot is None:
            return pd.DataFrame(columns=["quote_date", "expiry", "strike", "right", "bid", "ask", "source"])
        vol, rate = self._at(self.vol, date), self._at(self.rate, date)
        exps = monthly_expiries(date, date + dt.timedelta(days=31 * self.months + 3))
        lo = np.floor(spot * (1 - self.width) / self.step) * self.step
        hi = np.ceil(spot * (1 + self.width) / self.step) * self.step
        strikes = np.arange(max(lo, self.step), hi + self.step / 2, self.step)
        e, k, r = np.meshgrid(np.arange(len(exps)), strikes, np.array([1.0, -1.0]), indexing="ij")
        e, k, r = e.ravel(), k.ravel(), r.ravel()
        days = np.array([(x - date).days for x in exps], dtype=float)[e]
        price = bs_price(r, spot, k, days / 365.0, rate, self.q, vol)
        half = np.maximum(self.min_half, self.spread_pct * price / 2.0)
        return pd.DataFrame({
            "quote_date": date, "underlying": underlying, "expiry": [exps[i] for i in e], "strike": k,
            "right": np.where(r > 0, "C", "P"), "bid": np.maximum(price - half, 0.0), "ask": price + half,
            "iv": vol, "underlying_price": spot, "source": self.source,
        })
