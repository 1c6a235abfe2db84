"""Execution rules shared by the engines, and the pairs simulation (one ``Portfolio.from_orders`` call for
the two legs of every pair).  Single-symbol strategies run in :mod:`backtests.equity.engine`.

Execution (DESIGN §5): signals are shifted one bar and fill at that bar's open (``next_open``; close-only
symbols fall back to the close) or close (``next_close``), or fill on the signal bar's close (``close``).
Orders are all-in (``size=inf``: all cash, fractional shares), fees and slippage are fractions of the traded
value, stops are fractions of the entry bar's order price; a stop fills at the stop price (or the open when
the bar gaps through it) less slippage, and is checked from the bar after the entry.  A signal order that
fills at a bar's open comes first: that bar's stops are not checked (the position is already closed or
reversed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtests.equity.config import COST_PARAMS, CostsConfig, ExecutionConfig
from backtests.equity.data import Bars


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
