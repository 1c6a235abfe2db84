"""The sweep simulator: vectorbt's own order functions, driven by a column-parallel numba loop.

Why not ``vectorbt.Portfolio.from_signals`` (or its kernel ``simulate_from_signals_nb``) directly:

* **Fill order.**  vectorbt checks stops before signals on every bar.  With ``fill: next_open`` a signal
  exit decided on t's close executes at t+1's *open*, which comes before anything else t+1 does; vectorbt
  still lets t+1's low trigger the stop first and sells at the stop level (issue 20: ATR-stop backtests
  lost ~19 % of median final value).  Here a signal order that changes the position at the open is executed
  first and the bar's stops are not checked; every other case follows vectorbt's order of events.
* **Speed and memory.**  ``from_signals`` needs every input as a ``(bars, columns)`` array (prices tiled once
  per parameter combination, five float arrays per chunk) and a pandas wrapper per call, and its kernel is
  sequential.  Here prices stay ``(bars, symbols)`` and are addressed through ``col_sym``, signals are 1-byte
  arrays, columns run in parallel (``numba.prange``; columns are independent), each column through all its
  bars with its state in registers (signals and results column-major: read and written contiguously), and
  the loop writes each column's daily return (or value) once, which is all the metrics need.

What is *not* re-implemented: every decision about one order — signal conflicts, reversals, all-in sizing,
fees, slippage, minimum size, stop levels and gap fills, the order records themselves — is a call into
``vectorbt.portfolio.nb`` (``signals_to_size_nb``, ``execute_order_nb``, ``get_stop_price_nb``, ...), with
the arguments ``from_signals`` would pass (LS mode, ``accumulate=False``, ``upon_opposite_entry=
ReverseReduce``, ``min_size=1e-8``, ``stop_entry_price=Price``, ``stop_exit_price=StopMarket``).  The order
records have vectorbt's dtype, so trades, drawdowns and plots are vectorbt's (:func:`portfolio`).
Checked trade by trade against a plain event loop and backtrader (``tests/test_equity_sweep.py``) and, where
the fill order cannot matter, against ``Portfolio.from_signals`` itself (``tests/test_equity_engine.py``).

Layout: ``close``/``price``/``open``/``high``/``low`` are ``(T, S)``; signals are ``(T, N)`` (column-major
is fastest) with column ``col`` trading symbol ``col_sym[col]``.  Signals are stated at the bar whose close produced them and are
read ``lag`` bars later (``lag = 1`` for next-bar fills).  Every row is a bar of every symbol (the sweep
simulates each calendar separately, so no price is ever missing or invented).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from vectorbt.portfolio import nb as vnb
from vectorbt.portfolio.enums import (
    AccumulationMode,
    ConflictMode,
    Direction,
    DirectionConflictMode,
    OppositeEntryMode,
    OrderStatus,
    ProcessOrderState,
    SizeType,
    StopExitMode,
    StopExitPrice,
    order_dt,
)

# how a flexible per-bar/per-column parameter is laid out (see _flex)
SCALAR, PER_SYMBOL, PER_COLUMN_BAR, PER_COLUMN = 0, 1, 2, 3
MIN_SIZE = 1e-8  # vectorbt's default min_size


@numba.njit(cache=True, inline="always")
def _flex(a: np.ndarray, mode: int, j: int, s: int, col: int) -> float:
    """``a`` read for bar ``j`` (the signal bar), symbol ``s``, column ``col`` (NaN before the first bar)."""
    if mode == SCALAR:
        return a[0, 0]
    if mode == PER_COLUMN:
        return a[0, col]
    if j < 0:
        return np.nan
    if mode == PER_SYMBOL:
        return a[j, s]
    return a[j, col]


@numba.njit(cache=True, parallel=True, nogil=True)
def simulate_nb(  # one flat kernel: the arguments are documented in simulate()
    close: np.ndarray,
    price: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    signals_at_open: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    short_entries: np.ndarray,
    short_exits: np.ndarray,
    entry_ok: np.ndarray,
    force_exit: np.ndarray,
    col_sym: np.ndarray,
    lag: int,
    fees: np.ndarray,
    slippage: np.ndarray,
    fixed_fees: float,
    init_cash: float,
    size: np.ndarray,
    size_mode: int,
    size_type: int,
    sl_stop: np.ndarray,
    sl_mode: int,
    sl_trail: np.ndarray,
    tp_stop: np.ndarray,
    tp_mode: int,
    use_stops: bool,
    rec_offsets: np.ndarray,
    records: np.ndarray,
    rec_counts: np.ndarray,
    out: np.ndarray,
    as_returns: bool,
    final_value: np.ndarray,
    bars_in_position: np.ndarray,
) -> None:
    # one column at a time through all bars: the state lives in registers, and the per-column arrays
    # (signals, out) are passed transposed, (N, T), so each column is read/written contiguously
    n_rows = close.shape[0]
    n_cols = entries.shape[0]
    has_shorts = short_entries.shape[0] > 0
    has_ok = entry_ok.shape[0] > 0
    has_force = force_exit.shape[0] > 0
    for col in numba.prange(n_cols):
        s = col_sym[col]
        at_open = signals_at_open[s]
        col_fees = fees[col]
        col_slip = slippage[col]
        cash = init_cash
        position = 0.0
        debt = 0.0
        free_cash = init_cash
        val_price = np.nan
        last_close = np.nan
        prev_value = init_cash
        sl_price = np.nan
        sl_cur = np.nan
        sl_trl = False
        tp_price = np.nan
        tp_cur = np.nan
        n_rec = 0
        in_pos = 0
        v = init_cash
        for i in range(n_rows):
            j = i - lag
            px = price[i, s]
            if not np.isnan(px):
                val_price = px  # val_price=inf: the order price (ffilled)
            pos = position

            # the signals as traded on bar i
            le = False
            lx = False
            se = False
            sx = False
            if j >= 0:
                le = entries[col, j]
                lx = exits[col, j]
                if has_shorts:
                    se = short_entries[col, j]
                    sx = short_exits[col, j]
                if has_ok and not entry_ok[j, s]:
                    le = False
                    se = False
                if has_force and force_exit[j, s]:
                    lx = True
                    if has_shorts:
                        sx = True
            has_signal = le or lx or se or sx
            has_stop = use_stops and pos != 0 and (not np.isnan(sl_cur) or not np.isnan(tp_cur))
            if has_signal or has_stop:
                acc = AccumulationMode.Disabled
                if le or se:
                    le, lx = vnb.resolve_signal_conflict_nb(pos, le, lx, Direction.LongOnly, ConflictMode.Ignore)
                    se, sx = vnb.resolve_signal_conflict_nb(pos, se, sx, Direction.ShortOnly, ConflictMode.Ignore)
                    le, se = vnb.resolve_dir_conflict_nb(pos, le, se, DirectionConflictMode.Ignore)
                    le, lx, se, sx, acc = vnb.resolve_opposite_entry_nb(
                        pos, le, lx, se, sx, OppositeEntryMode.ReverseReduce, acc
                    )
                sz = _flex(size, size_mode, j, s, col)
                o_size = 0.0
                o_type = size_type
                o_dir = Direction.Both
                if le or lx or se or sx:
                    o_size, o_type, o_dir = vnb.signals_to_size_nb(pos, le, lx, se, sx, sz, size_type, acc, val_price)
                o_price = px
                o_slip = col_slip

                # stops, unless a signal order already changes the position at this bar's open
                if has_stop and not (at_open and o_size != 0 and not np.isnan(o_size)):
                    c = close[i, s]
                    o = open_[i, s]
                    h = high[i, s]
                    lo = low[i, s]
                    if np.isnan(o):
                        o = c
                    if np.isnan(lo):
                        lo = min(o, c)
                    if np.isnan(h):
                        h = max(o, c)
                    stop_px = np.nan
                    if not np.isnan(sl_cur):
                        stop_px = vnb.get_stop_price_nb(pos, sl_price, sl_cur, o, lo, h, True)
                    if np.isnan(stop_px) and not np.isnan(tp_cur):
                        stop_px = vnb.get_stop_price_nb(pos, tp_price, tp_cur, o, lo, h, False)
                    if not np.isnan(sl_cur) and sl_trl:
                        if pos > 0 and h > sl_price:
                            sl_price = h
                        elif pos < 0 and lo < sl_price:
                            sl_price = lo
                    if not np.isnan(stop_px):
                        le, lx, se, sx, acc = vnb.generate_stop_signal_nb(
                            pos, StopExitMode.Close, AccumulationMode.Disabled
                        )
                        o_price, o_slip = vnb.resolve_stop_price_and_slippage_nb(
                            stop_px, px, c, col_slip, StopExitPrice.StopMarket
                        )
                        o_size, o_type, o_dir = vnb.signals_to_size_nb(
                            pos, le, lx, se, sx, sz, size_type, acc, val_price
                        )

                if o_size != 0:
                    if o_dir == Direction.ShortOnly:
                        o_size = -o_size  # as from_signals does before process_order_nb
                    order = vnb.order_nb(o_size, o_price, o_type, o_dir, col_fees, fixed_fees, o_slip, MIN_SIZE)
                    value_now = cash
                    if pos != 0:
                        value_now += pos * val_price
                    state = ProcessOrderState(cash, pos, debt, free_cash, val_price, value_now, 0, 0)
                    ex, res = vnb.execute_order_nb(state, order)
                    if res.status == OrderStatus.Filled:
                        r = rec_offsets[col] + n_rec
                        if r < rec_offsets[col + 1]:  # always (two orders per entry signal at most)
                            vnb.fill_order_record_nb(records[r], r, i, col, res)
                        n_rec += 1
                        cash = ex.cash
                        debt = ex.debt
                        free_cash = ex.free_cash
                        new_pos = ex.position
                        position = new_pos
                        if use_stops:
                            if new_pos == 0:
                                sl_price = np.nan
                                sl_cur = np.nan
                                sl_trl = False
                                tp_price = np.nan
                                tp_cur = np.nan
                            elif pos == 0 or np.sign(new_pos) != np.sign(pos):
                                sl_price = order.price  # stop_entry_price=Price
                                sl_cur = _flex(sl_stop, sl_mode, j, s, col)
                                sl_trl = sl_trail[col]
                                tp_price = order.price
                                tp_cur = _flex(tp_stop, tp_mode, j, s, col)

            # end of bar: value at the close
            c = close[i, s]
            if not np.isnan(c):
                last_close = c
            p = position
            v = cash + (p * last_close if p != 0 else 0.0)
            if p != 0:
                in_pos += 1
            if as_returns:
                ret = v / prev_value - 1.0
                out[col, i] = 0.0 if np.isnan(ret) else ret
                prev_value = v
            else:
                out[col, i] = v
        if n_rows > 0:
            final_value[col] = v
        rec_counts[col] = n_rec
        bars_in_position[col] = in_pos


@dataclass
class Sizing:
    """The pluggable sizing step: how large an entry is (vectorbt's ``size``/``size_type``).

    ``size`` is read on the signal bar: a scalar ``(1, 1)``, per symbol ``(T, S)``, per column ``(T, N)`` or per
    column ``(1, N)`` (``mode``).  The default, :func:`all_in`, buys with all cash (``size=inf``, amount).
    A reversal or exit always closes the whole position (vectorbt's signal semantics)."""

    size: np.ndarray
    mode: int = SCALAR
    size_type: int = SizeType.Amount


def all_in() -> Sizing:
    return Sizing(np.full((1, 1), np.inf))


@dataclass
class EngineResult:
    """What :func:`simulate` returns: per-column arrays and vectorbt order records."""

    out: np.ndarray  # (T, N) daily returns (or values)
    final_value: np.ndarray  # (N,)
    exposure: np.ndarray  # (N,) share of bars with a position
    records: np.ndarray  # vectorbt order records (order_dt), by column then bar
    n_cols: int


def _param(v: Any, n_cols: int, n_units: int) -> tuple[np.ndarray, int]:
    """A cost/stop as (array, mode): a scalar, one value per combination ``(1, C*S)``, or per bar ``(T, N)``."""
    a = np.asarray(np.nan if v is None else v, dtype=np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1), SCALAR
    if a.shape[0] == 1:
        return np.ascontiguousarray(np.broadcast_to(a, (1, n_cols))), PER_COLUMN
    return np.ascontiguousarray(a), PER_COLUMN_BAR


def _per_column(v: Any, n_cols: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.float64).reshape(1, -1), (1, n_cols))[0])


