"""The per-symbol series pass of ``features_technical`` and ``features_regime``: every value that needs the
symbol's earlier rows (lags, rolling windows, recursions) computed by numba straight over Arrow buffers, one
symbol at a time, the symbols split into one contiguous chunk per core run on threads (the kernels release
the GIL).  DuckDB SQL still does the rest: ``sql/series/*_bars.sql`` selects and sorts the
input rows, ``sql/features_*.sql`` defines every output column from this pass's columns (row-wise) and
joins the VIX series; the SQL headers define every column.

Why not DuckDB window functions and list UDFs (the first engine): on 500 symbols x 20 years the list
aggregation, the unnesting and the partitioned windows (``lag``, ``min``/``max`` over 14 and 252 rows) took
~30 s of a 36 s build; this pass does the same work in well under a second per family, and its results are
bitwise reproducible on truncated or resumed history (see :mod:`features.kernels`: fixed-order window sums,
exact extremes, recursions resumed from the stored state after ``skip`` warm-up rows).

Rows are sorted by (symbol, date); ``offsets`` delimit the symbols (:func:`features.kernels.run_offsets`).
Threads rather than numba's ``parallel=True``: a parallel kernel this size takes twice as long to compile
(measured: 55 s against 26 s on the busy 2-core machine), a cost every fresh install pays on its first build.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice, pairwise
from typing import Protocol, TypeVar

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.kernels import (
    FloatArray,
    IntArray,
    _adx_one,
    _ema_one,
    _macd_one,
    _rolling_extreme_one,
    _rolling_mean_one,
    _rolling_std_one,
    run_offsets,
)

# recursion states a resumed build starts from, in this order (rows of ``init``; NaN = fresh)
TECH_STATE = (
    "macd_fast",
    "macd_slow",
    "macd_signal",
    "rsi_gain",
    "rsi_loss",
    "atr",
    "adx_pdm",
    "adx_mdm",
    "adx",
)
# columns of the technical pass after sma_N, ema_N (rows of its output)
TECH_COLUMNS = (
    "st_macd_fast", "st_macd_slow", "macd_signal", "st_rsi_gain", "st_rsi_loss", "atr_14", "st_adx_pdm",
    "st_adx_mdm", "adx_14", "bb_mid", "bb_sigma", "volume_sma_20", "px_lag_1", "px_lag_5", "px_lag_20",
    "px_lag_60", "high_52w", "low_52w", "stoch_k", "stoch_d",
)  # fmt: skip
RET_LAGS = (1, 5, 20, 60)
T = TypeVar("T")


@numba.njit(cache=True, nogil=True)
def technical_nb(
    close: FloatArray,
    px: FloatArray,
    high: FloatArray,
    low: FloatArray,
    volume: FloatArray,
    offs: IntArray,
    skip: IntArray,
    init_ema: FloatArray,
    init: FloatArray,
    sma_periods: IntArray,
    ema_periods: IntArray,
    out: FloatArray,
) -> None:
    """``out`` rows: sma_N (``sma_periods``), ema_N (``ema_periods``), then :data:`TECH_COLUMNS`."""
    n_sma, n_ema = sma_periods.shape[0], ema_periods.shape[0]
    b = n_sma + n_ema  # row of the first TECH_COLUMNS output
    for g in range(offs.shape[0] - 1):
        lo, hi, sk = offs[g], offs[g + 1], skip[g]
        m = hi - lo
        # out[k, lo:hi] (not out[:, lo:hi][k]) keeps every row a C-contiguous array: the kernels' signature
        c, p, h, lw, v = close[lo:hi], px[lo:hi], high[lo:hi], low[lo:hi], volume[lo:hi]
        gain, loss, tr = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
        pdm, mdm = np.full(m, np.nan), np.full(m, np.nan)
        for i in range(1, m):
            chg = c[i] - c[i - 1]
            gain[i] = chg if chg > 0 else 0.0
            loss[i] = -chg if chg < 0 else 0.0
            if not (np.isnan(h[i]) or np.isnan(lw[i])):
                tr[i] = max(h[i] - lw[i], abs(h[i] - c[i - 1]), abs(lw[i] - c[i - 1]))
            up, down = h[i] - h[i - 1], lw[i - 1] - lw[i]
            if not (np.isnan(up) or np.isnan(down)):
                pdm[i] = up if (up > down and up > 0) else 0.0
                mdm[i] = down if (down > up and down > 0) else 0.0
        for k in range(n_sma):
            _rolling_mean_one(c, 0, m, sma_periods[k], out[k, lo:hi])
        for k in range(n_ema):
            n = ema_periods[k]
            _ema_one(c, 0, m, n, 2.0 / (n + 1.0), init_ema[k, g], sk, out[n_sma + k, lo:hi])
        line, dx = np.empty(m), np.empty(m)
        _macd_one(c, 0, m, 12, 26, 9, init[0, g], init[1, g], init[2, g], sk, out[b, lo:hi], out[b + 1, lo:hi],
                  line, out[b + 2, lo:hi])  # fmt: skip
        _ema_one(gain, 0, m, 14, 1.0 / 14.0, init[3, g], sk, out[b + 3, lo:hi])
        _ema_one(loss, 0, m, 14, 1.0 / 14.0, init[4, g], sk, out[b + 4, lo:hi])
        _adx_one(tr, pdm, mdm, 0, m, 14, init[5, g], init[6, g], init[7, g], init[8, g], sk, out[b + 5, lo:hi],
                 out[b + 6, lo:hi], out[b + 7, lo:hi], dx, out[b + 8, lo:hi])  # fmt: skip
        _rolling_mean_one(c, 0, m, 20, out[b + 9, lo:hi])
        _rolling_std_one(c, 0, m, 20, 0, out[b + 10, lo:hi])
        _rolling_mean_one(v, 0, m, 20, out[b + 11, lo:hi])
        for j, lag in enumerate((1, 5, 20, 60)):
            lagged = out[b + 12 + j, lo:hi]
            for i in range(m):
                lagged[i] = p[i - lag] if i >= lag else np.nan
        q = np.empty(253, dtype=np.int64)
        hl = np.where(np.isnan(h), c, h)  # 52-week range on highs/lows, closes where a bar has none
        _rolling_extreme_one(hl, 0, m, 252, True, out[b + 16, lo:hi], q)
        hl = np.where(np.isnan(lw), c, lw)
        _rolling_extreme_one(hl, 0, m, 252, False, out[b + 17, lo:hi], q)
        # fast stochastic: the 14-bar range needs 14 highs and 14 lows; %K NULL on a zero range
        hh, ll = np.empty(m), np.empty(m)
        _rolling_extreme_one(np.where(np.isnan(lw), np.nan, h), 0, m, 14, True, hh, q)
        _rolling_extreme_one(np.where(np.isnan(h), np.nan, lw), 0, m, 14, False, ll, q)
        k_, d_ = out[b + 18, lo:hi], out[b + 19, lo:hi]
        for i in range(m):
            span = hh[i] - ll[i]
            k_[i] = np.nan if (np.isnan(span) or span == 0.0) else 100.0 * (c[i] - ll[i]) / span
            d_[i] = (k_[i] + k_[i - 1] + k_[i - 2]) / 3.0 if i >= 2 else np.nan


@numba.njit(cache=True, nogil=True)
def regime_nb(
    close: FloatArray, px: FloatArray, offs: IntArray, rv_periods: IntArray, out: FloatArray
) -> None:
    """``out`` rows: the sample deviation (ddof 1) of the last N daily log returns for each ``rv_periods``,
    then the 200-bar mean of closes."""
    n_rv = rv_periods.shape[0]
    for g in range(offs.shape[0] - 1):
        lo, hi = offs[g], offs[g + 1]
        m = hi - lo
        p = px[lo:hi]
        lr = np.full(m, np.nan)
        for i in range(1, m):
            if p[i] > 0 and p[i - 1] > 0:
                lr[i] = np.log(p[i] / p[i - 1])
        for k in range(n_rv):
            _rolling_std_one(lr, 0, m, rv_periods[k], 1, out[k, lo:hi])
        _rolling_mean_one(close[lo:hi], 0, m, 200, out[n_rv, lo:hi])


def _floats(table: pa.Table, name: str) -> FloatArray:
    col = table.column(name)
    if col.type != pa.float64():
        col = col.cast(pa.float64())
    # writable and contiguous: a read-only (zero-copy) array would compile the kernels a second time
    return np.require(col.to_numpy(zero_copy_only=False), np.float64, ["C", "W"])


def _chunks(offs: IntArray, workers: int) -> list[tuple[int, int]]:
    """Symbol ranges ``[a, b)`` of about equal row counts, one per worker (at most one per symbol)."""
    n = offs.shape[0] - 1
    k = max(1, min(workers, n))
    cuts = np.searchsorted(offs, np.linspace(0, offs[-1], k + 1)[1:-1], side="right") - 1
    bounds = np.unique(np.r_[0, np.clip(cuts, 0, n), n])
    return [(int(a), int(b)) for a, b in pairwise(bounds.tolist()) if b > a]


def _on_threads(run: Callable[[int, int], None], offs: IntArray) -> None:
    """``run(a, b)`` for each chunk of symbols, on one thread per core."""
    chunks = _chunks(offs, os.cpu_count() or 1)
    if len(chunks) <= 1:
        for a, b in chunks:
            run(a, b)
        return
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        for f in [pool.submit(run, a, b) for a, b in chunks]:
            f.result()


# rows per part of a build: each part's bars are queried, go through the series pass and the SQL on their own
# (~30 + 45 float64 columns: ~150 MB per 250k rows), never the whole table's input or intermediates at once
PART_ROWS = 250_000


def scope_parts(scope: pa.Table, counts: pa.Table, rows: int = PART_ROWS) -> Iterator[pa.Table]:
    """Consecutive slices of ``scope`` (one row per symbol, sorted by symbol) holding about ``rows`` bars
    each by ``counts`` (symbol, n: the bars each symbol's series reads), cut only between symbols (a symbol
    is never split; a symbol longer than ``rows`` is a part of its own).  Symbols missing from ``counts``
    read no bars and ride along with their neighbours."""
    if scope.num_rows == 0:
        yield scope
        return
    n_of = dict(zip(counts.column("symbol").to_pylist(), counts.column("n").to_pylist(), strict=True))
    sizes = np.asarray([n_of.get(s, 0) or 0 for s in scope.column("symbol").to_pylist()], dtype=np.int64)
    start, acc = 0, 0
    for i, n in enumerate(sizes.tolist()):
        if acc and acc + n > rows:
            yield scope.slice(start, i - start)
            start, acc = i, 0
        acc += n
    yield scope.slice(start, scope.num_rows - start)


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)
R = TypeVar("R")


def computed_in_order(
    items: Iterable[T], work: Callable[[T, C], R], context: Callable[[], C], workers: int = 2
) -> Iterator[R]:
    """``work(item, ctx)`` for each item on ``workers`` threads, the results yielded in the items' order.

    Each thread makes its own ``ctx`` with ``context()`` on its first item (here: a DuckDB cursor, since one
    connection serves one thread at a time) and every ``ctx`` is closed at the end.  While the consumer
    handles one result (here: encodes a part to Parquet), the threads compute the next ``workers`` items; no
    more wait, so memory stays at about ``workers + 1`` results.  An error in ``work`` is raised at the item
    where it happened; closing the iterator early cancels what has not started and waits for the rest."""
    local = threading.local()
    made: list[C] = []
    lock = threading.Lock()

    def run(item: T) -> R:
        ctx = getattr(local, "ctx", None)
        if ctx is None:
            ctx = local.ctx = context()
            with lock:
                made.append(ctx)
        return work(item, ctx)

    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="quantlake-part")
    pending: deque[Future[R]] = deque()
    try:
        for item in islice(source, max(1, workers)):
            pending.append(pool.submit(run, item))
        while pending:
            result = pending.popleft().result()
            for item in islice(source, 1):
                pending.append(pool.submit(run, item))
            yield result
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)
        for ctx in made:
            ctx.close()


def _column(values: FloatArray) -> pa.Array:
    return pa.array(values, type=pa.float64(), from_pandas=True)  # NaN -> NULL


def _segments(bars: pa.Table) -> tuple[IntArray, IntArray, pa.Array]:
    """Symbol offsets, warm-up rows per symbol (before its ``write_from``) and the rows to write."""
    symbols = np.asarray(bars.column("symbol").to_numpy(zero_copy_only=False))
    offs = run_offsets(symbols)
    write_from = bars.column("write_from")
    before = pc.fill_null(pc.less(bars.column("date"), write_from), False)
    n_before = np.asarray(before.to_numpy(zero_copy_only=False), dtype=np.int64)
    skip = np.add.reduceat(n_before, offs[:-1]) if len(offs) > 1 else np.zeros(0, dtype=np.int64)
    return offs, skip.astype(np.int64), pc.invert(before)


def _aligned(scope: pa.Table, symbols: Sequence[str], columns: Sequence[str]) -> FloatArray:
    """``(len(columns), len(symbols))`` values of ``scope`` for the segments' symbols (NaN where NULL)."""
    pos = {s: i for i, s in enumerate(scope.column("symbol").to_pylist())}
    idx = np.asarray([pos[s] for s in symbols], dtype=np.int64)
    out = np.full((len(columns), len(symbols)), np.nan)
    for k, c in enumerate(columns):
        out[k] = _floats(scope, c)[idx] if len(idx) else out[k]
    return out


