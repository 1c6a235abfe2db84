"""Numba kernels over *segmented* float arrays: one flat ``values`` array holding many series back to back,
``offsets`` (length groups + 1) marking where each series starts and ends.

These are the recursive and rolling computations DuckDB cannot do exactly (or fast) in SQL:

* :func:`ema_segments` — exponential moving average with ``alpha = 2/(n+1)`` (standard EMA) or ``1/n``
  (Wilder's smoothing, RSI/ATR/ADX), seeded with the simple mean of the first ``n`` valid values;
* :func:`macd_signal_segments` and :func:`adx_segments` — the two-stage recursions (an EMA of a
  difference of EMAs; Wilder's ADX as the smoothing of DX built from three smoothed series);
* :func:`rolling_mean_segments` / :func:`rolling_std_segments` — trailing windows summed afresh for each
  row in a fixed order; :func:`_rolling_extreme_one` — trailing max/min (exact by nature).

Why fixed-order windows instead of DuckDB's ``avg() OVER``: DuckDB aggregates a frame through a segment
tree whose shape depends on the partition's length, so a window's result changes in the last bits when
rows are added *after* it (measured: 1e-13 differences on 3,000-row partitions).  Features must be
bitwise identical whether computed on the full history or on history truncated at a date (the
no-look-ahead proof) or resumed from a warm-up window (incremental builds); a fresh sum per window in a
fixed order (:func:`_window_sum`) depends only on the window's own values.  Cost O(rows x window) additions,
four independent chains at a time.

Recursions can *resume*: the first ``skip[g]`` rows of segment ``g`` are warm-up rows (their outputs are NaN,
they only feed windows and differences), and ``init[g]`` is the recursion's state at the last of them
(NaN = start fresh at row ``skip[g]``).  Resuming from a state
stored by an earlier full computation gives bitwise the same floats, because each step is the same
float64 expression.

Missing values (NaN): before the seed is complete they are skipped (the seed is the mean of the first
``n`` *valid* values, which is how MACD's signal line starts after the MACD line's own warm-up); after it
they output NaN and leave the state unchanged.  A rolling window containing a NaN is NaN.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Explicit signatures of the per-series kernels: each compiles exactly once (at import on a cold cache, else
# loaded from the cache).  Without them numba compiles a kernel again for every distinct argument type its
# callers use (a literal ``14`` or ``True`` is its own type, a strided view another layout): the series pass
# alone compiled 16 variants on a fresh install.  Inputs are read-only C arrays (a writable array converts;
# a zero-copy Arrow buffer is read-only), outputs writable C arrays: callers pass contiguous rows.
_IN = numba.types.Array(numba.types.float64, 1, "C", readonly=True)
_OUT = numba.types.float64[::1]
_I, _F, _B = numba.types.int64, numba.types.float64, numba.types.boolean
_SIG_EMA = numba.types.void(_IN, _I, _I, _I, _F, _F, _I, _OUT)
_SIG_MACD = numba.types.void(_IN, _I, _I, _I, _I, _I, _F, _F, _F, _I, _OUT, _OUT, _OUT, _OUT)
_SIG_ADX = numba.types.void(_IN, _IN, _IN, _I, _I, _I, _F, _F, _F, _F, _I, _OUT, _OUT, _OUT, _OUT, _OUT)
_SIG_MEAN = numba.types.void(_IN, _I, _I, _I, _OUT)
_SIG_STD = numba.types.void(_IN, _I, _I, _I, _I, _OUT)
_SIG_EXTREME = numba.types.void(_IN, _I, _I, _I, _B, _OUT, numba.types.int64[::1])

__all__ = [
    "adx_segments",
    "ema",
    "ema_alpha",
    "ema_segments",
    "macd",
    "macd_signal_segments",
    "rolling_mean_segments",
    "rolling_std_segments",
    "rsi",
    "run_offsets",
    "wilder",
    "wilder_alpha",
]


def ema_alpha(n: int) -> float:
    """Smoothing factor of the standard EMA of period ``n``."""
    return 2.0 / (n + 1.0)


def wilder_alpha(n: int) -> float:
    """Smoothing factor of Wilder's moving average of period ``n`` (RSI, ATR, ADX)."""
    return 1.0 / n


@numba.njit(_SIG_EMA, cache=True, nogil=True)
def _ema_one(
    vals: FloatArray, lo: int, hi: int, n: int, alpha: float, init: float, skip: int, out: FloatArray
) -> None:
    for i in range(lo, min(lo + skip, hi)):
        out[i] = np.nan
    started = not math.isnan(init)
    prev = init
    count = 0
    acc = 0.0
    for i in range(lo + skip, hi):
        x = vals[i]
        if math.isnan(x):
            out[i] = np.nan
        elif started:
            prev = alpha * x + (1.0 - alpha) * prev
            out[i] = prev
        else:
            acc += x
            count += 1
            if count == n:
                prev = acc / n
                started = True
                out[i] = prev
            else:
                out[i] = np.nan