def _flag(a: np.ndarray | None) -> np.ndarray:
    return np.zeros((0, 0), dtype=np.bool_) if a is None else np.ascontiguousarray(a, dtype=np.bool_)


def _by_column(a: np.ndarray | None) -> np.ndarray:
    """A ``(T, N)`` signal array as the kernel reads it, ``(N, T)`` row-contiguous (free for a column-major
    array such as :func:`backtests.equity.strategies.base.cross_signals` returns; one copy otherwise)."""
    return np.zeros((0, 0), dtype=np.bool_) if a is None else np.ascontiguousarray(np.asarray(a, dtype=np.bool_).T)


def simulate(
    *,
    close: np.ndarray,
    price: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    signals_at_open: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    col_sym: np.ndarray,
    lag: int,
    fees: Any,
    slippage: Any,
    fixed_fees: float,
    init_cash: float,
    short_entries: np.ndarray | None = None,
    short_exits: np.ndarray | None = None,
    entry_ok: np.ndarray | None = None,
    force_exit: np.ndarray | None = None,
    sl_stop: Any = None,
    sl_trail: Any = False,
    tp_stop: Any = None,
    sizing: Sizing | None = None,
    as_returns: bool = True,
    threads: int | None = None,
) -> EngineResult:
    """Simulate every column (see the module docstring for the layout).

    ``fees``/``slippage``: scalar or one value per column; ``sl_stop``: scalar, ``(1, N)`` or ``(T, N)`` read on
    the signal bar (``None``/NaN = no stop); ``sl_trail``: scalar or per column; ``tp_stop``: scalar or
    ``(1, N)``.  ``as_returns``: write daily returns (first bar against ``init_cash``) instead of values."""
    n_rows, n_cols = entries.shape
    sizing = sizing or all_in()
    sl, sl_mode = _param(sl_stop, n_cols, 1)
    tp, tp_mode = _param(tp_stop, n_cols, 1)
    use_stops = bool(np.any(~np.isnan(sl)) or np.any(~np.isnan(tp)))
    # all-in orders alternate open/close: at most two orders per entry signal (a reversal is one order)
    n_entry = np.count_nonzero(entries, axis=0)
    if short_entries is not None:
        n_entry = n_entry + np.count_nonzero(short_entries, axis=0)
    offsets = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(2 * n_entry + 1, out=offsets[1:])
    records = np.empty(int(offsets[-1]), dtype=order_dt)
    counts = np.zeros(n_cols, dtype=np.int64)
    out = np.empty((n_rows, n_cols), dtype=np.float64, order="F")  # column-contiguous for the kernel and metrics
    final = np.empty(n_cols, dtype=np.float64)
    in_pos = np.zeros(n_cols, dtype=np.int64)
    f64 = np.float64
    old_threads = numba.get_num_threads()
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    try:
        simulate_nb(
            np.ascontiguousarray(close, dtype=f64),
            np.ascontiguousarray(price, dtype=f64),
            np.ascontiguousarray(open_, dtype=f64),
            np.ascontiguousarray(high, dtype=f64),
            np.ascontiguousarray(low, dtype=f64),
            np.ascontiguousarray(signals_at_open, dtype=np.bool_),
            _by_column(entries),
            _by_column(exits),
            _by_column(short_entries),
            _by_column(short_exits),
            _flag(entry_ok),
            _flag(force_exit),
            np.ascontiguousarray(col_sym, dtype=np.int64),
            int(lag),
            _per_column(fees, n_cols),
            _per_column(slippage, n_cols),
            float(fixed_fees),
            float(init_cash),
            np.ascontiguousarray(sizing.size, dtype=f64),
            int(sizing.mode),
            int(sizing.size_type),
            sl,
            sl_mode,
            np.ascontiguousarray(np.broadcast_to(np.asarray(sl_trail, dtype=np.bool_).reshape(1, -1), (1, n_cols))[0]),
            tp,
            tp_mode,
            use_stops,
            offsets,
            records,
            counts,
            out.T,
            as_returns,
            final,
            in_pos,
        )
    finally:
        numba.set_num_threads(old_threads)
    if np.any(counts > np.diff(offsets)):  # pragma: no cover - would be a bug in the capacity bound
        raise RuntimeError("engine: more orders than the record capacity")
    keep = np.zeros(len(records), dtype=bool)
    starts = offsets[:-1]
    idx = np.repeat(starts, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    keep[idx] = True
    recs = records[keep]
    recs["id"] = np.arange(len(recs))
    return EngineResult(out, final, in_pos / max(n_rows, 1), recs, n_cols)


def trade_records(result: EngineResult, last_close: np.ndarray) -> np.ndarray:
    """vectorbt's exit trades of every column (an open trade is valued at ``last_close[col]``)."""
    from vectorbt.records.nb import col_map_nb

    col_map = col_map_nb(result.records["col"], result.n_cols)
    return vnb.get_exit_trades_nb(result.records, np.ascontiguousarray(last_close, dtype=np.float64).reshape(1, -1), col_map)


def portfolio(result: EngineResult, close: np.ndarray, index: Any, init_cash: float) -> Any:
    """A ``vectorbt.Portfolio`` over ``close`` ``(T, N)`` from the simulation's order records (trades, plots)."""
    import pandas as pd
    import vectorbt as vbt
    from vectorbt.base.array_wrapper import ArrayWrapper
    from vectorbt.portfolio.enums import log_dt

    frame = pd.DataFrame(close, index=index)
    wrapper = ArrayWrapper.from_obj(frame, freq="1D")
    return vbt.Portfolio(
        wrapper, frame, result.records, np.empty(0, dtype=log_dt), float(init_cash), cash_sharing=False
    )
