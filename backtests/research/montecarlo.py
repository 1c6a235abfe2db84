"""Monte Carlo of a strategy's trades: bootstrap, order shuffling and a parametric (normal) model.

Each path applies a sequence of trade returns to the account one after another, each trade risking
``fraction`` of the equity at that point: ``E_k = E_{k-1} (1 + fraction r_k)``, ``E_0 = 1``.  ``bootstrap``
draws the trades with replacement, ``shuffle`` permutes them (same final equity, different drawdowns),
``parametric`` draws from a normal distribution with the trades' mean and standard deviation (floored at a
total loss).  Reported per method: quantiles of final equity and of maximum drawdown, the probability of
ending below the start, and the risk of ruin (equity touching ``ruin_level`` at any point).

Random streams: each method draws from its own generator, seeded by ``(seed, method number)`` through
:class:`numpy.random.SeedSequence` (the number is the method's fixed place in
:data:`~backtests.research.specs.MC_METHODS`, not its place in the config's list), so a method's result depends
only on the trades, the seed and its own settings — listing ``[shuffle, bootstrap]`` or ``[bootstrap]`` gives
the bootstrap the same paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtests.research.specs import MC_METHODS, MonteCarloSpec
from quantlake import stats as qstats
from quantlake.errors import UserInputError

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def draw(trades: np.ndarray, method: str, n_sims: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_sims, n_trades)`` trade returns for ``method``."""
    n = len(trades)
    if method == "bootstrap":
        return trades[rng.integers(0, n, size=(n_sims, n))]
    if method == "shuffle":
        return rng.permuted(np.broadcast_to(trades, (n_sims, n)).copy(), axis=1)
    if method == "parametric":
        sd = trades.std(ddof=1) if n > 1 else 0.0
        return np.maximum(rng.normal(trades.mean(), sd, size=(n_sims, n)), -1.0)
    raise ValueError(f"unknown Monte Carlo method {method!r}")


def equity_paths(draws: np.ndarray, fraction: float) -> np.ndarray:
    """``(n_sims, n_trades + 1)`` equity starting at 1."""
    growth = np.maximum(1.0 + fraction * draws, 0.0)
    eq = np.cumprod(growth, axis=1)
    return np.hstack([np.ones((draws.shape[0], 1)), eq])


def max_drawdowns(paths: np.ndarray) -> np.ndarray:
    """Per path: the largest fall from a running peak, as a negative fraction."""
    return np.atleast_1d(qstats.max_drawdown_of_equity(np.asarray(paths, dtype=float).T))


def method_rng(seed: int, method: str) -> np.random.Generator:
    """The generator of ``method``: independent of the other methods and of the order they are listed in."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(MC_METHODS.index(method),)))


@dataclass
class MonteCarloResult:
    summary: pd.DataFrame  # one row per method
    bands: dict[str, pd.DataFrame]  # method -> (trade number × quantile) equity bands
    observed: dict[str, float]  # the actual trade sequence
    n_trades: int
    fraction: float

    def metrics(self) -> dict[str, float]:
        """Flat figures for MLflow per method (prefix ``mc.<method>.``)."""
        keys = ("final_p05", "final_p50", "final_p95", "mdd_p05", "mdd_p50", "risk_of_ruin", "prob_loss")
        return {f"mc.{method}.{k}": float(row[k]) for method, row in self.summary.iterrows() for k in keys}


def monte_carlo(trade_returns: np.ndarray, spec: MonteCarloSpec, fraction: float) -> MonteCarloResult:
    trades = np.asarray(trade_returns, dtype=float)
    trades = trades[np.isfinite(trades)]
    if len(trades) < 2:
        raise UserInputError(
            f"montecarlo: the selected combination has {len(trades)} closed trade(s); need 2+"
        )
    rows: list[dict[str, object]] = []
    bands: dict[str, pd.DataFrame] = {}
    for method in spec.methods:
        paths = equity_paths(draw(trades, method, spec.n_sims, method_rng(spec.seed, method)), fraction)
        final, mdd = paths[:, -1], max_drawdowns(paths)
        q_final, q_mdd = np.quantile(final, QUANTILES), np.quantile(mdd, QUANTILES)
        rows.append(
            {
                "method": method,
                **{f"final_p{int(q * 100):02d}": v for q, v in zip(QUANTILES, q_final, strict=True)},
                "final_mean": float(final.mean()),
                **{f"mdd_p{int(q * 100):02d}": v for q, v in zip(QUANTILES, q_mdd, strict=True)},
                "prob_loss": float(np.mean(final < 1.0)),
                "risk_of_ruin": float(np.mean(paths.min(axis=1) <= spec.ruin_level)),
            }
        )
        bands[method] = pd.DataFrame(
            np.quantile(paths, QUANTILES, axis=0).T, columns=[f"p{int(q * 100):02d}" for q in QUANTILES]
        )
        bands[method].index.name = "trade"
    actual = equity_paths(trades[None, :], fraction)
    observed = {"final": float(actual[0, -1]), "max_drawdown": float(max_drawdowns(actual)[0])}
    return MonteCarloResult(pd.DataFrame(rows).set_index("method"), bands, observed, len(trades), fraction)