@numba.njit(cache=True, nogil=True)
def ema_segments(
    vals: FloatArray, offs: IntArray, n: int, alpha: float, init: FloatArray, skip: IntArray, out: FloatArray
) -> None:
    """EMA (SMA-seeded) of each segment into ``out``; see the module docstring for ``init``/``skip``."""
    for g in range(offs.shape[0] - 1):
        _ema_one(vals, offs[g], offs[g + 1], n, alpha, init[g], skip[g], out)


@numba.njit(_SIG_MACD, cache=True, nogil=True)
def _macd_one(
    vals: FloatArray,
    lo: int,
    hi: int,
    fast: int,
    slow: int,
    signal: int,
    init_fast: float,
    init_slow: float,
    init_signal: float,
    skip: int,
    ef: FloatArray,
    es: FloatArray,
    line: FloatArray,
    out: FloatArray,
) -> None:
    """One segment of MACD: ``ef``/``es`` the SMA-seeded EMA(fast)/EMA(slow), ``line`` their difference,
    ``out`` the signal line (SMA-seeded EMA(signal) of the line)."""
    _ema_one(vals, lo, hi, fast, 2.0 / (fast + 1.0), init_fast, skip, ef)
    _ema_one(vals, lo, hi, slow, 2.0 / (slow + 1.0), init_slow, skip, es)
    for i in range(lo, hi):
        line[i] = ef[i] - es[i]
    _ema_one(line, lo, hi, signal, 2.0 / (signal + 1.0), init_signal, skip, out)


@numba.njit(cache=True, nogil=True)
def macd_signal_segments(
    vals: FloatArray,
    offs: IntArray,
    fast: int,
    slow: int,
    signal: int,
    init_fast: FloatArray,
    init_slow: FloatArray,
    init_signal: FloatArray,
    skip: IntArray,
    out: FloatArray,
) -> None:
    """Signal line: EMA(signal) of EMA(fast) - EMA(slow), each SMA-seeded (the MACD of Appel / TA-Lib)."""
    m = vals.shape[0]
    ef = np.empty(m)
    es = np.empty(m)
    line = np.empty(m)
    for g in range(offs.shape[0] - 1):
        _macd_one(vals, offs[g], offs[g + 1], fast, slow, signal, init_fast[g], init_slow[g], init_signal[g],
                  skip[g], ef, es, line, out)  # fmt: skip


@numba.njit(_SIG_ADX, cache=True, nogil=True)
def _adx_one(
    tr: FloatArray,
    pdm: FloatArray,
    mdm: FloatArray,
    lo: int,
    hi: int,
    n: int,
    init_tr: float,
    init_pdm: float,
    init_mdm: float,
    init_adx: float,
    skip: int,
    s_tr: FloatArray,
    s_p: FloatArray,
    s_m: FloatArray,
    dx: FloatArray,
    out: FloatArray,
) -> None:
    """One segment of Wilder's ADX: Wilder averages of TR, +DM, -DM into ``s_tr``/``s_p``/``s_m`` (ATR is
    ``s_tr``) → DX = 100 |+DI - -DI| / (+DI + -DI) → its Wilder average into ``out``.

    DX is 0 where both directional indicators are 0 (no directional movement at all)."""
    a = 1.0 / n
    _ema_one(tr, lo, hi, n, a, init_tr, skip, s_tr)
    _ema_one(pdm, lo, hi, n, a, init_pdm, skip, s_p)
    _ema_one(mdm, lo, hi, n, a, init_mdm, skip, s_m)
    for i in range(lo, hi):
        if s_tr[i] > 0.0:
            pdi = 100.0 * s_p[i] / s_tr[i]
            mdi = 100.0 * s_m[i] / s_tr[i]
            tot = pdi + mdi
            dx[i] = 100.0 * abs(pdi - mdi) / tot if tot > 0.0 else 0.0
        elif s_tr[i] == 0.0:
            dx[i] = 0.0
        else:
            dx[i] = np.nan
    _ema_one(dx, lo, hi, n, a, init_adx, skip, out)


@numba.njit(cache=True, nogil=True)
def adx_segments(
    tr: FloatArray,
    pdm: FloatArray,
    mdm: FloatArray,
    offs: IntArray,
    n: int,
    init_tr: FloatArray,
    init_pdm: FloatArray,
    init_mdm: FloatArray,
    init_adx: FloatArray,
    skip: IntArray,
    out: FloatArray,
) -> None:
    """Wilder's ADX of each segment (see :func:`_adx_one`)."""
    m = tr.shape[0]
    s_tr = np.empty(m)
    s_p = np.empty(m)
    s_m = np.empty(m)
    dx = np.empty(m)
    for g in range(offs.shape[0] - 1):
        _adx_one(tr, pdm, mdm, offs[g], offs[g + 1], n, init_tr[g], init_pdm[g], init_mdm[g], init_adx[g],
                 skip[g], s_tr, s_p, s_m, dx, out)  # fmt: skip


