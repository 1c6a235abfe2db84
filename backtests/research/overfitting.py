"""Overfitting statistics of a sweep: the deflated Sharpe ratio and the probability of backtest overfitting.

Hand-written (numpy/scipy) because no maintained library ships them: the few PyPI packages that do are
unreviewed single-author releases, and both statistics are short closed forms.  Checked in the tests against
the numerical example published with the DSR and against hand-built CSCV cases.

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
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float
    psr0: float  # probability that the true Sharpe ratio is above 0
    sharpe: float  # per period
    sr0: float  # per period: expected maximum Sharpe ratio of N unskilled trials
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float
    sharpe_variance: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


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
    r = np.asarray(returns, dtype=float)
    sd = r.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, r.mean(axis=0) / sd, 0.0)


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """PSR: probability that the true per-period Sharpe ratio exceeds ``sr_benchmark``."""
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if n_obs < 2 or not denom > 0:
        return float("nan")
    return float(stats.norm.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """SR₀: the expected maximum per-period Sharpe ratio of ``n_trials`` trials without skill."""
    if n_trials < 2 or not sharpe_variance > 0:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_from_stats(
    sharpe: float, sharpe_variance: float, n_trials: int, n_obs: int, skew: float, kurtosis: float
) -> DeflatedSharpe:
    sr0 = expected_max_sharpe(sharpe_variance, n_trials)
    return DeflatedSharpe(
        dsr=probabilistic_sharpe(sharpe, sr0, n_obs, skew, kurtosis),
        psr0=probabilistic_sharpe(sharpe, 0.0, n_obs, skew, kurtosis),
        sharpe=float(sharpe),
        sr0=sr0,
        n_trials=int(n_trials),
        n_obs=int(n_obs),
        skew=float(skew),
        kurtosis=float(kurtosis),
        sharpe_variance=float(sharpe_variance),
    )


def deflated_sharpe(returns: np.ndarray, selected: int) -> DeflatedSharpe:
    """DSR of trial ``selected`` among all trials (columns of the ``(T, N)`` return matrix)."""
    r = np.asarray(returns, dtype=float)
    srs = sharpe_ratio(r)
    chosen = r[:, selected]
    flat = chosen.std() == 0
    return deflated_sharpe_from_stats(
        sharpe=float(srs[selected]),
        sharpe_variance=float(np.var(srs, ddof=1)) if r.shape[1] > 1 else 0.0,
        n_trials=r.shape[1],
        n_obs=r.shape[0],
        skew=0.0 if flat else float(stats.skew(chosen)),
        kurtosis=3.0 if flat else float(stats.kurtosis(chosen, fisher=False)),
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
