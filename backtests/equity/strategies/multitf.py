"""Multi-timeframe strategies: a higher-timeframe filter on lower-timeframe signals.

The sweep loads the higher-timeframe (HTF) bars with :func:`features.bars.resample` (closed bars only) and
hands them to the signal function in ``bars.htf`` (:class:`backtests.equity.multitf.HigherTimeframe`): each
symbol's own HTF closes and, per lower-timeframe row, the latest HTF bar closed by that row's close.  So an
HTF bar is used only once it has closed, whatever rows a sweep, a walk-forward window or a truncated lake
holds (``tests/test_mtf_sweep.py``).  Configs name the two intervals: ``interval: 15m`` and
``htf_interval: 4h``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from backtests.equity import indicators as ind
from backtests.equity.data import Bars
from backtests.equity.strategies.base import Signals, flat, per_value, strategy
from quantlake.errors import ConfigError


class MtfTrendParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fast: int = Field(default=9, ge=1, le=1000, description="fast EMA of the lower-timeframe close")
    slow: int = Field(default=21, ge=2, le=2000, description="slow EMA of the lower-timeframe close")
    trend: int = Field(default=50, ge=1, le=2000, description="EMA of the higher-timeframe close (the filter)")


def _fast_below_slow(combos: pd.DataFrame) -> np.ndarray:
    return (combos["fast"] < combos["slow"]).to_numpy()


@strategy("mtf_trend", MtfTrendParams, _fast_below_slow, "fast < slow", needs_htf=True)
def mtf_trend(bars: Bars, combos: pd.DataFrame) -> Signals:
    """Long while the closed higher-timeframe close is above its EMA ``trend`` and the fast EMA is above the
    slow one; entries when that turns on, exits when it turns off (the sweep form of
    :func:`backtests.equity.multitf.mtf_trend_signals`)."""
    htf = bars.htf
    if htf is None:
        raise ConfigError("mtf_trend: set htf_interval (the higher timeframe, e.g. htf_interval: 4h)")
    emas: dict[int, np.ndarray] = {}
    filters: dict[int, np.ndarray] = {}

    def ema(window: int) -> np.ndarray:
        if window not in emas:
            emas[window] = ind.ema(bars.close, window)
        return emas[window]

    def trend_filter(window: int) -> np.ndarray:
        if window not in filters:
            filters[window] = htf.gather(htf.close > ind.ema(htf.close, window))  # NaN EMA compares False
        return filters[window]

    keys = [tuple(int(v) for v in k) for k in combos[["fast", "slow", "trend"]].to_numpy()]
    long = per_value(keys, lambda f, s, w: trend_filter(w) & (ema(f) > ema(s)), n_args=3)
    prev = np.zeros_like(long)
    prev[1:] = long[:-1]
    return Signals(flat(long & ~prev), flat(~long & prev))