@numba.njit(cache=True, nogil=True, inline="always")
def _window_sum(vals: FloatArray, a: int, b: int) -> float:
    """Sum of ``vals[a:b]`` in a fixed order that depends only on those values: four interleaved partial
    sums (``vals[a], vals[a+4], ...``), combined as ``(s0 + s1) + (s2 + s3)``, then the tail in order.
    Four independent chains keep the adder pipeline busy (~4x a single running sum)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    j = a
    while j + 4 <= b:
        s0 += vals[j]
        s1 += vals[j + 1]
        s2 += vals[j + 2]
        s3 += vals[j + 3]
        j += 4
    acc = (s0 + s1) + (s2 + s3)
    while j < b:
        acc += vals[j]
        j += 1
    return acc


@numba.njit(_SIG_MEAN, cache=True, nogil=True)
def _rolling_mean_one(vals: FloatArray, lo: int, hi: int, n: int, out: FloatArray) -> None:
    for i in range(lo, hi):
        out[i] = np.nan if i - lo + 1 < n else _window_sum(vals, i - n + 1, i + 1) / n


@numba.njit(_SIG_STD, cache=True, nogil=True)
def _rolling_std_one(vals: FloatArray, lo: int, hi: int, n: int, ddof: int, out: FloatArray) -> None:
    for i in range(lo, hi):
        if i - lo + 1 < n or n - ddof <= 0:
            out[i] = np.nan
            continue
        a = i - n + 1
        mean = _window_sum(vals, a, i + 1) / n
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        j = a
        while j + 4 <= i + 1:
            d0 = vals[j] - mean
            d1 = vals[j + 1] - mean
            d2 = vals[j + 2] - mean
            d3 = vals[j + 3] - mean
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            j += 4
        ss = (s0 + s1) + (s2 + s3)
        while j <= i:
            d = vals[j] - mean
            ss += d * d
            j += 1
        out[i] = math.sqrt(ss / (n - ddof))


@numba.njit(_SIG_EXTREME, cache=True, nogil=True)
def _rolling_extreme_one(
    vals: FloatArray, lo: int, hi: int, n: int, largest: bool, out: FloatArray, ring: IntArray
) -> None:
    """Trailing max (``largest``) or min over ``n`` rows: a monotonic queue of row indices in ``ring``
    (capacity >= n), O(1) amortized per row.  Exact (max/min do not round); NaN until ``n`` rows and for a
    window holding a NaN."""
    head = 0
    size = 0
    last_nan = lo - 1 - n
    cap = ring.shape[0]
    for i in range(lo, hi):
        x = vals[i]
        if math.isnan(x):
            last_nan = i
            size = 0
        else:
            while size > 0:
                back = ring[(head + size - 1) % cap]
                y = vals[back]
                if (largest and y <= x) or (not largest and y >= x):
                    size -= 1
                else:
                    break
            ring[(head + size) % cap] = i
            size += 1
        while size > 0 and ring[head] <= i - n:
            head = (head + 1) % cap
            size -= 1
        if i - lo + 1 < n or last_nan > i - n:
            out[i] = np.nan
        else:
            out[i] = vals[ring[head]]


@numba.njit(cache=True, nogil=True)
def rolling_mean_segments(vals: FloatArray, offs: IntArray, n: int, out: FloatArray) -> None:
    """Trailing mean over the last ``n`` rows of each segment (NaN until ``n`` rows, or with a NaN inside)."""
    for g in range(offs.shape[0] - 1):
        _rolling_mean_one(vals, offs[g], offs[g + 1], n, out)


@numba.njit(cache=True, nogil=True)
def rolling_std_segments(vals: FloatArray, offs: IntArray, n: int, ddof: int, out: FloatArray) -> None:
    """Trailing standard deviation over ``n`` rows, two-pass (mean, then squared deviations), ``ddof`` 0 or 1."""
    for g in range(offs.shape[0] - 1):
        _rolling_std_one(vals, offs[g], offs[g + 1], n, ddof, out)


# ------------------------------------------------------------------------------------ array entry points
# The indicators every part of quantlake uses (feature SQL, scanner, equity strategies, ML features) are the
# kernels above; these functions call them on a 1-D series, on the columns of a 2-D array (axis 0 = time),
# or on a flat array of back-to-back series given by ``offsets``.


def run_offsets(keys: np.ndarray) -> IntArray:
    """Offsets of the runs of equal consecutive ``keys`` (e.g. the symbol column of a frame sorted by
    symbol and date): the ``offsets`` argument of the functions below."""
    k = np.asarray(keys)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if k.size else np.array([], dtype=np.int64)
    return np.r_[starts, k.size].astype(np.int64)


def _segments(x: np.ndarray, offsets: np.ndarray | None) -> tuple[FloatArray, IntArray, tuple[int, ...]]:
    a = np.asarray(x, dtype=np.float64)
    if offsets is not None:
        if a.ndim != 1:
            raise ValueError("with offsets, values must be one flat array")
        offs = np.asarray(offsets, dtype=np.int64)
        if offs.size < 1 or offs[0] != 0 or offs[-1] != a.size or np.any(np.diff(offs) < 0):
            raise ValueError("offsets must rise from 0 to len(values)")
        return np.ascontiguousarray(a), offs, a.shape
    if a.ndim == 1:
        return np.ascontiguousarray(a), np.array([0, a.size], dtype=np.int64), a.shape
    if a.ndim == 2:
        n_rows, n_cols = a.shape
        flat = np.ascontiguousarray(a.T).ravel()
        return flat, np.arange(0, n_rows * n_cols + 1, max(n_rows, 1), dtype=np.int64)[: n_cols + 1], a.shape
    raise ValueError(f"expected a 1-D or 2-D array, got {a.ndim} dimensions")


def _shaped(flat: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    if len(shape) == 2:
        return np.ascontiguousarray(flat.reshape(shape[1], shape[0]).T)
    return flat


def _fresh(offs: IntArray) -> tuple[FloatArray, IntArray]:
    groups = offs.shape[0] - 1
    return np.full(groups, np.nan), np.zeros(groups, dtype=np.int64)


def _smooth(x: np.ndarray, n: int, alpha: float, offsets: np.ndarray | None) -> FloatArray:
    if n < 1:
        raise ValueError(f"period must be >= 1, got {n}")
    vals, offs, shape = _segments(x, offsets)
    out = np.empty_like(vals)
    init, skip = _fresh(offs)
    ema_segments(vals, offs, int(n), alpha, init, skip, out)
    return _shaped(out, shape)


def ema(x: np.ndarray, n: int, offsets: np.ndarray | None = None) -> FloatArray:
    """EMA of period ``n`` (alpha 2/(n+1)) seeded with the mean of the first ``n`` valid values (TA-Lib,
    backtrader, ``sql/features_technical.sql``)."""
    return _smooth(x, n, ema_alpha(n), offsets)


def wilder(x: np.ndarray, n: int, offsets: np.ndarray | None = None) -> FloatArray:
    """Wilder's moving average of period ``n`` (alpha 1/n), SMA-seeded (RSI, ATR, ADX)."""
    return _smooth(x, n, wilder_alpha(n), offsets)


