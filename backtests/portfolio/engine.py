"""The portfolio engine: assets' price series → target weights on trailing returns → one cash account
rebalanced on a calendar or when a weight leaves its band.

Why a loop and not one vectorbt call: whether the band is breached depends on the simulated holdings, so
the trading days are only known while simulating.  One pass over the bars with a few numpy operations per
day (thousands of bars in milliseconds); ``tests/test_portfolio.py`` checks it against vectorbt's grouped,
cash-sharing simulation (``Portfolio.from_orders(size_type="targetpercent", cash_sharing=True,
call_seq="auto")``) given the same target weights on the same days.

Rules (the ones vectorbt's grouped simulation follows, so both agree to the last bit):

* A target decided at the close of bar t trades at the close of bar t+1 (DESIGN §5).  The account value
  ``V`` is taken at that close before trading; asset i's order is ``w_i V / P_i − units_i`` units.
* Sells go first (the orders sorted by value, most negative first), then buys; fees and slippage are
  fractions of the traded value (slippage moves the price against the order); a buy the cash cannot pay for
  in full is filled in part.
* Weights: ``equal``, ``fixed``, or :mod:`risk.portfolio` (``min_variance``, ``max_sharpe``, ``risk_parity``,
  ``hrp``) on the daily returns of the last ``lookback`` bars up to the decision's close, within
  ``[lower, upper]``.  An optimizer that finds no solution (e.g. max Sharpe when nothing beats the risk-free
  rate) falls back to minimum variance and the run notes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtests.portfolio.config import PortfolioConfig, RebalanceConfig, WeightsConfig

EPS = 1e-12


@dataclass
class PortfolioResult:
    value: pd.Series  # account value at each close
    cash: pd.Series
    units: pd.DataFrame  # units held after each close's trades
    targets: pd.DataFrame  # target weights decided at each estimation date (index: decision date)
    trades: pd.DataFrame  # one row per executed order
    weights: pd.DataFrame  # actual weights at each close
    notes: list[str] = field(default_factory=list)

    @property
    def returns(self) -> pd.Series:
        return self.value.pct_change().fillna(0.0)


def decision_dates(index: pd.DatetimeIndex, cfg: RebalanceConfig, lookback: int) -> np.ndarray:
    """Positions of the bars whose close decides new targets: the last bar of each month/week/quarter
    (or every ``bars`` bars), once ``lookback`` returns exist."""
    n = len(index)
    first = lookback
    if cfg.every == "bars":
        return np.arange(first, n, cfg.bars)
    period = {"month": "M", "week": "W", "quarter": "Q"}[cfg.every]
    labels = index.to_period(period)
    last = np.flatnonzero(np.append(labels[1:] != labels[:-1], True))
    return last[last >= first]


def target_weights(window: pd.DataFrame, cfg: WeightsConfig) -> tuple[np.ndarray, str | None]:
    """Target weights from the window of daily returns (and a note when an optimizer fell back)."""
    from risk import portfolio as rp

    names = list(window.columns)
    if cfg.method == "equal":
        return np.full(len(names), 1.0 / len(names)), None
    if cfg.method == "fixed":
        assert cfg.fixed is not None
        return np.array([cfg.fixed[a] for a in names], dtype=float), None
    bounds = rp.WeightBounds(lower=cfg.lower, upper=cfg.upper)
    try:
        if cfg.method == "min_variance":
            w = rp.min_variance(window, bounds)
        elif cfg.method == "max_sharpe":
            w = rp.max_sharpe(window, cfg.risk_free, bounds)
        elif cfg.method == "risk_parity":
            w = rp.risk_parity(window, bounds)
        else:
            w = rp.hierarchical_risk_parity(window, bounds)
    except rp.InfeasiblePortfolioError as exc:
        w = rp.min_variance(window, bounds)
        return w.loc[names].to_numpy(dtype=float), f"{window.index[-1].date()}: {exc}; minimum variance instead"
    return w.loc[names].to_numpy(dtype=float), None


def rebalance(units: np.ndarray, cash: float, price: np.ndarray, target: np.ndarray, fees: float,
              slippage: float) -> tuple[np.ndarray, float, list[tuple[int, float, float, float]]]:
    """Trade ``units`` towards ``target`` weights at ``price``: sells first, then buys limited by cash.
    Returns the new units, cash, and the executed orders ``(asset, units, price, fees)``."""
    value = cash + float(units @ price)
    delta = target * value / price - units
    order_value = delta * price
    done: list[tuple[int, float, float, float]] = []
    units = units.copy()
    for i in np.argsort(order_value, kind="stable"):
        d = float(delta[i])
        if abs(d * price[i]) <= EPS * max(value, 1.0):
            continue
        if d < 0:
            px = price[i] * (1.0 - slippage)
            gross = -d * px
            fee = gross * fees
            cash += gross - fee
        else:
            px = price[i] * (1.0 + slippage)
            if d * px * (1.0 + fees) > cash:  # partial: what the cash pays for, fees included
                d = max(cash / (px * (1.0 + fees)), 0.0)
                if d <= 0:
                    continue
            fee = d * px * fees
            cash -= d * px + fee
        units[i] += d
        done.append((int(i), d, px, fee))
    return units, cash, done


def simulate(prices: pd.DataFrame, cfg: PortfolioConfig) -> PortfolioResult:
    """Run the portfolio over ``prices`` (dates × assets, no gaps)."""
    p = prices.to_numpy(dtype=float)
    if not np.isfinite(p).all() or (p <= 0).any():
        raise ValueError("portfolio prices must be positive and complete (align the assets first)")
    idx = pd.DatetimeIndex(prices.index)
    names = list(prices.columns)
    returns = prices.pct_change()
    n, k = p.shape
    decide = set(decision_dates(idx, cfg.rebalance, cfg.weights.lookback).tolist())
    units, cash = np.zeros(k), float(cfg.init_cash)
    target: np.ndarray | None = None
    pending: np.ndarray | None = None
    notes: list[str] = []
    values, cashes, held, actual = np.empty(n), np.empty(n), np.empty((n, k)), np.empty((n, k))
    targets: dict[pd.Timestamp, np.ndarray] = {}
    trades: list[dict[str, Any]] = []
    for t in range(n):
        if pending is not None:
            units, cash, done = rebalance(units, cash, p[t], pending, cfg.costs.fees, cfg.costs.slippage)
            trades += [{"date": idx[t], "asset": names[i], "units": u, "price": px, "fees": fee}
                       for i, u, px, fee in done]  # fmt: skip
            pending = None
        values[t] = cash + float(units @ p[t])
        cashes[t], held[t] = cash, units
        actual[t] = units * p[t] / values[t]
        if t in decide:
            window = returns.iloc[t - cfg.weights.lookback + 1 : t + 1]
            target, note = target_weights(window, cfg.weights)
            targets[idx[t]] = target
            if note:
                notes.append(note)
            if cfg.rebalance.mode == "calendar":
                pending = target
        if cfg.rebalance.mode == "band" and target is not None and t + 1 < n and pending is None:
            drift = float(np.max(np.abs(actual[t] - target)))
            if not units.any() or drift > cfg.rebalance.band:
                pending = target
    value = pd.Series(values, index=idx, name="value")
    return PortfolioResult(
        value=value, cash=pd.Series(cashes, index=idx, name="cash"), units=pd.DataFrame(held, index=idx, columns=names),
        targets=pd.DataFrame.from_dict(targets, orient="index", columns=names),
        trades=pd.DataFrame(trades, columns=["date", "asset", "units", "price", "fees"]),
        weights=pd.DataFrame(actual, index=idx, columns=names), notes=notes,
    )  # fmt: skip


def target_rows(result: PortfolioResult, index: pd.Index) -> pd.DataFrame:
    """The targets on the rows they traded (the bar after each decision that led to trades), NaN elsewhere:
    the ``size`` of vectorbt's ``targetpercent`` orders that reproduce the run."""
    traded = pd.DatetimeIndex(result.trades["date"].unique())
    out = pd.DataFrame(np.nan, index=index, columns=result.targets.columns)
    dates = pd.DatetimeIndex(index)
    for day in traded:
        pos = dates.get_loc(day)
        decided = result.targets.loc[result.targets.index < day]
        out.iloc[pos] = decided.iloc[-1].to_numpy()
    return out


__all__ = ["PortfolioResult", "decision_dates", "rebalance", "simulate", "target_rows", "target_weights"]
