"""Overfitting statistics of a sweep: the deflated Sharpe ratio and the probability of backtest overfitting.

The Sharpe ratio, PSR and DSR formulas are :mod:`quantlake.stats` (the one implementation, with its
skewness/kurtosis convention); this module applies them to a sweep's trials.  PBO is hand-written
(numpy) because no maintained library ships it: the few PyPI packages that do are unreviewed single-author
releases, and it is a short procedure.  Checked in the tests against hand-built CSCV cases.

* Probabilistic Sharpe ratio (Bailey & López de Prado 2012)::

      PSR(SR*) = Φ( (SR − SR*) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 · SR²) )

  with SR the per-period (not annualized) Sharpe ratio of T returns, γ₃ their skewness and γ₄ their kurtosis
  (normal = 3).
* Deflated Sharpe ratio (Bailey & López de Prado 2014): PSR against the Sharpe ratio expected from the best
  of N independent trials with no skill::

      SR₀ = √V[SRₙ] · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))

  γ = 0.5772… (Euler–Mascheroni), V[SRₙ] the variance of the trials' per-period Sharpe ratios.
* PBO by combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu 2015): split the T
  rows of the (T × N trials) return matrix into S blocks; for each of the C(S, S/2) ways to pick half the
  blocks as in-sample, take the trial with the best in-sample Sharpe ratio and its relative rank ω among the
  N trials out-of-sample (rank / (N + 1), ties averaged); λ = ln(ω / (1 − ω)).  PBO is the share of splits
  with **λ ≤ 0**: the in-sample winner is at or below the out-of-sample median.

  Ties at the median (λ = 0 exactly: the winner's rank is (N + 1)/2, e.g. the middle of an odd number of
  trials, or every trial equal out of sample) count as overfit.  That is the paper's definition — PBO is
  ∫ f(λ) dλ over λ ∈ (−∞, 0], which includes the mass at 0 — and what the common implementations compute:
  R ``pbo`` (Matt Barry, ``phi <- sum(ifelse(lambda <= 0, 1, 0)) / ncol(CS)``) and Python ``pypbo``
  (``1.0 if lam <= 0``).  A selection that cannot be told apart from the median out of sample has shown no
  skill, so it must not lower the PBO.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import stats

from quantlake import stats as qstats
from quantlake.stats import DeflatedSharpe, deflated_sharpe_from_stats

__all__ = [
    "DeflatedSharpe",
    "PBOResult",
    "deflated_sharpe",
    "deflated_sharpe_from_stats",
    "expected_max_sharpe",
    "pbo_cscv",
    "probabilistic_sharpe",
    "sharpe_ratio",
]


@dataclass(frozen=True)
class PBOResult:
    pbo: float
    n_splits: int
    n_combinations: int
    n_trials: int
    logits: np.ndarray
    # mean out-of-sample Sharpe (per period) of the in-sample winner vs of all trials
    oos_sharpe_of_winner: float
    performance_degradation_slope: float

    def as_dict(self) -> dict[str, float]:
        return {
            "pbo": self.pbo,
            "n_splits": self.n_splits,
            "n_combinations": self.n_combinations,
            "n_trials": self.n_trials,
            "oos_sharpe_of_winner": self.oos_sharpe_of_winner,
            "performance_degradation_slope": self.performance_degradation_slope,
        }


def sharpe_ratio(returns: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio of each column (ddof = 1); 0 for a flat column."""
    return np.atleast_1d(qstats.sharpe_ratio(np.asarray(returns, dtype=float), periods_per_year=1))


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """PSR: probability that the true per-period Sharpe ratio exceeds ``sr_benchmark``."""
    return float(qstats.psr_from_moments(sr, sr_benchmark, n_obs, skew, kurtosis))


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """SR₀: the expected maximum per-period Sharpe ratio of ``n_trials`` trials without skill."""
    return qstats.expected_max_sharpe(n_trials, sharpe_variance)


