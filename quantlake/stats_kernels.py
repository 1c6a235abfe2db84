"""The one pass over each return column that :mod:`quantlake.stats` builds every statistic from.

Hand-written in numba because numpy needs a full-size temporary per step (and ``x ** 3`` / ``x ** 4`` call
``pow`` per element): on a sweep chunk of 5,040 bars × 1,750 columns the numpy statistics took ~1.2 s per
call, this pass ~40 ms for all of them.  Each column is reduced on its own by a fixed sequential loop
(the sum of the returns compensated (Neumaier), as the mean decides the Sharpe ratio's sign; the central
moments and squares are sums of deviations from it, plain sequential sums like the reference loops), so a column's figures are bitwise the same whatever its position, its neighbours or the
number of threads — and the same as the column passed alone as a 1-D series.

Imported lazily by :mod:`quantlake.stats` (importing numba costs a command that never needs it).
"""

from __future__ import annotations

import numba
import numpy as np

# rows of the pass's output
N, MEAN, M2, M3, M4, DOWN2, GROWTH, MDD = range(8)
N_OUT = 8


@numba.njit(cache=True, inline="always")
def _add(s: float, c: float, v: float) -> tuple[float, float]:
    """Neumaier's compensated step: ``(s, c)`` + ``v`` (the sum is ``s + c``)."""
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


