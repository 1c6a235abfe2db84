"""A plain event-loop backtester for one long-only column: the independent check of the vectorbt simulation.

Hand-written on purpose: it is the second implementation the sweeps are checked against, so it shares no
code with vectorbt and is written for reading, not speed (one Python loop over bars).  It follows the rules
stated in :mod:`backtests.equity.simulate`:

* ``entries[t]`` / ``exits[t]`` are the signals *as traded on bar t* (already lagged by the caller) and fill
  at ``price[t]``; an entry and an exit on the same bar cancel; an entry while long or an exit while flat is
  ignored;
* a buy spends all cash, or the share ``f`` of it the sizing gives: ``size = (f cash - fixed_fees) / (price
  (1 + slippage) (1 + fees))``; a sell closes
  the whole position at ``price (1 - slippage)``; fees are ``fees × traded value + fixed_fees``;
* stops are fractions of the entry bar's order price (before slippage) and are checked from the bar after
  the entry: the stop-loss level is ``ref (1 - sl)``; if the bar opens at or below it the exit is at the
  open, else if the bar's range reaches it the exit is at the level.  Take-profit mirrors it above.  The
  stop-loss is checked before the take-profit; a trailing stop's reference is raised to the bar's high
  *after* the bar's check.
* which comes first on a bar: with ``signals_at_open`` (fill ``next_open``) a signal exit fills at the open,
  before the bar's range can reach a stop, so it wins and the stops are not checked; otherwise (signals
  fill at a close) a stop hit during the bar replaces the bar's signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtests.equity.config import CostsConfig
from backtests.equity.sweep import ChunkTask, Simulation, entry_sizes, simulate_chunk


@dataclass(frozen=True)
class RefTrade:
    entry_idx: int
    exit_idx: int | None  # None: still open at the end
    size: float
    entry_price: float  # fill price (with slippage)
    exit_price: float | None
    pnl: float | None


@dataclass(frozen=True)
class RefResult:
    trades: list[RefTrade]
    final_value: float
    value: np.ndarray


def _stop_fill(level: float, open_: float, low: float, high: float, below: bool) -> float | None:
    if below:
        if open_ <= level:
            return open_
        return level if low <= level <= high else None
    if level <= open_:
        return open_
    return level if low <= level <= high else None


def run_reference(
    close: np.ndarray,
    price: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    *,
    open_: np.ndarray | None = None,
    high: np.ndarray | None = None,
    low: np.ndarray | None = None,
    init_cash: float = 10_000.0,
    fees: float = 0.0,
    fixed_fees: float = 0.0,
    slippage: float = 0.0,
    sl_stop: float | np.ndarray = np.nan,
    sl_trail: bool = False,
    tp_stop: float = np.nan,
    size_fraction: float | np.ndarray = 1.0,
    signals_at_open: bool = False,
) -> RefResult:
    """Simulate one symbol (1-d arrays of equal length; ``sl_stop`` and ``size_fraction`` — the share of cash
    an entry spends — may be per bar, read on the entry bar)."""
    n = len(close)
    sl_arr = np.broadcast_to(np.asarray(sl_stop, dtype=float), (n,))
    frac_arr = np.broadcast_to(np.asarray(size_fraction, dtype=float), (n,))
    o = close if open_ is None else open_
    hi = close if high is None else high
    lo = close if low is None else low
    cash, shares = float(init_cash), 0.0
    trades: list[RefTrade] = []
    entry_i, entry_fill, entry_cost = -1, 0.0, 0.0
    ref_sl = ref_tp = np.nan
    cur_sl = np.nan
    value = np.empty(n)
    last_close = np.nan
    for t in range(n):
        if not np.isnan(close[t]):
            last_close = close[t]
        stop_price = None
        signal_exit = bool(exits[t]) and not bool(entries[t]) and shares > 0
        if shares > 0 and not np.isnan(close[t]) and not (signals_at_open and signal_exit):
            bar_o = o[t] if not np.isnan(o[t]) else close[t]
            bar_l = lo[t] if not np.isnan(lo[t]) else min(bar_o, close[t])
            bar_h = hi[t] if not np.isnan(hi[t]) else max(bar_o, close[t])
            if not np.isnan(cur_sl):
                stop_price = _stop_fill(ref_sl * (1 - cur_sl), bar_o, bar_l, bar_h, below=True)
            if stop_price is None and not np.isnan(tp_stop):
                stop_price = _stop_fill(ref_tp * (1 + tp_stop), bar_o, bar_l, bar_h, below=False)
            if not np.isnan(cur_sl) and sl_trail and bar_h > ref_sl:
                ref_sl = bar_h
        sell_at: float | None = None
        buy = False
        if stop_price is not None:
            sell_at = stop_price
        elif bool(entries[t]) != bool(exits[t]):  # both on one bar cancel
            if entries[t] and shares == 0:
                buy = True
            elif exits[t] and shares > 0:
                sell_at = price[t]
        if sell_at is not None:
            fill = sell_at * (1 - slippage)
            proceeds = shares * fill
            cash += proceeds - (proceeds * fees + fixed_fees)
            pnl = proceeds - (proceeds * fees + fixed_fees) - entry_cost
            trades.append(RefTrade(entry_i, t, shares, entry_fill, fill, pnl))
            shares = 0.0
            ref_sl = ref_tp = cur_sl = np.nan
        elif buy and not np.isnan(price[t]):
            fill = price[t] * (1 + slippage)
            spend = cash * frac_arr[t] if np.isfinite(frac_arr[t]) else 0.0
            budget = (spend - fixed_fees) / (1 + fees)
            if budget > 0:
                shares = budget / fill
                entry_cost = spend
                cash -= spend
                entry_i, entry_fill = t, fill
                ref_sl = ref_tp = price[t]
                cur_sl = sl_arr[t]
        value[t] = cash + (shares * last_close if shares else 0.0)
    if shares > 0:
        trades.append(RefTrade(entry_i, None, shares, entry_fill, None, None))
    return RefResult(trades, float(value[-1]), value)


# ------------------------------------------------------------------------------ check against vectorbt
def _cost(name: str, row: Any, costs: CostsConfig) -> float:
    v = row[name] if name in row.index else getattr(costs, name)  # swept costs are parameter columns
    return float("nan") if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def check_chunk(task: ChunkTask, sim: Simulation | None = None) -> pd.DataFrame:
    """Re-run every column of a (long-only) sweep chunk in :func:`run_reference` and compare with vectorbt.

    One row per (combination, symbol): trade counts of both, whether entry and exit bars agree, the largest
    relative difference of entry/exit prices and sizes, and both final values."""
    from backtests.equity.simulate import order_price, shift
    from backtests.equity.strategies import STRATEGIES

    sdef = STRATEGIES[task.kind]
    if sdef.pairs:
        raise ValueError("the reference backtester covers single-symbol strategies, not pairs")
    from backtests.equity.simulate import fill_labels

    sim = sim if sim is not None else simulate_chunk(task)
    n_c, n_s = len(task.combos), len(task.bars.symbols)
    at_open = [f == "next_open" for f in fill_labels(task.bars, task.execution)]
    sig = sdef.fn(task.bars, task.combos)
    if sig.has_shorts and bool(np.any(sig.short_entries)):
        raise ValueError("the reference backtester is long-only; this combination goes short")
    tile = None if task.entry_ok is None else np.tile(task.entry_ok, (1, n_c))
    sig = sig.gate(tile, None if task.force_exit is None else np.tile(task.force_exit, (1, n_c)))
    lag = task.execution.fill != "close"
    entries: np.ndarray = shift(sig.entries, False) if lag else sig.entries  # type: ignore[assignment]
    exits: np.ndarray = shift(sig.exits, False) if lag else sig.exits  # type: ignore[assignment]
    own_sl = None if sig.sl_stop is None else (shift(sig.sl_stop, np.nan) if lag else sig.sl_stop)
    trail_flags = np.broadcast_to(np.asarray(sig.sl_trail, dtype=bool).reshape(1, -1), (1, n_c * n_s))
    price = order_price(task.bars, task.execution)
    close = pd.DataFrame(task.bars.close).ffill().to_numpy()
    rec = sim.pf.trades.values
    sizes = entry_sizes(task)
    lagged_sizes = None if sizes is None else (shift(sizes, np.nan) if lag else sizes)
    rows = []
    for c in range(n_c):
        row = task.combos.iloc[c]
        for s in range(n_s):
            col = c * n_s + s
            sl, trail = _cost("sl_stop", row, task.costs), False
            tsl = _cost("tsl_stop", row, task.costs)
            if own_sl is not None:
                sl, trail = own_sl[:, col], bool(trail_flags[0, col])  # type: ignore[assignment]
            elif not np.isnan(tsl):
                sl, trail = tsl, True
            ref = run_reference(
                close[:, s],
                price[:, s],
                entries[:, col],
                exits[:, col],
                open_=task.bars.open[:, s],
                high=task.bars.high[:, s],
                low=task.bars.low[:, s],
                init_cash=task.execution.init_cash,
                fees=_cost("fees", row, task.costs),
                fixed_fees=task.costs.fixed_fees,
                slippage=_cost("slippage", row, task.costs),
                sl_stop=sl,
                sl_trail=trail,
                tp_stop=_cost("tp_stop", row, task.costs),
                size_fraction=1.0 if lagged_sizes is None else lagged_sizes[:, s],
                signals_at_open=at_open[s],
            )
            v = rec[rec["col"] == col]
            same_bars = len(v) == len(ref.trades) and all(
                int(a["entry_idx"]) == b.entry_idx
                and (b.exit_idx is None or (int(a["exit_idx"]) == b.exit_idx and a["status"] == 1))
                for a, b in zip(v, ref.trades, strict=False)
            )
            diff = 0.0
            if same_bars:
                for a, b in zip(v, ref.trades, strict=True):
                    diff = max(diff, abs(a["entry_price"] / b.entry_price - 1), abs(a["size"] / b.size - 1))
                    if b.exit_price is not None:
                        diff = max(diff, abs(a["exit_price"] / b.exit_price - 1))
            rows.append(
                {
                    "combo": int(task.combos.index[c]),
                    "unit": task.bars.symbols[s],
                    "trades_vectorbt": len(v),
                    "trades_reference": len(ref.trades),
                    "same_bars": same_bars,
                    "max_rel_diff": diff if same_bars else float("nan"),
                    "final_vectorbt": float(sim.final_value[col]),
                    "final_reference": ref.final_value,
                }
            )
    out = pd.DataFrame(rows)
    out["final_rel_diff"] = (out["final_vectorbt"] / out["final_reference"] - 1).abs()
    return out
