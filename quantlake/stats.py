"""Performance statistics of return series: the one implementation every part of quantlake calls.

Every function takes simple per-period returns as a 1-D sequence (list, numpy array, pandas Series) and
returns a ``float``, or a 2-D numpy array / DataFrame with **axis 0 = time** and returns one value per
column (a numpy array).  Non-finite entries (NaN, ±inf) are missing values: each column is measured over
its own finite entries (a symbol that starts later is not diluted by the rows before its first bar).
Drawdowns treat a missing return as no change.

Conventions (stated once, used everywhere):

* ``periods_per_year`` annualizes: 252 for daily NYSE bars (:data:`quantlake.calendars.TRADING_DAYS_PER_YEAR`).
  Risk-free rate 0 (subtract it from the returns first if you need excess returns).
* Sharpe ratio ``mean / std(ddof=1) · √periods_per_year``; Sortino ratio ``mean(r − mar) / DD · √ppy`` with
  the downside deviation ``DD = √mean(min(r − mar, 0)²)`` over *all* periods (Sortino & Price; the formula of
  empyrical, quantstats and vectorbt).  A series with zero volatility (or fewer than two returns) has Sharpe
  and Sortino 0, not ±inf; a Sortino ratio without any downside is NaN.
* Annualized return is geometric: ``(Π(1 + r))^(ppy / n) − 1``; annualized volatility
  ``std(ddof=1) · √ppy``.
* Drawdowns are measured on the compounded equity curve ``Π(1 + r)`` that *starts at 1 before the first
  return*, so a loss on the first period is a drawdown; they are negative fractions (−0.2 = −20 %).
* Skewness and kurtosis (PSR, DSR) are the **population moment estimators**: ``γ₃ = m₃ / m₂^1.5`` and
  ``γ₄ = m₄ / m₂²`` (not excess: a normal distribution has γ₄ = 3), i.e. ``scipy.stats.skew(x)`` and
  ``scipy.stats.kurtosis(x, fisher=False)`` with their default ``bias=True``, as in Bailey & López de
  Prado's papers.
* Probabilistic Sharpe ratio (Bailey & López de Prado 2012), per-period Sharpe ``SR`` of ``T`` returns::

      PSR(SR*) = Φ( (SR − SR*) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 · SR²) )

* Deflated Sharpe ratio (Bailey & López de Prado 2014): PSR against the expected maximum Sharpe ratio of
  ``N`` unskilled trials whose Sharpe ratios have variance ``V``::

      SR₀ = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))),   γ = 0.5772… (Euler–Mascheroni)

  PSR and DSR of a series with fewer than 3 returns or zero volatility are 0 (no evidence of skill); where
  the PSR denominator is not positive they are NaN.

Hand-written (numpy/scipy, and one numba pass per column in :mod:`quantlake.stats_kernels` for the sums,
products and drawdowns) rather than called from empyrical/quantstats/vectorbt: those work on one pandas
column at a time or mix conventions (quantstats' PSR feeds excess kurtosis into a formula written for
kurtosis, empyrical has no PSR/DSR), and the sweep engine needs every statistic column-wise on plain arrays,
fast (:func:`performance` gives them all from one pass).
The tests hold each formula to independent references (plain loops, scipy, the published DSR example).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from quantlake.calendars import TRADING_DAYS_PER_YEAR

EULER_GAMMA = 0.5772156649015329
_TINY = 1e-12  # a standard deviation below this is a constant series (rounding noise), not volatility

ReturnsLike: TypeAlias = "pd.Series | pd.DataFrame | npt.ArrayLike"
FloatArray: TypeAlias = npt.NDArray[np.float64]
PandasT = TypeVar("PandasT", pd.Series, pd.DataFrame)

__all__ = [
    "EULER_GAMMA",
    "TRADING_DAYS_PER_YEAR",
    "DeflatedSharpe",
    "Moments",
    "annualized_return",
    "annualized_volatility",
    "calmar_ratio",
    "deflated_sharpe_from_stats",
    "deflated_sharpe_ratio",
    "downside_deviation",
    "drawdown",
    "expected_max_sharpe",
    "max_drawdown",
    "max_drawdown_of_equity",
    "moments",
    "performance",
    "probabilistic_sharpe_ratio",
    "psr_from_moments",
    "quantile",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return",
]


# ---------------------------------------------------------------------------------------------- plumbing
def _columns(returns: ReturnsLike) -> tuple[FloatArray, bool]:
    """``(T, K)`` float array and whether the input was one series."""
    raw = returns.to_numpy(dtype=float) if isinstance(returns, pd.Series | pd.DataFrame) else returns
    a = np.asarray(raw, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim == 1:
        return a[:, None], True
    if a.ndim == 2:
        # each column contiguous: the column pass (and numpy) then reduce every column on its own, the same
        # way as a 1-D series, so a column's figures are bitwise the same whatever its position or neighbours
        return np.asfortranarray(a), False
    raise ValueError(f"returns must be 1-D or 2-D (axis 0 = time), got {a.ndim} dimensions")


def _result(values: FloatArray, one: bool) -> Any:
    return float(values[0]) if one else values


@dataclass(frozen=True)
class _Pass:
    """What one pass over each column gives (arrays of shape ``(K,)``; see :mod:`quantlake.stats_kernels`)."""

    n: FloatArray  # number of finite returns
    mean: FloatArray
    m2: FloatArray  # central moments, divided by n
    m3: FloatArray
    m4: FloatArray
    down2: FloatArray  # mean(min(r - mar, 0)^2)
    growth: FloatArray  # prod(1 + r)
    mdd: FloatArray  # deepest drawdown of the compounded curve started at 1 (<= 0)


def _pass(r: FloatArray, mar: float = 0.0) -> _Pass:
    """The column pass of ``r`` (``(T, K)`` from :func:`_columns`; its transpose is row-contiguous)."""
    from quantlake import stats_kernels

    return _Pass(*stats_kernels.run(np.ascontiguousarray(r.T), mar))


@dataclass(frozen=True)
class Moments:
    """Per-column sample statistics of the finite returns (arrays of shape ``(K,)``)."""

    n: FloatArray  # number of finite returns
    mean: FloatArray
    std: FloatArray  # ddof = 1 (NaN below 2 returns)
    skew: FloatArray  # population estimator m3 / m2^1.5 (0 for a constant column)
    kurtosis: FloatArray  # population estimator m4 / m2^2, normal = 3 (3 for a constant column)

    @property
    def flat(self) -> npt.NDArray[np.bool_]:
        """Columns without volatility (constant, or fewer than two returns)."""
        return ~(self.std >= _TINY)


def _moments(p: _Pass) -> Moments:
    n, m2 = p.n, p.m2
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(n >= 2, np.sqrt(m2 * n / (n - 1.0)), np.nan)
        flat = ~(std >= _TINY)
        skew = np.where(flat, 0.0, p.m3 / m2**1.5)
        kurt = np.where(flat, 3.0, p.m4 / m2**2)
    return Moments(n=n, mean=p.mean, std=std, skew=skew, kurtosis=kurt)


def moments(returns: ReturnsLike) -> Moments:
    """Count, mean, standard deviation (ddof 1), skewness and kurtosis of each column's finite returns."""
    r, _ = _columns(returns)
    return _moments(_pass(r))