@numba.njit(cache=True, parallel=True, nogil=True)
def column_pass(r: np.ndarray, mar: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per row ``k`` of ``r`` ``(K, T)`` (one return series per row), into ``out[:, k]``: the number of finite
    returns, their mean, the central moments ``m2, m3, m4`` (divided by n), ``mean(min(r − mar, 0)²)``,
    the compounded growth ``Π(1 + r)`` and the deepest ``growth / running peak − 1`` of the curve started at
    1 (≤ 0).  Non-finite returns are missing: skipped by the moments, no change for growth and drawdowns."""
    n_cols, n_rows = r.shape
    for k in numba.prange(n_cols):
        x = r[k]
        n = 0
        s, sc = 0.0, 0.0
        d = 0.0
        growth, peak, mdd = 1.0, 1.0, 0.0
        for t in range(n_rows):
            v = x[t]
            if not np.isfinite(v):
                continue
            n += 1
            s, sc = _add(s, sc, v)
            lo = min(v - mar, 0.0)
            d += lo * lo
            growth *= 1.0 + v
            if growth > peak:
                peak = growth
            dd = growth / peak - 1.0
            if dd < mdd:
                mdd = dd
        mean = (s + sc) / n if n > 0 else np.nan
        a2, a3, a4 = 0.0, 0.0, 0.0
        for t in range(n_rows):
            v = x[t]
            if not np.isfinite(v):
                continue
            dev = v - mean
            sq = dev * dev
            a2 += sq
            a3 += sq * dev
            a4 += sq * sq
        out[N, k] = n
        out[MEAN, k] = mean
        out[M2, k] = a2 / n if n > 0 else np.nan
        out[M3, k] = a3 / n if n > 0 else np.nan
        out[M4, k] = a4 / n if n > 0 else np.nan
        out[DOWN2, k] = d / n if n > 0 else np.nan
        out[GROWTH, k] = growth
        out[MDD, k] = mdd


def run(rows: np.ndarray, mar: float) -> np.ndarray:
    """:func:`column_pass` of ``rows`` ``(K, T)`` (C-contiguous float64) → ``(8, K)``."""
    out = np.empty((N_OUT, rows.shape[0]), dtype=np.float64)
    column_pass(rows, float(mar), out)
    return out


@numba.njit(cache=True, inline="always")
def _sift_down(h: np.ndarray, i: int, m: int) -> None:
    """Restore the max-heap ``h[:m]`` below position ``i``."""
    while True:
        c = 2 * i + 1
        if c >= m:
            return
        if c + 1 < m and h[c + 1] > h[c]:
            c += 1
        if h[c] > h[i]:
            h[i], h[c] = h[c], h[i]
            i = c
        else:
            return


@numba.njit(cache=True, inline="always")
def _two_smallest_tail(x: np.ndarray, n_rows: int, m: int, sign: float, heap: np.ndarray) -> tuple[float, float]:
    """The ``m − 1``-th and ``m``-th smallest finite values of ``sign · x`` (1-based): a max-heap of the ``m``
    smallest seen so far, one comparison per value once it is full."""
    k = 0
    for t in range(n_rows):
        v = x[t]
        if not np.isfinite(v):
            continue
        v = sign * v
        if k < m:
            heap[k] = v
            k += 1
            if k == m:
                for i in range(m // 2 - 1, -1, -1):
                    _sift_down(heap, i, m)
        elif v < heap[0]:
            heap[0] = v
            _sift_down(heap, 0, m)
    second = heap[1] if m == 2 or heap[1] >= heap[2] else heap[2]
    return second, heap[0]


@numba.njit(cache=True)
def _tail_pair(x: np.ndarray, n_rows: int, n: int, m: int, sign: float) -> tuple[float, float]:
    """The ``m − 1``-th and ``m``-th smallest of the ``n`` finite values of ``sign · x`` (1-based, ``m ≥ 2``).

    A small tail (``4 m ≤ n``) is selected among the candidates at or below a threshold: the value of rank
    ~``2 m`` in a 1-in-8 sample.  When at least ``m`` values are at or below it, the ``m`` smallest are all
    candidates, so the result is exact; otherwise (a rare sample) the bounded heap runs over every value."""
    step = 8
    if 4 * m <= n:
        sample = np.empty(n_rows // step + 1)
        ns = 0
        for t in range(0, n_rows, step):
            v = x[t]
            if np.isfinite(v):
                sample[ns] = sign * v
                ns += 1
        ms = (m * ns) // n * 2 + 8
        if ms < ns:
            _, th = _two_smallest_tail(sample, ns, ms, 1.0, np.empty(ms))
            cand = np.empty(n_rows)
            c = 0
            for t in range(n_rows):
                v = x[t]
                if np.isfinite(v):
                    v = sign * v
                    if v <= th:
                        cand[c] = v
                        c += 1
            if c >= m:
                return _two_smallest_tail(cand, c, m, 1.0, np.empty(m))
    return _two_smallest_tail(x, n_rows, m, sign, np.empty(m))


@numba.njit(cache=True, parallel=True, nogil=True)
def column_quantile(r: np.ndarray, q: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[k]``: the ``q``-quantile of the finite values of row ``k`` of ``r`` ``(K, T)`` by numpy's default
    ``linear`` method, with numpy's arithmetic (virtual index ``(n − 1) q``, the two neighbouring order
    statistics ``a ≤ b``, then ``a + (b − a) γ`` or, for ``γ ≥ 0.5``, ``b − (b − a)(1 − γ)``): bitwise
    ``np.quantile`` of the column's finite values.  The two order statistics come from the nearer tail only
    (:func:`_tail_pair`: a 5 % quantile of 5,040 values selects among ~600 candidates), not a partition of the
    whole matrix: ~5x faster than ``np.quantile``, no copy of the matrix, columns in parallel."""
    n_cols, n_rows = r.shape
    for k in numba.prange(n_cols):
        x = r[k]
        n = 0
        for t in range(n_rows):
            if np.isfinite(x[t]):
                n += 1
        if n == 0:
            out[k] = np.nan
            continue
        virtual = (n - 1) * q
        if virtual >= n - 1:  # numpy: the largest value
            hi = -np.inf
            for t in range(n_rows):
                if np.isfinite(x[t]) and x[t] > hi:
                    hi = x[t]
            out[k] = hi
            continue
        prev = int(np.floor(virtual))  # order statistics prev and prev + 1 (0-based), prev + 1 <= n - 1
        if prev + 2 <= n - prev:  # the lower tail is the smaller one
            a, b = _tail_pair(x, n_rows, n, prev + 2, 1.0)
        else:  # the upper tail: smallest of the negated values
            nb, na = _tail_pair(x, n_rows, n, n - prev, -1.0)
            a, b = -na, -nb
        gamma = virtual - prev
        diff = b - a
        if gamma >= 0.5:
            out[k] = b - diff * (1 - gamma)
        else:
            out[k] = a + diff * gamma


def quantile(rows: np.ndarray, q: float) -> np.ndarray:
    """:func:`column_quantile` of ``rows`` ``(K, T)`` (C-contiguous float64) → ``(K,)``."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    column_quantile(rows, float(q), out)
    return out
