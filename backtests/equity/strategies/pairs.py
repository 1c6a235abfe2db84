"""Pairs trading: Engle-Granger cointegration test (statsmodels) on a formation period, rolling OLS hedge
ratio, z-score of the residual, entry beyond ``±entry_z`` and exit back inside ``±exit_z``.

Everything at t uses data up to t only: the hedge ratio, mean and deviation come from the trailing
``lookback`` bars of log prices; trading starts after ``formation`` bars.  The position in the spread is
+1 (long Y, short β·X), -1 (short Y, long β·X) or 0; the two legs get ``1/(1+|β|)`` and ``β/(1+|β|)`` of the
pair's capital, set when the position changes and left alone while it lasts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from backtests.equity.strategies.base import strategy


class PairsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lookback: int = Field(default=60, ge=5, le=2000, description="bars for the hedge ratio and the z-score")
    entry_z: float = Field(default=2.0, gt=0, le=10)
    exit_z: float = Field(default=0.5, ge=0, le=10)
    formation: int = Field(
        default=252, ge=20, le=5000, description="bars of the cointegration test before trading"
    )
    max_pvalue: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="trade a pair only if its formation-period coint p-value is below this",
    )


def _constraint(combos: pd.DataFrame) -> np.ndarray:
    return (combos["exit_z"] < combos["entry_z"]).to_numpy()


def rolling_hedge(y: np.ndarray, x: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling OLS of log ``y`` on log ``x`` over ``lookback`` bars → (beta, z-score of today's residual)."""
    ly, lx = pd.DataFrame(np.log(y)), pd.DataFrame(np.log(x))
    roll_y, roll_x = ly.rolling(lookback, min_periods=lookback), lx.rolling(lookback, min_periods=lookback)
    my, mx = roll_y.mean(), roll_x.mean()
    vx = roll_x.var(ddof=0)
    vy = roll_y.var(ddof=0)
    cov = (ly * lx).rolling(lookback, min_periods=lookback).mean() - my * mx
    beta = cov / vx
    resid_var = (vy - beta * cov).clip(lower=0.0)
    z = (ly - beta * lx - (my - beta * mx)) / np.sqrt(resid_var)
    z = z.where(resid_var > 1e-14)
    return beta.to_numpy(copy=True), z.to_numpy(copy=True)


def _state(entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """1 from an entry until the next exit (exit wins on the same bar), else 0."""
    ev = np.where(exit_, 0.0, np.where(entry, 1.0, np.nan))
    return pd.DataFrame(ev).ffill().fillna(0.0).to_numpy()


def spread_position(z: np.ndarray, entry_z: float, exit_z: float, start: int) -> np.ndarray:
    """Position in the spread (+1 / -1 / 0) per bar, decided on z up to that bar; flat before ``start``."""
    prev = np.vstack([np.full((1, z.shape[1]), np.nan), z[:-1]])
    long_in = (z < -entry_z) & (prev >= -entry_z)
    long_out = (z > -exit_z) & (prev <= -exit_z)
    short_in = (z > entry_z) & (prev <= entry_z)
    short_out = (z < exit_z) & (prev >= exit_z)
    before = np.arange(z.shape[0])[:, None] < start
    for a in (long_in, short_in):
        a[before] = False
    pos = _state(long_in, long_out | np.isnan(z)) - _state(short_in, short_out | np.isnan(z))
    return pos


def coint_pvalue(y: np.ndarray, x: np.ndarray) -> float:
    """Engle-Granger two-step cointegration p-value of log prices (statsmodels ``coint``)."""
    from statsmodels.tsa.stattools import coint

    ok = ~(np.isnan(y) | np.isnan(x))
    if ok.sum() < 20:
        return float("nan")
    return float(coint(np.log(y[ok]), np.log(x[ok]))[1])


@strategy("pairs", PairsParams, _constraint, "exit_z < entry_z", pairs=True)
def pairs(y: np.ndarray, x: np.ndarray, combos: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Cointegrated pairs, rolling hedge ratio, z-score entry/exit.

    ``y``/``x``: closes ``(T, P)`` of the P pairs' legs.  Returns target weights of the Y and X legs
    ``(T, C * P)`` (NaN = no order on that bar) and a table of coint p-values per (combination, pair)."""
    n_rows, n_pairs = y.shape
    w_y = np.full((n_rows, len(combos) * n_pairs), np.nan)
    w_x = np.full_like(w_y, np.nan)
    alive = ~(np.isnan(y) | np.isnan(x))
    first = np.where(alive.any(axis=0), alive.argmax(axis=0), n_rows)
    hedges = {lb: rolling_hedge(y, x, int(lb)) for lb in combos["lookback"].unique()}
    pvals: dict[tuple[int, int], float] = {}
    rows = []
    for c, p in enumerate(combos.itertuples(index=False)):  # loop over combinations; rows are vectorized
        beta, z = hedges[p.lookback]
        sl = slice(c * n_pairs, (c + 1) * n_pairs)
        for j in range(n_pairs):
            key = (j, int(p.formation))
            if key not in pvals:
                f0 = int(first[j])
                pvals[key] = coint_pvalue(y[f0 : f0 + p.formation, j], x[f0 : f0 + p.formation, j])
            rows.append({"combo": c, "pair": j, "coint_pvalue": pvals[key]})
        pos = np.zeros((n_rows, n_pairs))
        for j in range(n_pairs):
            if p.max_pvalue is None or pvals[(j, int(p.formation))] <= p.max_pvalue:
                pos[:, j] = spread_position(z[:, [j]], p.entry_z, p.exit_z, int(first[j]) + int(p.formation))[
                    :, 0
                ]
        change = np.vstack([pos[:1] != 0, pos[1:] != pos[:-1]])
        gross = 1.0 + np.abs(beta)
        wy = np.where(change, pos / gross, np.nan)
        wx = np.where(change, -pos * beta / gross, np.nan)
        wx[change & (pos == 0)] = 0.0
        w_y[:, sl], w_x[:, sl] = wy, wx
    return w_y, w_x, pd.DataFrame(rows)
