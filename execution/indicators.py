"""Vectorized EMA, RSI and MACD per symbol, with the definitions of ``sql/features_technical.sql`` so the
scanner's figures equal the feature table's wherever both exist (the scanner needs its own because the
EMA periods are configurable):

* EMA(N): alpha = 2/(N+1), seeded with the SMA of the first N closes (first value at bar N).
* RSI(N), Wilder: gains/losses of close-to-close changes, each smoothed with alpha = 1/N seeded with the
  mean of the first N changes (first value at bar N+1); 100 when avg_loss = 0 < avg_gain, 50 when both 0.
* MACD(f, s, k) = EMA_f - EMA_s; signal = EMA_k of MACD seeded with the mean of its first k values;
  histogram = MACD - signal.

Each recursion runs in pandas' compiled ``ewm(adjust=False)``; the only Python loop is one call per symbol.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd

Arr = npt.NDArray[np.float64]


def seeded_ewm(x: Arr, n: int, alpha: float) -> Arr:
    """Exponential smoothing of ``x`` with weight ``alpha``, seeded with the mean of its first ``n`` values
    (output NaN before index ``n - 1``).  ``x`` must not contain NaN."""
    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    y = x[n - 1 :].copy()
    y[0] = x[:n].mean()
    out[n - 1 :] = pd.Series(y).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def ema(x: Arr, n: int) -> Arr:
    """SMA-seeded EMA of period ``n``."""
    return seeded_ewm(x, n, 2.0 / (n + 1.0))


def rsi(x: Arr, n: int = 14) -> Arr:
    """Wilder's RSI of period ``n`` (first value at index ``n``)."""
    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.nan)
    if len(x) < n + 1:
        return out
    chg = np.diff(x)
    gain = seeded_ewm(np.maximum(chg, 0.0), n, 1.0 / n)
    loss = seeded_ewm(np.maximum(-chg, 0.0), n, 1.0 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = 100.0 - 100.0 / (1.0 + gain / loss)
    val = np.where((loss == 0) & (gain > 0), 100.0, val)
    val = np.where((loss == 0) & (gain == 0), 50.0, val)
    out[1:] = np.where(np.isnan(gain), np.nan, val)
    return out


def macd(x: Arr, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Arr, Arr, Arr]:
    """(MACD line, signal line, histogram)."""
    line = ema(x, fast) - ema(x, slow)
    sig = np.full(len(line), np.nan)
    first = slow - 1
    if len(line) > first:
        sig[first:] = ema(line[first:], signal)
    return line, sig, line - sig


def _ema_of(x: Arr, n: int) -> Arr:
    return ema(x, n)


def _symbol_slices(frame: pd.DataFrame) -> list[slice]:
    """Row ranges of each symbol in a frame sorted by symbol."""
    codes = frame["symbol"].to_numpy()
    if len(codes) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    return [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _per_symbol(frame: pd.DataFrame, fn: Callable[[Arr], npt.NDArray[np.float64]], width: int = 1) -> Arr:
    """``fn`` over each symbol's closes (one call per symbol); ``fn`` returns ``width`` columns."""
    out = np.empty((len(frame), width))
    values = frame["close"].to_numpy(dtype=float)
    for sl in _symbol_slices(frame):
        out[sl] = np.asarray(fn(values[sl])).reshape(-1, width) if width > 1 else fn(values[sl])[:, None]
    return out if width > 1 else out[:, 0]


def add_indicators(
    bars: pd.DataFrame,
    ema_periods: Iterable[int],
    rsi_period: int = 14,
    macd_periods: tuple[int, int, int] = (12, 26, 9),
    volume_window: int = 20,
) -> pd.DataFrame:
    """``bars`` (symbol, date, close, volume) sorted by symbol and date → the same rows with ``ema_N`` for
    each period, ``rsi``, ``macd``, ``macd_signal``, ``macd_hist``, ``avg_volume`` (mean of the last
    ``volume_window`` volumes, NaN until that many) and ``volume_ratio`` (volume / avg_volume)."""
    df = bars.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    for n in sorted(set(ema_periods)):
        df[f"ema_{n}"] = _per_symbol(df, functools.partial(_ema_of, n=n))
    df["rsi"] = _per_symbol(df, lambda v: rsi(v, rsi_period))
    f, s, k = macd_periods
    stacked = _per_symbol(df, lambda v: np.stack(macd(v, f, s, k), axis=1), width=3)
    df["macd"], df["macd_signal"], df["macd_hist"] = stacked[:, 0], stacked[:, 1], stacked[:, 2]
    vol = pd.to_numeric(df["volume"], errors="coerce").astype(float)
    df["avg_volume"] = (
        vol.groupby(df["symbol"], sort=False)
        .rolling(volume_window, min_periods=volume_window)
        .mean()
        .reset_index(level=0, drop=True)
        .sort_index()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        df["volume_ratio"] = vol / df["avg_volume"]
    return df