# ---------------------------------------------------------------------------------------------- ratios
# each formula once, from one pass (the public functions below and performance() call these)
def _sharpe(m: Moments, periods_per_year: float) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m.flat, 0.0, m.mean / m.std * math.sqrt(periods_per_year))


def _downside(p: _Pass) -> FloatArray:
    return np.where(p.n > 0, np.sqrt(p.down2), np.nan)


def _sortino(p: _Pass, m: Moments, periods_per_year: float, mar: float) -> FloatArray:
    dd = _downside(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(dd > 0, (m.mean - mar) / dd * math.sqrt(periods_per_year), np.nan)
    return np.where(m.flat, 0.0, ratio)


def _annualized_return(p: _Pass, periods_per_year: float) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = np.where(p.growth > 0, np.abs(p.growth) ** (periods_per_year / p.n) - 1.0, -1.0)
    return np.where(p.n > 0, out, np.nan)


def _calmar(p: _Pass, periods_per_year: float) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p.mdd < 0, _annualized_return(p, periods_per_year) / np.abs(p.mdd), np.nan)


def sharpe_ratio(returns: ReturnsLike, periods_per_year: float = TRADING_DAYS_PER_YEAR) -> Any:
    """Annualized Sharpe ratio ``mean / std(ddof=1) · √periods_per_year`` (0 for a flat series).

    ``periods_per_year=1`` gives the per-period ratio PSR and DSR work with."""
    r, one = _columns(returns)
    return _result(_sharpe(moments(r), periods_per_year), one)


def downside_deviation(
    returns: ReturnsLike, mar: float = 0.0, periods_per_year: float | None = None
) -> Any:
    """``√mean(min(r − mar, 0)²)`` over all finite periods; annualized by ``√periods_per_year`` if given."""
    r, one = _columns(returns)
    dd = _downside(_pass(r, mar))
    if periods_per_year:
        dd = dd * math.sqrt(periods_per_year)
    return _result(dd, one)


def sortino_ratio(
    returns: ReturnsLike, periods_per_year: float = TRADING_DAYS_PER_YEAR, mar: float = 0.0
) -> Any:
    """Annualized Sortino ratio ``mean(r − mar) / DD · √periods_per_year`` (0 for a flat series, NaN
    without downside)."""
    r, one = _columns(returns)
    p = _pass(r, mar)
    return _result(_sortino(p, _moments(p), periods_per_year, mar), one)


