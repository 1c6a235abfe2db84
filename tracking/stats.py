"""Out-of-sample performance statistics a promotion gate judges (pure numpy/scipy).

Names of the metrics every strategy/model run logs for the gate are the ``OOS_*`` constants.  Sharpe
ratios are annualized with :data:`PERIODS_PER_YEAR`; the probabilistic and deflated Sharpe ratios (Bailey &
López de Prado, 2012/2014) work on the per-period Sharpe ratio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as st

PERIODS_PER_YEAR = 252
EULER_GAMMA = 0.5772156649015329
_TINY = 1e-12  # a standard deviation below this is a constant series (rounding noise)

OOS_SHARPE = "oos_sharpe"  # annualized Sharpe ratio of out-of-sample strategy returns
OOS_MAX_DRAWDOWN = "oos_max_drawdown"  # worst peak-to-trough loss, a negative fraction (-0.2 = -20 %)
OOS_TRADES = "oos_trades"  # number of position changes out of sample
OOS_DSR = "oos_dsr"  # deflated Sharpe ratio: P(true Sharpe > 0 | number of trials), in [0, 1]
OOS_N_OBS = "oos_n_obs"  # out-of-sample periods
OOS_TOTAL_RETURN = "oos_total_return"
N_TRIALS = "n_trials"  # configurations tried before picking this one (deflates the Sharpe ratio)


def sharpe_ratio(returns: np.ndarray | pd.Series, periods: int = PERIODS_PER_YEAR) -> float:
    """Annualized Sharpe ratio (zero risk-free rate); 0.0 for fewer than 2 returns or zero volatility."""
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return 0.0
    sd = r.std(ddof=1)
    return 0.0 if not np.isfinite(sd) or sd < _TINY else float(r.mean() / sd * math.sqrt(periods))


def max_drawdown(returns: np.ndarray | pd.Series) -> float:
    """Worst peak-to-trough decline of the compounded equity curve (<= 0)."""
    r = np.nan_to_num(np.asarray(returns, dtype=float))
    if r.size == 0:
        return 0.0
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return float(min(0.0, (equity / peak - 1.0).min()))


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P(true per-period Sharpe > ``sr_benchmark``) given an estimate ``sr`` from ``n_obs`` returns with
    the given skewness and (non-excess) kurtosis."""
    if n_obs < 2:
        return 0.0
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if denom <= 0:
        return 0.0
    return float(st.norm.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum per-period Sharpe ratio of ``n_trials`` unskilled trials (the deflation threshold)."""
    if n_trials <= 1 or sharpe_variance <= 0:
        return 0.0
    a = st.norm.ppf(1.0 - 1.0 / n_trials)
    b = st.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b))


def deflated_sharpe_ratio(
    returns: np.ndarray | pd.Series, n_trials: int = 1, trial_sharpes: Sequence[float] | None = None
) -> float:
    """P(true Sharpe > 0) after accounting for ``n_trials`` tried configurations.

    ``trial_sharpes`` are the per-period Sharpe ratios of those trials; without them their variance is
    taken as the estimator's own variance (a conservative default when trials are similar)."""
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    n = r.size
    if n < 3 or r.std(ddof=1) < _TINY:
        return 0.0
    sr = float(r.mean() / r.std(ddof=1))
    skew = float(st.skew(r, bias=False))
    kurt = float(st.kurtosis(r, fisher=False, bias=False))
    if trial_sharpes is not None and len(trial_sharpes) > 1:
        var = float(np.var(np.asarray(trial_sharpes, dtype=float), ddof=1))
    else:
        var = max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2, 1e-12) / (n - 1)
    threshold = expected_max_sharpe(max(int(n_trials), 1), var)
    return probabilistic_sharpe_ratio(sr, threshold, n, skew, kurt)


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
    """The gate's metrics (``OOS_*``) for out-of-sample positions."""
    r = strategy_returns(positions, asset_returns, cost_bps)
    return {
        OOS_SHARPE: sharpe_ratio(r),
        OOS_MAX_DRAWDOWN: max_drawdown(r),
        OOS_TRADES: float(count_trades(positions)),
        OOS_DSR: deflated_sharpe_ratio(r, n_trials, trial_sharpes),
        OOS_N_OBS: float(r.size),
        OOS_TOTAL_RETURN: float(np.prod(1.0 + r.to_numpy()) - 1.0),
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
        OOS_SHARPE: sharpe_ratio(r),
        OOS_MAX_DRAWDOWN: max_drawdown(r),
        OOS_TRADES: float(keep.sum()),
        OOS_DSR: deflated_sharpe_ratio(r, n_trials),
        OOS_N_OBS: float(r.size),
        OOS_TOTAL_RETURN: float(np.prod(1.0 + r.to_numpy()) - 1.0),
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