def _diff(x: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """Change from the previous row within each series (NaN on each series' first row)."""
    vals, offs, shape = _segments(x, offsets)
    d = np.full_like(vals, np.nan)
    if vals.size > 1:
        d[1:] = vals[1:] - vals[:-1]
    d[offs[:-1][offs[:-1] < vals.size]] = np.nan
    return _shaped(d, shape)


def rsi(close: np.ndarray, n: int = 14, offsets: np.ndarray | None = None) -> FloatArray:
    """Wilder's RSI in [0, 100]: gains and losses of close-to-close changes, each Wilder-smoothed; 100 with
    gains and no losses, 50 with neither (first value at row ``n``)."""
    chg = _diff(close, offsets)
    gain = np.where(np.isnan(chg), np.nan, np.maximum(chg, 0.0))
    loss = np.where(np.isnan(chg), np.nan, np.maximum(-chg, 0.0))
    avg_gain, avg_loss = wilder(gain, n, offsets), wilder(loss, n, offsets)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(
            avg_loss > 0, 100.0 - 100.0 / (1.0 + avg_gain / avg_loss), np.where(avg_gain > 0, 100.0, 50.0)
        )
    return np.where(np.isnan(avg_gain) | np.isnan(avg_loss), np.nan, out)


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9, offsets: np.ndarray | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(MACD line ``EMA(fast) − EMA(slow)``, signal line (SMA-seeded EMA of the line), histogram)."""
    line = ema(close, fast, offsets) - ema(close, slow, offsets)
    vals, offs, shape = _segments(close, offsets)
    out = np.empty_like(vals)
    init, skip = _fresh(offs)
    macd_signal_segments(vals, offs, int(fast), int(slow), int(signal), init, init, init, skip, out)
    sig = _shaped(out, shape)
    return line, sig, line - sig
