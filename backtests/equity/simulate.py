"""Run signals through vectorbt: one ``Portfolio.from_signals`` call for all (combination, symbol) columns
of a chunk, or one ``Portfolio.from_orders`` call for the two legs of every pair.

Execution (DESIGN §5): signals are shifted one bar and fill at that bar's open (``next_open``; close-only
symbols fall back to the close) or close (``next_close``), or fill on the signal bar's close (``close``).
Orders are all-in (``size=inf``: all cash, fractional shares) unless the config's ``sizing`` gives a
fraction of cash per entry (``size_type="percent"``), fees and slippage are fractions of the traded
value, stops are fractions of the entry bar's order price; a stop fills at the stop price (or the open when
the bar gaps through it) less slippage, and is checked from the bar after the entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtests.equity.config import COST_PARAMS, CostsConfig, ExecutionConfig
from backtests.equity.data import Bars
from backtests.equity.strategies.base import Signals


def shift(a: np.ndarray | None, fill: Any) -> np.ndarray | None:
    """``a`` moved down one row (row 0 = ``fill``)."""
    if a is None:
        return None
    if a.shape[0] == 1:  # a per-column constant
        return a
    out = np.empty_like(a)
    out[0] = fill
    out[1:] = a[:-1]
    return out


def fill_labels(bars: Bars, execution: ExecutionConfig) -> list[str]:
    """Per symbol: how it actually fills (``next_open`` falls back to ``next_close`` without opens)."""
    if execution.fill != "next_open":
        return [execution.fill] * len(bars.symbols)
    return ["next_open" if ok else "next_close" for ok in bars.has_ohlc]


def order_price(bars: Bars, execution: ExecutionConfig) -> np.ndarray:
    if execution.fill == "next_open":
        return np.where(bars.has_ohlc[None, :], bars.open, bars.close)
    return bars.close


def cost_arrays(combos: pd.DataFrame, costs: CostsConfig, n_units: int) -> dict[str, Any]:
    """Each cost/stop as a scalar, or ``(1, C * n_units)`` when it is swept."""
    out: dict[str, Any] = {}
    for name in COST_PARAMS:
        if name in combos.columns:
            out[name] = np.repeat(combos[name].to_numpy(dtype=float), n_units)[None, :]
        else:
            v = getattr(costs, name)
            out[name] = np.nan if v is None else float(v)
    return out


def _tile(a: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.tile(a, (1, n)))  # C order always: one numba specialization


def simulate_signals(
    bars: Bars,
    signals: Signals,
    combos: pd.DataFrame,
    costs: CostsConfig,
    execution: ExecutionConfig,
    size: np.ndarray | None = None,
) -> Any:
    """One vectorbt portfolio with ``C * S`` columns (column ``c * S + s``).  ``size``: (T, S) fraction of
    the column's cash an entry after bar t spends (:func:`risk.position_sizing.equity_fractions`; lagged like
    the signals); None = all in."""
    import vectorbt as vbt

    from backtests.equity.jit import enable_cache

    enable_cache()

    n_combos, n_sym = len(combos), len(bars.symbols)
    lag = execution.fill != "close"
    c = cost_arrays(combos, costs, n_sym)
    sl_stop, sl_trail = c["sl_stop"], np.asarray(False)
    if signals.sl_stop is not None:
        sl_stop = signals.sl_stop
        sl_trail = np.asarray(signals.sl_trail)
    elif not np.all(np.isnan(c["tsl_stop"])):
        sl_stop, sl_trail = c["tsl_stop"], np.asarray(True)
    sl_stop = np.asarray(sl_stop, dtype=float)
    use_stops = bool(np.any(~np.isnan(sl_stop)) or np.any(~np.isnan(np.asarray(c["tp_stop"], dtype=float))))

    def flex(v: Any, dtype: Any = float) -> np.ndarray:
        # every flexible argument as a 2-D array, so numba compiles (and caches) a single specialization
        a = np.asarray(v, dtype=dtype)
        return np.ascontiguousarray(a if a.ndim == 2 else np.broadcast_to(a, (1, 1)))

    no_bar = flex(np.nan)
    kwargs: dict[str, Any] = {
        "size": np.inf,
        "open": no_bar,
        "high": no_bar,
        "low": no_bar,
        "sl_stop": flex(np.nan),
        "sl_trail": flex(False, bool),
        "tp_stop": flex(np.nan),
        "short_entries": flex(False, bool),
        "short_exits": flex(False, bool),
    }
    if use_stops:
        kwargs.update(
            open=_tile(bars.open, n_combos),
            high=_tile(bars.high, n_combos),
            low=_tile(bars.low, n_combos),
            sl_stop=flex(shift(sl_stop, np.nan) if (lag and sl_stop.ndim == 2) else sl_stop),
            sl_trail=flex(sl_trail, bool),
            tp_stop=flex(c["tp_stop"]),
        )
    if size is not None:  # a fraction of the column's cash per entry, known at the signal's close
        lagged = shift(size, np.nan) if lag else size
        kwargs.update(size=_tile(np.asarray(lagged, dtype=float), n_combos), size_type="percent")
    if signals.has_shorts:
        kwargs.update(short_entries=shift(signals.short_entries, False) if lag else signals.short_entries)
        kwargs.update(short_exits=shift(signals.short_exits, False) if lag else signals.short_exits)
    return vbt.Portfolio.from_signals(
        _tile(bars.close, n_combos),
        shift(signals.entries, False) if lag else signals.entries,
        shift(signals.exits, False) if lag else signals.exits,
        price=_tile(order_price(bars, execution), n_combos),
        fees=flex(c["fees"]),
        fixed_fees=flex(costs.fixed_fees),
        slippage=flex(c["slippage"]),
        init_cash=execution.init_cash,
        use_stops=use_stops,
        stop_entry_price="price",
        stop_exit_price="stopmarket",
        freq="1D",
        **kwargs,
    )


def simulate_pairs(
    y: Bars,
    x: Bars,
    w_y: np.ndarray,
    w_x: np.ndarray,
    combos: pd.DataFrame,
    costs: CostsConfig,
    execution: ExecutionConfig,
) -> Any:
    """One vectorbt portfolio: columns ``[Y_0, X_0, Y_1, X_1, ...]`` (unit k = combination × pair), grouped
    by unit with shared cash; orders are target percentages of the unit's value."""
    import vectorbt as vbt

    n_units = w_y.shape[1]
    n_pairs = len(y.symbols)
    n_combos = n_units // n_pairs

    def interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
        out[:, 0::2], out[:, 1::2] = a, b
        return out

    lag = execution.fill != "close"
    size = interleave(w_y, w_x)
    if lag:
        size = shift(size, np.nan)  # type: ignore[assignment]
    close = interleave(_tile(y.close, n_combos), _tile(x.close, n_combos))
    price = interleave(_tile(order_price(y, execution), n_combos), _tile(order_price(x, execution), n_combos))
    c = cost_arrays(combos, costs, n_pairs)
    fees = np.repeat(c["fees"], 2, axis=1) if isinstance(c["fees"], np.ndarray) else c["fees"]
    slip = np.repeat(c["slippage"], 2, axis=1) if isinstance(c["slippage"], np.ndarray) else c["slippage"]
    return vbt.Portfolio.from_orders(
        close,
        size=size,
        size_type="targetpercent",
        price=price,
        fees=fees,
        fixed_fees=costs.fixed_fees,
        slippage=slip,
        init_cash=execution.init_cash,
        group_by=np.repeat(np.arange(n_units), 2),
        cash_sharing=True,
        call_seq="auto",
        freq="1D",
    )
