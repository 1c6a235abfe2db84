"""Technical indicators over wide arrays (rows = dates, columns = symbols).

EMA, Wilder averages, RSI and MACD are the numba kernels of :mod:`features.kernels` (the one implementation
the feature tables and the scanner use too), called column-wise.  Why not ``vbt.MA``/``vbt.RSI``/``vbt.ATR``:
vectorbt 1.2 starts its exponential averages from the first value, whereas TA-Lib and backtrader (the
independent engine our trades are checked against) seed every exponential / Wilder average with the simple
average of its first ``window`` values.  Seeding differences
decay but flip early crossovers, so the strategies here use the TA-Lib convention and vectorbt does the
simulation, metrics and plots.  Every function takes and returns float64 arrays of shape ``(T, S)``; leading
NaNs (a symbol that starts later) are respected per column, values before an indicator is defined are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import kernels

Array = np.ndarray


def _frame(x: Array) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(x, dtype=np.float64))


def first_valid(x: Array) -> Array:
    """Row of the first non-NaN value of each column (``len(x)`` for an all-NaN column)."""
    valid = ~np.isnan(x)
    idx = valid.argmax(axis=0)
    idx[~valid.any(axis=0)] = x.shape[0]
    return idx


def sma(x: Array, window: int) -> Array:
    """Simple moving average over ``window`` rows (NaN until a full window is available)."""
    return _frame(x).rolling(window, min_periods=window).mean().to_numpy(copy=True)


def ema(x: Array, window: int) -> Array:
    """EMA with ``alpha = 2 / (window + 1)`` seeded by an SMA (TA-Lib / backtrader ``EMA``)."""
    return kernels.ema(x, window)


def wilder(x: Array, window: int) -> Array:
    """Wilder's smoothing (``alpha = 1 / window``) seeded by an SMA (backtrader ``SmoothedMovingAverage``)."""
    return kernels.wilder(x, window)


def rsi(close: Array, window: int = 14) -> Array:
    """Wilder's RSI in [0, 100]; a window with neither gains nor losses gives 50."""
    return kernels.rsi(close, window)


def macd(close: Array, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Array, Array, Array]:
    """MACD line ``EMA(fast) - EMA(slow)``, its signal line ``EMA(signal)`` of the MACD line, histogram."""
    return kernels.macd(close, fast, slow, signal)


def bollinger(close: Array, window: int = 20, k: float = 2.0) -> tuple[Array, Array, Array]:
    """Lower, middle and upper bands: SMA ± k population standard deviations (TA-Lib / backtrader)."""
    mid = sma(close, window)
    sd = _frame(close).rolling(window, min_periods=window).std(ddof=0).to_numpy(copy=True)
    return mid - k * sd, mid, mid + k * sd


def true_range(high: Array, low: Array, close: Array) -> Array:
    """``max(high - low, |high - prev close|, |low - prev close|)``; NaN on a symbol's first bar."""
    prev = np.roll(close, 1, axis=0)
    prev[0] = np.nan
    return np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev))) + 0.0 * prev


def atr(high: Array, low: Array, close: Array, window: int = 14) -> Array:
    """Average true range: Wilder smoothing of :func:`true_range` (backtrader ``ATR``)."""
    return wilder(true_range(high, low, close), window)


def roc(close: Array, lookback: int) -> Array:
    """Rate of change ``close[t] / close[t - lookback] - 1``."""
    prev = np.full_like(close, np.nan)
    if lookback < close.shape[0]:
        prev[lookback:] = close[:-lookback]
    with np.errstate(invalid="ignore", divide="ignore"):
        return close / prev - 1.0


def crossed_above(a: Array, b: Array | float) -> Array:
    """``a > b`` now and ``a <= b`` on the previous row (both defined)."""
    above = a > b
    prev = a - b if not np.isscalar(b) else a - float(b)  # type: ignore[arg-type]
    before = np.zeros_like(above)
    before[1:] = prev[:-1] <= 0
    return above & before


def crossed_below(a: Array, b: Array | float) -> Array:
    """``a < b`` now and ``a >= b`` on the previous row (both defined)."""
    below = a < b
    prev = a - b if not np.isscalar(b) else a - float(b)  # type: ignore[arg-type]
    before = np.zeros_like(below)
    before[1:] = prev[:-1] >= 0
    return below & before


def within(mask: Array, n: int) -> Array:
    """True where ``mask`` was true on this row or any of the previous ``n - 1`` rows (axis 0)."""
    if n <= 1:
        return mask.astype(bool)
    counts = pd.DataFrame(mask.reshape(mask.shape[0], -1).astype(np.float64)).rolling(n, min_periods=1).sum()
    return (counts.to_numpy() > 0).reshape(mask.shape)