def total_return(returns: ReturnsLike) -> Any:
    """Compounded return ``Π(1 + r) − 1`` of the finite returns."""
    r, one = _columns(returns)
    return _result(_pass(r).growth - 1.0, one)


def annualized_return(returns: ReturnsLike, periods_per_year: float = TRADING_DAYS_PER_YEAR) -> Any:
    """Geometric annual growth ``(Π(1 + r))^(periods_per_year / n) − 1`` (−1 once the equity is wiped out;
    NaN without returns)."""
    r, one = _columns(returns)
    return _result(_annualized_return(_pass(r), periods_per_year), one)


def annualized_volatility(returns: ReturnsLike, periods_per_year: float = TRADING_DAYS_PER_YEAR) -> Any:
    """``std(ddof=1) · √periods_per_year`` (NaN for fewer than two returns)."""
    r, one = _columns(returns)
    return _result(moments(r).std * math.sqrt(periods_per_year), one)


def performance(
    returns: ReturnsLike, periods_per_year: float = TRADING_DAYS_PER_YEAR
) -> dict[str, Any]:
    """Every return statistic of each column from one pass (the same values as the single functions):
    ``total_return``, ``annualized_return``, ``sharpe``, ``sortino``, ``calmar``, ``max_drawdown``,
    ``volatility``."""
    r, one = _columns(returns)
    p = _pass(r)
    m = _moments(p)
    out = {
        "total_return": p.growth - 1.0,
        "annualized_return": _annualized_return(p, periods_per_year),
        "sharpe": _sharpe(m, periods_per_year),
        "sortino": _sortino(p, m, periods_per_year, 0.0),
        "calmar": _calmar(p, periods_per_year),
        "max_drawdown": p.mdd,
        "volatility": m.std * math.sqrt(periods_per_year),
    }
    return {k: _result(v, one) for k, v in out.items()}


