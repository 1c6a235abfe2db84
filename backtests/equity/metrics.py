"""Metrics per column of a vectorbt portfolio and of return matrices, with vectorbt's own kernels.

The portfolio's value is rebuilt from its order records with ``vectorbt.portfolio.dispatch`` (the engine
behind ``Portfolio.value``), called on plain arrays: pandas 3 copies every array vectorbt wraps, which made
the accessor path 3× slower than the simulation itself.  The ratios are :mod:`quantlake.stats` column-wise
(the one implementation; its conventions: 252 bars a year, risk-free 0, ``max_drawdown`` negative, Sharpe and
Sortino 0 for a flat column, Sortino NaN without losses, Calmar NaN without a drawdown).  ``var_95`` is
vectorbt's 5 % quantile of daily returns (negative).  Each column is measured over its symbol's own life
(rows before a symbol's first bar do not dilute its Sharpe or its annualized return).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from quantlake import stats as qstats
from quantlake.calendars import TRADING_DAYS_PER_YEAR

ANN_FACTOR = float(TRADING_DAYS_PER_YEAR)
RETURN_METRICS = (
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "volatility",
    "var_95",
)
TRADE_SUMS = (
    "n_trades",
    "n_closed",
    "n_wins",
    "n_losses",
    "gross_profit",
    "gross_loss",
    "sum_win_ret",
    "sum_loss_ret",
)


def returns_metrics(returns: np.ndarray, ann_factor: float = ANN_FACTOR) -> dict[str, np.ndarray]:
    """Return-based metrics of each column of ``returns`` (``(T, K)``, no NaN): :mod:`quantlake.stats`
    column-wise, and vectorbt's 5 % quantile for ``var_95``."""
    from vectorbt.returns import dispatch as rd

    r = np.ascontiguousarray(returns, dtype=np.float64)
    if r.shape[0] < 2:
        return {m: np.full(r.shape[1], np.nan) for m in RETURN_METRICS}
    return {
        "total_return": qstats.total_return(r),
        "annualized_return": qstats.annualized_return(r, ann_factor),
        "sharpe": qstats.sharpe_ratio(r, ann_factor),
        "sortino": qstats.sortino_ratio(r, ann_factor),
        "calmar": qstats.calmar_ratio(r, ann_factor),
        "max_drawdown": qstats.max_drawdown(r),
        "volatility": qstats.annualized_volatility(r, ann_factor),
        "var_95": rd.value_at_risk(r, 0.05),
    }


def returns_table(returns: pd.DataFrame, ann_factor: float = ANN_FACTOR) -> pd.DataFrame:
    """:func:`returns_metrics` of a frame (rows where every column is NaN are dropped, other NaN → 0)."""
    r = returns.dropna(how="all")
    out = returns_metrics(r.fillna(0.0).to_numpy(), ann_factor)
    return pd.DataFrame(out, index=returns.columns)


def value_from_orders(pf: Any, close: np.ndarray, init_cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column portfolio value and position size ``(T, N)`` from the order records (as ``pf.value()``
    and ``pf.assets()``, without the pandas wrapping). ``close`` must be forward-filled."""
    from vectorbt.portfolio import dispatch as pdp

    shape = pf.wrapper.shape_2d
    orders = pf.orders.values
    col_map = pf.orders.col_mapper.col_map
    assets = pdp.assets(pdp.asset_flow(shape, orders, col_map, 2))
    cash = pdp.cash(pdp.cash_flow(shape, orders, col_map, False), np.full(shape[1], float(init_cash)))
    value = pdp.value(cash, pdp.asset_value(np.where(assets == 0, 0.0, close), assets))
    return value, assets


def trade_sums(pf: Any, n_units: int, unit_of_col: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per unit (column, or group via ``unit_of_col``): counts and sums of vectorbt's exit trades."""
    rec = pf.trades.values  # exit trades (vectorbt's default trade type)
    units = rec["col"] if unit_of_col is None else unit_of_col[rec["col"]]
    closed = rec["status"] == 1
    win = closed & (rec["pnl"] > 0)
    loss = closed & (rec["pnl"] < 0)

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = None if weights is None else np.where(mask, weights, 0.0)
        return np.bincount(units, weights=w if w is not None else mask.astype(float), minlength=n_units)

    return {
        "n_trades": np.bincount(units, minlength=n_units).astype(float),
        "n_closed": count(closed),
        "n_wins": count(win),
        "n_losses": count(loss),
        "gross_profit": count(win, rec["pnl"]),
        "gross_loss": -count(loss, rec["pnl"]),
        "sum_win_ret": count(win, rec["return"]),
        "sum_loss_ret": count(loss, rec["return"]),
    }


def trade_metrics(sums: pd.DataFrame | dict[str, Any]) -> dict[str, np.ndarray]:
    """Win rate, average win/loss (trade returns), profit factor and trade count from :func:`trade_sums`."""
    s = {k: np.asarray(sums[k], dtype=float) for k in TRADE_SUMS}
    with np.errstate(invalid="ignore", divide="ignore"):
        pf = np.where(s["gross_loss"] > 0, s["gross_profit"] / s["gross_loss"], np.nan)
        pf = np.where((s["gross_loss"] == 0) & (s["gross_profit"] > 0), np.inf, pf)
        return {
            "win_rate": np.where(s["n_closed"] > 0, s["n_wins"] / s["n_closed"], np.nan),
            "avg_win": np.where(s["n_wins"] > 0, s["sum_win_ret"] / s["n_wins"], np.nan),
            "avg_loss": np.where(s["n_losses"] > 0, s["sum_loss_ret"] / s["n_losses"], np.nan),
            "profit_factor": pf,
            "trades": s["n_trades"],
        }


def unit_metrics(
    value: np.ndarray,
    in_position: np.ndarray,
    alive: np.ndarray,
    init_cash: float,
    sums: dict[str, np.ndarray],
    unit_rows: np.ndarray,
    ann_factor: float = ANN_FACTOR,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Metrics per unit (column of ``value``) over its own life.

    ``alive``: ``(T, U)`` rows where the unit's instrument has data; ``unit_rows[u]`` groups units that
    share ``alive`` (one symbol across combinations), so each group is measured in one vectorized call.
    Returns the table and the daily returns ``(T, U)`` with NaN outside each unit's life."""
    n_rows, n_units = value.shape
    rets = np.full((n_rows, n_units), np.nan)
    prev = np.vstack([np.full((1, n_units), float(init_cash)), value[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = value / prev - 1.0
    out = {m: np.full(n_units, np.nan) for m in RETURN_METRICS}
    out["exposure"] = np.full(n_units, np.nan)
    out["final_value"] = value[-1].astype(float)
    for g in np.unique(unit_rows):  # one group per symbol (or pair): rows differ between groups
        cols = np.flatnonzero(unit_rows == g)
        rows = np.flatnonzero(alive[:, cols[0]])
        if rows.size == 0:
            continue
        a, b = rows[0], rows[-1] + 1
        r = np.ascontiguousarray(raw[a:b][:, cols])
        r = np.nan_to_num(r, nan=0.0)
        rets[a:b, cols] = r
        for k, v in returns_metrics(r, ann_factor).items():
            out[k][cols] = v
        out["exposure"][cols] = in_position[a:b][:, cols].mean(axis=0)
    out.update(trade_metrics(sums))
    table = pd.DataFrame(out)
    for k, v in sums.items():
        table[k] = v
    return table, rets
