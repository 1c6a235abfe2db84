"""Mean-reversion strategies: RSI and Bollinger bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from backtests.equity import indicators as ind
from backtests.equity.data import Bars
from backtests.equity.strategies.base import Signals, col, flat, per_value, strategy, tile


class RsiReversionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: int = Field(default=14, ge=2, le=500)
    lower: float = Field(default=30.0, gt=0, lt=100, description="enter when RSI crosses below it")
    exit_level: float = Field(default=50.0, gt=0, lt=100, description="exit when RSI crosses above it")


def _rsi_constraint(combos: pd.DataFrame) -> np.ndarray:
    return (combos["lower"] < combos["exit_level"]).to_numpy()


@strategy("rsi_reversion", RsiReversionParams, _rsi_constraint, "lower < exit_level")
def rsi_reversion(bars: Bars, combos: pd.DataFrame) -> Signals:
    """Buy when RSI crosses below ``lower`` (oversold), sell when it crosses above ``exit_level``."""
    r = per_value(combos["window"].to_numpy(), lambda w: ind.rsi(bars.close, w))
    return Signals(
        flat(ind.crossed_below(r, col(combos, "lower").astype(float))),
        flat(ind.crossed_above(r, col(combos, "exit_level").astype(float))),
    )


class BollingerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: int = Field(default=20, ge=2, le=1000)
    k: float = Field(default=2.0, gt=0, le=10, description="band width in standard deviations")


@strategy("bollinger_reversion", BollingerParams)
def bollinger_reversion(bars: Bars, combos: pd.DataFrame) -> Signals:
    """Buy when the close crosses below the lower band, sell when it crosses above the middle band."""
    keys = [tuple(k) for k in combos[["window", "k"]].to_numpy(dtype=float)]

    def bands(w: float, k: float) -> np.ndarray:
        lo, mid, _ = ind.bollinger(bars.close, int(w), float(k))
        return np.stack([lo, mid], axis=-1)

    b = per_value(keys, bands, n_args=2)
    c = tile(bars.close, len(combos))
    return Signals(flat(ind.crossed_below(c, b[..., 0])), flat(ind.crossed_above(c, b[..., 1])))