def quantile(returns: ReturnsLike, q: float) -> Any:
    """The ``q``-quantile of each column's finite returns by numpy's default (linear) method: bitwise
    ``np.quantile`` of those returns (a historical VaR at 95 % is ``quantile(r, 0.05)``, negative)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q}")
    from quantlake import stats_kernels

    r, one = _columns(returns)
    return _result(stats_kernels.quantile(np.ascontiguousarray(r.T), q), one)


# ---------------------------------------------------------------------------------------------- drawdowns
def drawdown(equity: PandasT) -> PandasT:
    """Drawdown of equity curve(s) (a Series, or a DataFrame column-wise) from the running peak,
    ``equity / cummax − 1`` (0 at a high; missing values are skipped)."""
    eq = equity.astype(float)
    return eq / eq.cummax() - 1.0


def max_drawdown_of_equity(equity: ReturnsLike) -> Any:
    """Deepest ``equity / running peak − 1`` of each equity curve (≤ 0; NaN entries are skipped).  The
    curve should start with the initial capital for a first-period loss to count."""
    eq, one = _columns(equity)
    eq = np.where(np.isfinite(eq), eq, np.nan)
    peak = np.fmax.accumulate(eq, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = eq / peak - 1.0
    out = np.where(np.isnan(dd), 0.0, dd).min(axis=0, initial=0.0)
    return _result(np.minimum(out, 0.0), one)


def max_drawdown(returns: ReturnsLike) -> Any:
    """Deepest peak-to-trough decline of the compounded equity ``Π(1 + r)`` started at 1 before the first
    return (≤ 0; a loss on the first period counts; missing returns are no change)."""
    r, one = _columns(returns)
    return _result(_pass(r).mdd, one)


def calmar_ratio(returns: ReturnsLike, periods_per_year: float = TRADING_DAYS_PER_YEAR) -> Any:
    """Annualized return over the magnitude of the maximum drawdown (NaN without a drawdown)."""
    r, one = _columns(returns)
    return _result(_calmar(_pass(r), periods_per_year), one)


# ---------------------------------------------------------------------------------------------- PSR / DSR
def psr_from_moments(
    sharpe: Any, sharpe_benchmark: Any, n_obs: Any, skew: Any = 0.0, kurtosis: Any = 3.0
) -> Any:
    """PSR from per-period statistics: P(true per-period Sharpe > ``sharpe_benchmark``) for an estimate
    ``sharpe`` from ``n_obs`` returns with the given skewness and kurtosis (normal: 0 and 3).

    Scalars give a float, arrays broadcast.  NaN where fewer than 2 observations or the variance term
    ``1 − γ₃ SR + (γ₄ − 1)/4 SR²`` is not positive."""
    sr, bench = np.asarray(sharpe, dtype=float), np.asarray(sharpe_benchmark, dtype=float)
    n, g3, g4 = (np.asarray(v, dtype=float) for v in (n_obs, skew, kurtosis))
    denom = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (sr - bench) * np.sqrt(n - 1.0) / np.sqrt(denom)
    out = np.where((n >= 2) & (denom > 0), special.ndtr(z), np.nan)
    return float(out) if out.ndim == 0 else out


def probabilistic_sharpe_ratio(
    returns: ReturnsLike, sharpe_benchmark: float = 0.0, periods_per_year: float = TRADING_DAYS_PER_YEAR
) -> Any:
    """P(true Sharpe ratio > ``sharpe_benchmark``) of each series; the benchmark is annualized with
    ``periods_per_year`` like :func:`sharpe_ratio` (``periods_per_year=1``: per period)."""
    r, one = _columns(returns)
    m = moments(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        sr = np.where(m.flat, 0.0, m.mean / m.std)  # a flat column's PSR is 0 below
    bench = sharpe_benchmark / math.sqrt(periods_per_year)
    psr = np.atleast_1d(psr_from_moments(sr, bench, m.n, m.skew, m.kurtosis))
    return _result(np.where(m.flat | (m.n < 3), 0.0, psr), one)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR₀: expected maximum Sharpe ratio of ``n_trials`` unskilled trials whose Sharpe ratios have variance
    ``sharpe_variance`` (same units: per period in, per period out); 0 for one trial."""
    if n_trials < 2 or not sharpe_variance > 0:
        return 0.0
    z1 = special.ndtri(1.0 - 1.0 / n_trials)
    z2 = special.ndtri(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


@dataclass(frozen=True)
class DeflatedSharpe:
    """A deflated Sharpe ratio with the figures behind it (Sharpe ratios per period)."""

    dsr: float
    psr0: float  # probability that the true Sharpe ratio is above 0
    sharpe: float  # per period
    sr0: float  # per period: expected maximum Sharpe ratio of N unskilled trials
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float
    sharpe_variance: float  # of the trials' per-period Sharpe ratios

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def deflated_sharpe_from_stats(
    sharpe: float, sharpe_variance: float, n_trials: int, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> DeflatedSharpe:
    """DSR from per-period statistics (the published example's inputs), with its details."""
    sr0 = expected_max_sharpe(int(n_trials), sharpe_variance)
    return DeflatedSharpe(
        dsr=psr_from_moments(sharpe, sr0, n_obs, skew, kurtosis),
        psr0=psr_from_moments(sharpe, 0.0, n_obs, skew, kurtosis),
        sharpe=float(sharpe),
        sr0=sr0,
        n_trials=int(n_trials),
        n_obs=int(n_obs),
        skew=float(skew),
        kurtosis=float(kurtosis),
        sharpe_variance=float(sharpe_variance),
    )


def deflated_sharpe_ratio(
    returns: ReturnsLike,
    n_trials: int | None = None,
    trial_sharpes: npt.ArrayLike | None = None,
    periods_per_year: float = TRADING_DAYS_PER_YEAR,
) -> Any:
    """P(true Sharpe > 0) of each series after accounting for ``n_trials`` tried configurations.

    ``trial_sharpes`` are the trials' Sharpe ratios, annualized with ``periods_per_year`` like
    :func:`sharpe_ratio`; their variance sets SR₀.  Without them the variance is the Sharpe estimator's
    own, ``(1 − γ₃ SR + (γ₄ − 1)/4 SR²) / (T − 1)`` (a conservative default when trials are similar).
    For a 2-D input with ``n_trials`` and ``trial_sharpes`` both omitted, the columns *are* the trials:
    each column is deflated by all ``K`` columns and the variance of their Sharpe ratios."""
    r, one = _columns(returns)
    m = moments(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        sr = np.where(m.flat, 0.0, m.mean / m.std)
    if n_trials is None and trial_sharpes is None and not one:
        n_trials, trial_var = r.shape[1], (float(np.var(sr, ddof=1)) if r.shape[1] > 1 else 0.0)
        var = np.full(sr.shape, trial_var)
    elif trial_sharpes is not None and np.size(trial_sharpes) > 1:
        per_period = np.asarray(trial_sharpes, dtype=float).ravel() / math.sqrt(periods_per_year)
        var = np.full(sr.shape, float(np.var(per_period[np.isfinite(per_period)], ddof=1)))
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.maximum(1.0 - m.skew * sr + (m.kurtosis - 1.0) / 4.0 * sr**2, 1e-12) / (m.n - 1.0)
    trials = max(int(n_trials or 1), 1)
    sr0 = np.array([expected_max_sharpe(trials, float(v)) for v in var])
    dsr = np.atleast_1d(psr_from_moments(sr, sr0, m.n, m.skew, m.kurtosis))
    return _result(np.where(m.flat | (m.n < 3), 0.0, dsr), one)
