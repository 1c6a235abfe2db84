"""Vectorized EMA, RSI and MACD per symbol, with the definitions of ``sql/features_technical.sql`` so the
scanner's figures equal the feature table's wherever both exist (the scanner needs its own because the
EMA periods are configurable):

* EMA(N): alpha = 2/(N+1), seeded with the SMA of the first N closes (first value at bar N).
* RSI(N), Wilder: gains/losses of close-to-close changes, each smoothed with alpha = 1/N seeded with the
  mean of the first N changes (first value at bar N+1); 100 when avg_loss = 0 < avg_gain, 50 when both 0.
* MACD(f, s, k) = EMA_f - EMA_s; signal = EMA_k of MACD seeded with the mean of its first k values;
  histogram = MACD - signal.

Each recursion is the numba kernel of :mod:`features.kernels` (the one implementation the feature SQL runs
too), over all symbols at once as back-to-back segments.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd

from features import kernels

Arr = npt.NDArray[np.float64]


def ema(x: Arr, n: int) -> Arr:
    """SMA-seeded EMA of period ``n`` (:func:`features.kernels.ema`)."""
    return kernels.ema(x, n)


def rsi(x: Arr, n: int = 14) -> Arr:
    """Wilder's RSI of period ``n`` (first value at index ``n``; :func:`features.kernels.rsi`)."""
    return kernels.rsi(x, n)


def macd(x: Arr, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Arr, Arr, Arr]:
    """(MACD line, signal line, histogram) (:func:`features.kernels.macd`)."""
    return kernels.macd(x, fast, slow, signal)


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
    close = df["close"].to_numpy(dtype=float)
    offs = kernels.run_offsets(df["symbol"].to_numpy())
    for n in sorted(set(ema_periods)):
        df[f"ema_{n}"] = kernels.ema(close, n, offs)
    df["rsi"] = kernels.rsi(close, rsi_period, offs)
    f, s, k = macd_periods
    df["macd"], df["macd_signal"], df["macd_hist"] = kernels.macd(close, f, s, k, offs)
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
