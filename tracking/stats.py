"""Out-of-sample performance statistics a promotion gate judges (pure numpy/scipy).

Names of the metrics every strategy/model run logs for the gate are the ``OOS_*`` constants.  The formulas
are :mod:`quantlake.stats` (Sharpe ratios annualized with :data:`PERIODS_PER_YEAR`, drawdowns, the deflated
Sharpe ratio and its skewness/kurtosis convention); this module builds the gate's return series from
positions or trades and names the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from quantlake import stats as qstats
from quantlake.calendars import TRADING_DAYS_PER_YEAR

PERIODS_PER_YEAR = TRADING_DAYS_PER_YEAR

OOS_SHARPE = "oos_sharpe"  # annualized Sharpe ratio of out-of-sample strategy returns
OOS_MAX_DRAWDOWN = "oos_max_drawdown"  # worst peak-to-trough loss, a negative fraction (-0.2 = -20 %)
OOS_TRADES = "oos_trades"  # number of position changes out of sample
OOS_DSR = "oos_dsr"  # deflated Sharpe ratio: P(true Sharpe > 0 | number of trials), in [0, 1]
OOS_N_OBS = "oos_n_obs"  # out-of-sample periods
OOS_TOTAL_RETURN = "oos_total_return"
N_TRIALS = "n_trials"  # configurations tried before picking this one (deflates the Sharpe ratio)


def strategy_returns(
    positions: pd.DataFrame, asset_returns: pd.DataFrame, cost_bps: float = 0.0
) -> pd.Series:
    """Daily returns of an equal-weight book: ``positions`` (date × symbol, in [-1, 1], decided at the
    close of the index date) earn the matching ``asset_returns`` (already aligned to the holding period)
    minus ``cost_bps`` per unit of position change."""
    pos, ret = positions.align(asset_returns, join="inner")
    pos = pos.fillna(0.0)
    gross = (pos * ret.fillna(0.0)).mean(axis=1)
    turnover = pos.diff().abs().fillna(pos.abs()).mean(axis=1)
    return (gross - turnover * cost_bps / 1e4).rename("strategy_return")


def count_trades(positions: pd.DataFrame) -> int:
    """Position changes over all symbols (entering from flat counts as one)."""
    pos = positions.fillna(0.0)
    return int((pos.diff().fillna(pos) != 0).to_numpy().sum())


def oos_metrics(
    positions: pd.DataFrame,
    asset_returns: pd.DataFrame,
    cost_bps: float = 0.0,
    n_trials: int = 1,
    trial_sharpes: Sequence[float] | None = None,
) -> dict[str, float]:
    """The gate's metrics (``OOS_*``) for out-of-sample positions (``trial_sharpes``: the trials' annualized
    Sharpe ratios, which set the deflation threshold)."""
    r = strategy_returns(positions, asset_returns, cost_bps)
    return {
        OOS_SHARPE: float(qstats.sharpe_ratio(r, PERIODS_PER_YEAR)),
        OOS_MAX_DRAWDOWN: float(qstats.max_drawdown(r)),
        OOS_TRADES: float(count_trades(positions)),
        OOS_DSR: float(qstats.deflated_sharpe_ratio(r, n_trials, trial_sharpes, PERIODS_PER_YEAR)),
        OOS_N_OBS: float(r.size),
        OOS_TOTAL_RETURN: float(qstats.total_return(r)),
        N_TRIALS: float(n_trials),
    }


def trade_metrics(
    taken: np.ndarray,
    trade_returns: np.ndarray,
    exit_dates: pd.Series,
    calendar: pd.DatetimeIndex,
    n_trials: int = 1,
) -> dict[str, float]:
    """The gate's metrics for a *trade filter*: of a backtest's trades, those with ``taken`` true are kept.

    Each kept trade's return (its P&L over the account's equity at entry, fees included) is booked on its
    exit date; ``calendar`` (the trading days of the out-of-sample span) gets 0 on the other days, so Sharpe
    ratio, drawdown and deflated Sharpe are on a daily series like :func:`oos_metrics`.  ``oos_trades`` is the
    number of trades kept."""
    keep = np.asarray(taken, dtype=bool)
    r = trade_return_series(keep, trade_returns, exit_dates, calendar)
    return {
        OOS_SHARPE: float(qstats.sharpe_ratio(r, PERIODS_PER_YEAR)),
        OOS_MAX_DRAWDOWN: float(qstats.max_drawdown(r)),
        OOS_TRADES: float(keep.sum()),
        OOS_DSR: float(qstats.deflated_sharpe_ratio(r, n_trials, None, PERIODS_PER_YEAR)),
        OOS_N_OBS: float(r.size),
        OOS_TOTAL_RETURN: float(qstats.total_return(r)),
        N_TRIALS: float(n_trials),
    }


def trade_return_series(
    taken: np.ndarray, trade_returns: np.ndarray, exit_dates: pd.Series, calendar: pd.DatetimeIndex
) -> pd.Series:
    """Daily returns of a trade filter: kept trades' returns summed on their exit dates, 0 on the other
    days of ``calendar`` (see :func:`trade_metrics`)."""
    keep = np.asarray(taken, dtype=bool)
    booked = (
        pd.Series(np.asarray(trade_returns, dtype=float)[keep], index=pd.DatetimeIndex(exit_dates[keep]))
        .groupby(level=0)
        .sum()
    )
    days = calendar.union(booked.index)
    return booked.reindex(days, fill_value=0.0).rename("strategy_return")