def technical_series(
    bars: pa.Table, scope: pa.Table, sma_periods: Sequence[int], ema_periods: Sequence[int]
) -> pa.Table:
    """The technical pass over ``bars`` (``sql/series/technical_bars.sql``) with the resume state of
    ``scope``: the rows to write, with every input the SQL needs."""
    offs, skip, keep = _segments(bars)
    symbols = [bars.column("symbol")[int(o)].as_py() for o in offs[:-1]]
    init_ema = _aligned(scope, symbols, [f"init_ema_{n}" for n in ema_periods])
    init = _aligned(scope, symbols, [f"init_{s}" for s in TECH_STATE])
    names = [*(f"sma_{n}" for n in sma_periods), *(f"ema_{n}" for n in ema_periods), *TECH_COLUMNS]
    out = np.empty((len(names), bars.num_rows))
    close, px, high, low, volume = (_floats(bars, c) for c in ("close", "px", "high", "low", "volume"))
    sma, ema = np.asarray(sma_periods, dtype=np.int64), np.asarray(ema_periods, dtype=np.int64)

    def run(a: int, b: int) -> None:
        technical_nb(close, px, high, low, volume, offs[a : b + 1], skip[a:b],
                     np.ascontiguousarray(init_ema[:, a:b]), np.ascontiguousarray(init[:, a:b]), sma, ema, out)  # fmt: skip

    _on_threads(run, offs)
    cols = {
        c: bars.column(c) for c in ("symbol", "date", "close", "high", "low", "volume", "px", "ret_basis")
    }
    table = pa.table({**cols, **{n: _column(out[k]) for k, n in enumerate(names)}})
    return table if skip.sum() == 0 else table.filter(keep)


def regime_series(bars: pa.Table, rv_periods: Sequence[int]) -> pa.Table:
    """The regime pass over ``bars`` (``sql/series/regime_bars.sql``): the rows to write."""
    offs, skip, keep = _segments(bars)
    names = [*(f"sd_{n}" for n in rv_periods), "sma_200"]
    out = np.empty((len(names), bars.num_rows))
    close, px, periods = _floats(bars, "close"), _floats(bars, "px"), np.asarray(rv_periods, dtype=np.int64)
    _on_threads(lambda a, b: regime_nb(close, px, offs[a : b + 1], periods, out), offs)
    table = pa.table(
        {
            **{c: bars.column(c) for c in ("symbol", "date", "close")},
            **{n: _column(out[k]) for k, n in enumerate(names)},
        }
    )
    return table if skip.sum() == 0 else table.filter(keep)
