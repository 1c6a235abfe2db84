"""Trend strategies: EMA crossover with RSI context and MACD confirmation, SMA crossover, MACD trend,
moving average + ATR stop, time-series momentum."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from backtests.equity import indicators as ind
from backtests.equity.data import Bars
from backtests.equity.strategies.base import (
    Signals,
    col,
    cross_signals,
    flat,
    per_value,
    strategy,
    tile,
    value_table,
)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _fast_below_slow(combos: pd.DataFrame) -> np.ndarray:
    return (combos["fast"] < combos["slow"]).to_numpy()


# ------------------------------------------------------------------------------------------ EMA cross
class EmaCrossParams(_Params):
    fast: int = Field(default=10, ge=1, le=1000)
    slow: int = Field(default=30, ge=2, le=2000)
    rsi_window: int = Field(default=14, ge=2, le=500)
    rsi_upper: float = Field(default=70.0, gt=0, lt=100)
    rsi_lower: float = Field(default=30.0, gt=0, lt=100)
    rsi_lookback: int = Field(default=5, ge=1, le=500, description="N: an RSI cross counts for N bars")
    rsi_filter: Literal["off", "oversold", "overbought", "not_overbought"] = Field(
        default="not_overbought",
        description="oversold: enter only if RSI crossed below rsi_lower within N bars (a pullback); "
        "overbought: only if it crossed above rsi_upper within N bars (momentum); "
        "not_overbought: not if it crossed above rsi_upper within N bars",
    )
    macd_confirm: bool = Field(
        default=True, description="enter only while the MACD line is above its signal line"
    )
    macd_fast: int = Field(default=12, ge=1, le=500)
    macd_slow: int = Field(default=26, ge=2, le=1000)
    macd_signal: int = Field(default=9, ge=1, le=500)


def _ema_constraint(combos: pd.DataFrame) -> np.ndarray:
    return (
        (combos["fast"] < combos["slow"])
        & (combos["rsi_lower"] < combos["rsi_upper"])
        & (combos["macd_fast"] < combos["macd_slow"])
    ).to_numpy()


@strategy(
    "ema_cross", EmaCrossParams, _ema_constraint, "fast < slow, rsi_lower < rsi_upper, macd_fast < macd_slow"
)
def ema_cross(bars: Bars, combos: pd.DataFrame) -> Signals:
    """EMA crossover with RSI context (recent RSI cross of upper/lower within N bars) and MACD confirmation."""
    close = bars.close
    n_rows, n_sym = close.shape
    fast, fi = value_table(combos["fast"].to_numpy(), lambda w: ind.ema(close, w))
    slow, si = value_table(combos["slow"].to_numpy(), lambda w: ind.ema(close, w))
    up, down = cross_signals(fast, fi, slow, si)
    del fast, slow
    entries = up.reshape(n_rows, len(combos), n_sym)

    modes = combos["rsi_filter"].to_numpy()
    if (modes != "off").any():
        keys = combos[["rsi_window", "rsi_upper", "rsi_lower", "rsi_lookback"]].to_numpy(dtype=float)

        def context(window: float, upper: float, lower: float, lookback: float) -> np.ndarray:
            r = ind.rsi(close, int(window))
            up = ind.within(ind.crossed_above(r, upper), int(lookback))
            down = ind.within(ind.crossed_below(r, lower), int(lookback))
            return up.astype(np.int8) | (down.astype(np.int8) << 1)  # bit 0: recent up-cross, bit 1: down

        ctx = per_value([tuple(k) for k in keys], context, n_args=4)
        recent_up, recent_down = (ctx & 1).astype(bool), (ctx & 2).astype(bool)
        m = modes[None, :, None]
        ok = (
            (m == "off")
            | ((m == "oversold") & recent_down)
            | ((m == "overbought") & recent_up)
            | ((m == "not_overbought") & ~recent_up)
        )
        entries &= ok
    if combos["macd_confirm"].any():
        keys = combos[["macd_fast", "macd_slow", "macd_signal"]].to_numpy(dtype=int)

        def confirm(f: int, s: int, g: int) -> np.ndarray:
            line, sig, _ = ind.macd(close, int(f), int(s), int(g))
            return line > sig

        conf = per_value([tuple(k) for k in keys], confirm, n_args=3)
        entries &= conf | ~col(combos, "macd_confirm").astype(bool)
    return Signals(entries.reshape(n_rows, -1), down)  # a view of up (column-major), filtered in place


# ------------------------------------------------------------------------------------------ SMA cross
class SmaCrossParams(_Params):
    fast: int = Field(default=20, ge=1, le=1000)
    slow: int = Field(default=50, ge=2, le=2000)


@strategy("sma_cross", SmaCrossParams, _fast_below_slow, "fast < slow")
def sma_cross(bars: Bars, combos: pd.DataFrame) -> Signals:
    """Long when the fast SMA crosses above the slow SMA, flat when it crosses below."""
    fast, fi = value_table(combos["fast"].to_numpy(), lambda w: ind.sma(bars.close, w))
    slow, si = value_table(combos["slow"].to_numpy(), lambda w: ind.sma(bars.close, w))
    return Signals(*cross_signals(fast, fi, slow, si))


# ------------------------------------------------------------------------------------------ MACD trend
class MacdTrendParams(_Params):
    fast: int = Field(default=12, ge=1, le=500)
    slow: int = Field(default=26, ge=2, le=1000)
    signal: int = Field(default=9, ge=1, le=500)
    above_zero: bool = Field(default=False, description="enter long only while the MACD line is above zero")
    allow_short: bool = False


@strategy("macd_trend", MacdTrendParams, _fast_below_slow, "fast < slow")
def macd_trend(bars: Bars, combos: pd.DataFrame) -> Signals:
    """Long on MACD crossing above its signal line, out (or short) on crossing below."""
    keys = [tuple(k) for k in combos[["fast", "slow", "signal"]].to_numpy(dtype=int)]

    def lines(f: int, s: int, g: int) -> np.ndarray:
        line, sig, _ = ind.macd(bars.close, int(f), int(s), int(g))
        return np.stack([line, sig], axis=-1)

    ls = per_value(keys, lines, n_args=3)
    line, sig = ls[..., 0], ls[..., 1]
    up, down = ind.crossed_above(line, sig), ind.crossed_below(line, sig)
    entries = up & ((line > 0) | ~col(combos, "above_zero").astype(bool))
    if combos["allow_short"].any():
        short = col(combos, "allow_short").astype(bool)
        return Signals(flat(entries), flat(down), flat(down & short), flat(up & short))
    return Signals(flat(entries), flat(down))


# ------------------------------------------------------------------------------------------ MA + ATR
class MaAtrParams(_Params):
    ma_window: int = Field(default=50, ge=2, le=2000)
    ma_kind: Literal["sma", "ema"] = "sma"
    atr_window: int = Field(default=14, ge=1, le=500)
    atr_mult: float = Field(default=3.0, gt=0, le=50)
    trailing: bool = Field(default=True, description="trail the ATR stop below the highest high since entry")


@strategy("ma_atr_trend", MaAtrParams, uses_sl_stop=True, needs_ohlc=True)
def ma_atr_trend(bars: Bars, combos: pd.DataFrame) -> Signals:
    """Long when the close crosses above its moving average; exit on crossing below or at an ATR stop
    (``atr_mult × ATR / close`` of the entry bar; close-only symbols use |Δclose| as true range)."""
    b = bars.with_fallbacks()
    keys = [tuple(k) for k in combos[["ma_window", "ma_kind"]].to_numpy(dtype=object)]
    ma = per_value(keys, lambda w, k: (ind.ema if k == "ema" else ind.sma)(b.close, int(w)), n_args=2)
    c = tile(b.close, len(combos))
    atr = per_value(combos["atr_window"].to_numpy(), lambda w: ind.atr(b.high, b.low, b.close, w))
    with np.errstate(invalid="ignore", divide="ignore"):
        stop = np.clip(col(combos, "atr_mult").astype(float) * atr / c, 0.0, 0.99)
    trail = np.repeat(combos["trailing"].to_numpy(dtype=bool), b.close.shape[1])[None, :]
    return Signals(
        flat(ind.crossed_above(c, ma)), flat(ind.crossed_below(c, ma)), sl_stop=flat(stop), sl_trail=trail
    )


# ------------------------------------------------------------------------------------------ momentum
class TsmomParams(_Params):
    lookback: int = Field(default=252, ge=2, le=5000)
    threshold: float = Field(
        default=0.0, ge=-1, le=10, description="enter when the lookback return crosses above it"
    )
    allow_short: bool = Field(
        default=False, description="short when the lookback return crosses below -threshold"
    )


@strategy("tsmom", TsmomParams)
def tsmom(bars: Bars, combos: pd.DataFrame) -> Signals:
    """Time-series momentum: long while the trailing ``lookback`` return is above ``threshold``."""
    mom = per_value(combos["lookback"].to_numpy(), lambda n: ind.roc(bars.close, n))
    thr = col(combos, "threshold").astype(float)
    entries, exits = ind.crossed_above(mom, thr), ind.crossed_below(mom, thr)
    if combos["allow_short"].any():
        short = col(combos, "allow_short").astype(bool)
        s_in, s_out = ind.crossed_below(mom, -thr), ind.crossed_above(mom, -thr)
        return Signals(flat(entries), flat(exits), flat(s_in & short), flat(s_out & short))
    return Signals(flat(entries), flat(exits))
