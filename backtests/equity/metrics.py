"""Metrics per column of return matrices (the sweep engine's daily returns) and of vectorbt trade records.

The ratios are :mod:`quantlake.stats` column-wise on plain arrays (the one implementation; its conventions:
``periods_per_year`` bars a year (252 for daily NYSE bars), risk-free 0, ``max_drawdown`` negative, Sharpe and
Sortino 0 for a flat column, Sortino NaN without losses, Calmar NaN without a drawdown).  ``var_95`` is the
5 % quantile of daily returns (numpy's linear interpolation, as vectorbt's VaR; negative).  Each column is
measured over its symbol's own bars (the sweep simulates each calendar separately).  Trade statistics pool
vectorbt's exit-trade records.
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
    column-wise, and the 5 % quantile for ``var_95``."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 2:
        return {m: np.full(r.shape[1], np.nan) for m in RETURN_METRICS}
    out: dict[str, np.ndarray] = qstats.performance(r, ann_factor)
    out["var_95"] = qstats.quantile(r, 0.05)  # numpy's linear interpolation, as vectorbt's value_at_risk
    return {m: out[m] for m in RETURN_METRICS}


def returns_table(returns: pd.DataFrame, ann_factor: float = ANN_FACTOR) -> pd.DataFrame:
    """:func:`returns_metrics` of a frame (rows where every column is NaN are dropped, other NaN → 0)."""
    r = returns.dropna(how="all")
    out = returns_metrics(r.fillna(0.0).to_numpy(), ann_factor)
    return pd.DataFrame(out, index=returns.columns)


def simple_returns(value: np.ndarray, init_cash: float) -> np.ndarray:
    """Daily returns ``(T, N)`` of account values (the first row against ``init_cash``; 0/0 → 0)."""
    prev = np.vstack([np.full((1, value.shape[1]), float(init_cash)), value[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(value / prev - 1.0, nan=0.0)


def trade_sums(records: np.ndarray, n_units: int, unit_of_col: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per unit (column, or group via ``unit_of_col``): counts and sums of vectorbt exit-trade ``records``."""
    rec = records
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


def unit_table(
    returns: np.ndarray,
    exposure: np.ndarray,
    final_value: np.ndarray,
    sums: dict[str, np.ndarray],
    ann_factor: float = ANN_FACTOR,
) -> pd.DataFrame:
    """Metrics per unit (column of ``returns``, ``(T, U)`` over the units' own bars: every row is a bar of
    every unit), its exposure and final value, trade statistics and the trade sums they pool from."""
    out = returns_metrics(returns, ann_factor)
    out["exposure"] = np.asarray(exposure, dtype=float)
    out["final_value"] = np.asarray(final_value, dtype=float)
    out.update(trade_metrics(sums))
    table = pd.DataFrame(out)
    for k, v in sums.items():
        table[k] = v
    return table