def deflated_sharpe(returns: np.ndarray, selected: int) -> DeflatedSharpe:
    """DSR of trial ``selected`` among all trials (columns of the ``(T, N)`` return matrix)."""
    r = np.asarray(returns, dtype=float)
    srs = sharpe_ratio(r)
    m = qstats.moments(r[:, selected])
    return deflated_sharpe_from_stats(
        sharpe=float(srs[selected]),
        # over the sorted Sharpe ratios: the variance of a set of trials, the same in whatever order the trials
        # come (a reproduced sweep may expand its grid in another order; summation order moves the last bit)
        sharpe_variance=float(np.var(np.sort(srs), ddof=1)) if r.shape[1] > 1 else 0.0,
        n_trials=r.shape[1],
        n_obs=r.shape[0],
        skew=float(m.skew[0]),
        kurtosis=float(m.kurtosis[0]),
    )


def _block_sharpes(sums: np.ndarray, sq: np.ndarray, n: np.ndarray) -> np.ndarray:
    mean = sums / n[:, None]
    var = (sq - n[:, None] * mean**2) / (n[:, None] - 1)
    sd = np.sqrt(np.clip(var, 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, mean / sd, 0.0)


def pbo_cscv(returns: np.ndarray, n_splits: int = 16, max_combinations: int = 20_000) -> PBOResult:
    """PBO of choosing the best-Sharpe column of ``returns`` ``(T, N)`` by CSCV with ``n_splits`` blocks.

    Rows are cut into ``n_splits`` contiguous blocks of equal size (the last ``T mod S`` rows are dropped).
    All C(S, S/2) in-sample choices are used (only a seeded sample of ``max_combinations`` if more)."""
    r = np.asarray(returns, dtype=float)
    n_obs, n_trials = r.shape
    if n_splits % 2 or n_splits < 2:
        raise ValueError("n_splits must be an even number >= 2")
    if n_trials < 2 or n_obs < 2 * n_splits:
        return PBOResult(float("nan"), n_splits, 0, n_trials, np.array([]), float("nan"), float("nan"))
    size = n_obs // n_splits
    blocks = r[: size * n_splits].reshape(n_splits, size, n_trials)
    b_sum, b_sq = blocks.sum(axis=1), (blocks**2).sum(axis=1)  # (S, N)
    combos = list(itertools.combinations(range(n_splits), n_splits // 2))
    if len(combos) > max_combinations:
        rng = np.random.default_rng(0)
        combos = [combos[i] for i in sorted(rng.choice(len(combos), max_combinations, replace=False))]
    member = np.zeros((len(combos), n_splits))
    for i, c in enumerate(combos):
        member[i, list(c)] = 1.0
    logits = np.empty(len(combos))
    winner_is, winner_oos = np.empty(len(combos)), np.empty(len(combos))
    batch = max(1, 5_000_000 // n_trials)  # bounds memory to a few (batch × N) arrays
    for lo in range(0, len(combos), batch):
        m = member[lo : lo + batch]
        n_half = np.full(len(m), size * n_splits / 2)
        is_sr = _block_sharpes(m @ b_sum, m @ b_sq, n_half)
        oos_sr = _block_sharpes((1 - m) @ b_sum, (1 - m) @ b_sq, n_half)
        best = is_sr.argmax(axis=1)
        rows = np.arange(len(m))
        ranks = stats.rankdata(oos_sr, axis=1)  # 1 = worst, ties averaged
        omega = ranks[rows, best] / (n_trials + 1.0)
        logits[lo : lo + batch] = np.log(omega / (1.0 - omega))
        winner_is[lo : lo + batch] = is_sr[rows, best]
        winner_oos[lo : lo + batch] = oos_sr[rows, best]
    slope = float(np.polyfit(winner_is, winner_oos, 1)[0]) if np.ptp(winner_is) > 0 else float("nan")
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),  # ties at the median count (module doc)
        n_splits=n_splits,
        n_combinations=len(combos),
        n_trials=n_trials,
        logits=logits,
        oos_sharpe_of_winner=float(winner_oos.mean()),
        performance_degradation_slope=slope,
    )
