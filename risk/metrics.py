"""Risk metrics of a return series: VaR and CVaR (historical, parametric normal, Cornish-Fisher), beta,
downside deviation, and a drawdown table.

Conventions
-----------
* ``returns`` are simple per-period returns (daily for daily data); NaNs are dropped.
* ``confidence`` is the VaR level (0.95 → the 5 % tail, ``alpha = 1 − confidence``).
* VaR and CVaR are reported as **positive losses** (fractions of portfolio value over one period):
  a 95 % VaR of 0.021 means a loss of more than 2.1 % on one day in twenty.

Definitions (and the library each is tested against)
----------------------------------------------------
* historical VaR: minus the empirical ``alpha``-quantile, the lower order statistic
  ``x_(ceil(alpha·T))`` (riskfolio-lib ``RiskFunctions.VaR_Hist``); historical CVaR: the
  Rockafellar-Uryasev tail mean ``VaR + Σ max(−x − VaR, 0) / (alpha·T)``, which handles a tail that is not
  a whole number of observations (riskfolio ``CVaR_Hist``).
* parametric (normal): ``VaR = −(mu + z·sigma)`` with ``z = Φ⁻¹(alpha)``, sample mean and standard
  deviation (ddof=1); ``CVaR = −(mu − sigma·φ(z)/alpha)`` (quantstats ``value_at_risk`` and
  ``conditional_value_at_risk``).
* Cornish-Fisher (modified) VaR: the normal quantile corrected for sample skewness S and excess kurtosis K
  (moment estimators, ``scipy.stats.skew``/``kurtosis`` with ``bias=True``):
  ``z_cf = z + (z²−1)S/6 + (z³−3z)K/24 − (2z³−5z)S²/36``.  Cornish-Fisher CVaR is the mean of that
  quantile function over the tail, ``(1/alpha)∫₀^alpha q_cf(u) du``, in closed form from the truncated
  normal moments (tested against numerical integration).  :func:`cornish_fisher_valid` says whether the
  sample moments are inside the expansion's domain of validity (reports print the figure only with a
  warning when they are not).  The expansion is reliable for moderate
  skewness and kurtosis (roughly |S| < 1, K < 6); beyond that the quantile function stops being monotone.
* beta: ``cov(r, b) / var(b)`` on the dates both series have (scipy ``linregress`` slope, quantstats).
* downside deviation: ``sqrt(mean(min(r − mar, 0)²))`` over all periods (Sortino & Price), optionally
  annualized by ``sqrt(periods_per_year)``.

The formulas are a few numpy lines each; they are written here (rather than calling riskfolio or
quantstats at run time) because those functions take one column, loop in Python, import in ~10-20 s and
mix conventions (quantstats reports VaR as a negative return).  Tests hold them to those libraries.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from quantlake import stats as qstats
from quantlake.errors import ConfigError
from risk.errors import InsufficientDataError

Method = Literal["historical", "parametric", "cornish_fisher"]
METHODS: tuple[Method, ...] = ("historical", "parametric", "cornish_fisher")
MIN_OBS = 3

ReturnsLike: TypeAlias = pd.Series | npt.ArrayLike


def _clean(returns: ReturnsLike, minimum: int = MIN_OBS) -> npt.NDArray[np.float64]:
    x = np.asarray(returns, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size < minimum:
        raise InsufficientDataError(f"need at least {minimum} finite returns, got {x.size}")
    return x


def _alpha(confidence: float) -> float:
    if not 0.5 <= confidence < 1.0:
        raise ConfigError(f"confidence must be in [0.5, 1), got {confidence}")
    return 1.0 - confidence


# -------------------------------------------------------------------------------------- historical
def var_historical(returns: ReturnsLike, confidence: float = 0.95) -> float:
    """Historical VaR: minus the lower empirical ``alpha``-quantile (order statistic ``ceil(alpha·T)``)."""
    x, alpha = np.sort(_clean(returns)), _alpha(confidence)
    return float(-x[_tail_count(alpha, x.size) - 1])


def _tail_count(alpha: float, n: int) -> int:
    """``ceil(alpha·n)``, at least 1, robust to the binary error of ``alpha = 1 − confidence``: 1 − 0.95 is
    0.050000000000000044, so 0.05·100 would otherwise round up to the 6th worst of 100 instead of the 5th."""
    return max(int(np.ceil(round(alpha * n, 9))), 1)


def cvar_historical(returns: ReturnsLike, confidence: float = 0.95) -> float:
    """Historical CVaR (expected shortfall): ``VaR + Σ max(−x − VaR, 0) / (alpha·T)``."""
    x, alpha = _clean(returns), _alpha(confidence)
    var = var_historical(x, confidence)
    return float(var + np.maximum(-x - var, 0.0).sum() / (alpha * x.size))


# -------------------------------------------------------------------------------------- parametric
def var_parametric(returns: ReturnsLike, confidence: float = 0.95) -> float:
    """Normal VaR ``−(mu + z·sigma)``, ``z = Φ⁻¹(1 − confidence)``, sigma with ddof=1."""
    x, alpha = _clean(returns), _alpha(confidence)
    return float(-(x.mean() + stats.norm.ppf(alpha) * x.std(ddof=1)))


def cvar_parametric(returns: ReturnsLike, confidence: float = 0.95) -> float:
    """Normal CVaR ``−(mu − sigma·φ(z)/alpha)``."""
    x, alpha = _clean(returns), _alpha(confidence)
    z = stats.norm.ppf(alpha)
    return float(-(x.mean() - x.std(ddof=1) * stats.norm.pdf(z) / alpha))


# --------------------------------------------------------------------------------- Cornish-Fisher
def cornish_fisher_z(alpha: float, skew: float, excess_kurtosis: float) -> float:
    """Cornish-Fisher quantile of a standardized variable with the given skewness and excess kurtosis."""
    z = float(stats.norm.ppf(alpha))
    s, k = skew, excess_kurtosis
    return z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36


def cornish_fisher_tail_mean(alpha: float, skew: float, excess_kurtosis: float) -> float:
    """``(1/alpha)∫₀^alpha z_cf(u) du`` in closed form.

    With ``a = Φ⁻¹(alpha)`` and the truncated moments ``M_k = E[Z^k; Z < a]`` of a standard normal —
    ``M0 = alpha``, ``M1 = −φ(a)``, ``M2 = alpha − aφ(a)``, ``M3 = −(a² + 2)φ(a)`` — the integral of each
    Cornish-Fisher term is a combination of them.
    """
    a = float(stats.norm.ppf(alpha))
    phi = float(stats.norm.pdf(a))
    m0, m1, m2, m3 = alpha, -phi, alpha - a * phi, -(a * a + 2) * phi
    s, k = skew, excess_kurtosis
    total = m1 + (m2 - m0) * s / 6 + (m3 - 3 * m1) * k / 24 - (2 * m3 - 5 * m1) * s * s / 36
    return total / alpha


def _moments(x: npt.NDArray[np.float64]) -> tuple[float, float, float, float]:
    return float(x.mean()), float(x.std(ddof=1)), float(stats.skew(x)), float(stats.kurtosis(x))


CF_Z_MAX = 3.719  # |z| of the 0.01 % and 99.99 % quantiles: the range a VaR report can use


def cornish_fisher_valid(skew: float, excess_kurtosis: float, z_max: float = CF_Z_MAX) -> bool:
    """Whether the Cornish-Fisher expansion with these moments is a valid quantile function — increasing in
    the normal quantile z on ``|z| <= z_max`` (probabilities 0.01 %…99.99 %) — the condition under which its
    VaR means anything.

    ``dz_cf/dz = 1 + s·z/3 + k(z² − 1)/8 − s²(6z² − 5)/36 = a z² + b z + c`` with ``a = k/8 − s²/6``,
    ``b = s/3``, ``c = 1 − k/8 + 5s²/36``: a quadratic, so it is ≥ 0 on the interval when it is at both ends
    and, if it opens upwards with its vertex inside, at the vertex.  (Maillard, *A User's Guide to the Cornish
    Fisher Expansion*, 2012, gives the same condition over every z: ``a ≥ 0`` and ``b² ≤ 4ac``.)  For
    symmetric returns the domain is −0.62 ≤ K ≤ 8; skewness narrows it.  Outside it (a put-write's excess
    kurtosis of ~30) the "modified" VaR can come out below the historical one."""
    s, k = float(skew), float(excess_kurtosis)
    if not (np.isfinite(s) and np.isfinite(k)):
        return False
    a, b, c = k / 8 - s * s / 6, s / 3, 1 - k / 8 + 5 * s * s / 36
    points = [-z_max, z_max]
    if a > 0 and abs(-b / (2 * a)) <= z_max:
        points.append(-b / (2 * a))
    return all(a * z * z + b * z + c >= -1e-12 for z in points)


def cornish_fisher_warning(returns: ReturnsLike) -> str | None:
    """A warning to print beside a Cornish-Fisher VaR when the returns' skewness/excess kurtosis are outside
    the expansion's domain of validity (:func:`cornish_fisher_valid`), else ``None``."""
    x = _clean(returns, 4)
    _, _, s, k = _moments(x)
    if cornish_fisher_valid(s, k):
        return None
    return (f"Cornish-Fisher VaR is not reliable here: skewness {s:.2f} and excess kurtosis {k:.1f} are outside "
            "the domain where the expansion is a valid quantile function (for symmetric returns -0.6 <= excess "
            "kurtosis <= 8); use the historical figures")


def var_cornish_fisher(returns: ReturnsLike, confidence: float = 0.95) -> float:
    """Cornish-Fisher (modified) VaR ``−(mu + z_cf·sigma)``."""
    x, alpha = _clean(returns, 4), _alpha(confidence)
    mu, sd, s, k = _moments(x)
    return float(-(mu + cornish_fisher_z(alpha, s, k) * sd))


def cvar_cornish_fisher(returns: ReturnsLike, confidence: float = 0.95) -> float:
    """Cornish-Fisher CVaR ``−(mu + sigma·tail mean of z_cf)``."""
    x, alpha = _clean(returns, 4), _alpha(confidence)
    mu, sd, s, k = _moments(x)
    return float(-(mu + cornish_fisher_tail_mean(alpha, s, k) * sd))


_VAR = {"historical": var_historical, "parametric": var_parametric, "cornish_fisher": var_cornish_fisher}
_CVAR = {"historical": cvar_historical, "parametric": cvar_parametric, "cornish_fisher": cvar_cornish_fisher}


def value_at_risk(returns: ReturnsLike, confidence: float = 0.95, method: Method = "historical") -> float:
    """VaR by ``method`` (``historical``, ``parametric`` or ``cornish_fisher``)."""
    if method not in _VAR:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return _VAR[method](returns, confidence)


def conditional_value_at_risk(
    returns: ReturnsLike, confidence: float = 0.95, method: Method = "historical"
) -> float:
    """CVaR (expected shortfall) by ``method``."""
    if method not in _CVAR:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return _CVAR[method](returns, confidence)


def var_table(returns: ReturnsLike, confidences: tuple[float, ...] = (0.95, 0.99)) -> pd.DataFrame:
    """VaR and CVaR for every method (rows) and confidence (columns ``var_95``, ``cvar_95``, ...)."""
    data = {}
    for c in confidences:
        tag = f"{c * 100:g}".replace(".", "_")
        data[f"var_{tag}"] = [value_at_risk(returns, c, m) for m in METHODS]
        data[f"cvar_{tag}"] = [conditional_value_at_risk(returns, c, m) for m in METHODS]
    return pd.DataFrame(data, index=pd.Index(METHODS, name="method"))


# ---------------------------------------------------------------------------- beta, downside deviation
def beta(returns: pd.Series, benchmark: pd.Series) -> float:
    """``cov(r, b) / var(b)`` over the dates both series have a value."""
    both = pd.concat([returns.rename("r"), benchmark.rename("b")], axis=1, join="inner").dropna()
    if len(both) < MIN_OBS:
        raise InsufficientDataError(f"need at least {MIN_OBS} common dates for beta, got {len(both)}")
    cov = np.cov(both["r"].to_numpy(), both["b"].to_numpy(), ddof=1)
    if cov[1, 1] == 0:
        raise InsufficientDataError("benchmark returns are constant; beta is undefined")
    return float(cov[0, 1] / cov[1, 1])


def downside_deviation(returns: ReturnsLike, mar: float = 0.0, periods_per_year: int | None = None) -> float:
    """``sqrt(mean(min(r − mar, 0)²))`` over all periods; annualized if ``periods_per_year`` is given
    (:func:`quantlake.stats.downside_deviation`)."""
    return float(qstats.downside_deviation(_clean(returns, 1), mar, periods_per_year))


# ------------------------------------------------------------------------------------------ drawdowns
def equity_from_returns(returns: pd.Series, start: float = 1.0) -> pd.Series:
    """Equity curve ``start·Π(1 + r)`` with the starting value placed one day before the first return, so a
    loss on the first day is a drawdown from the start (the convention quantstats uses too)."""
    r = returns.dropna().astype(float)
    if r.empty:
        raise InsufficientDataError("no returns to build an equity curve from")
    if not isinstance(r.index, pd.DatetimeIndex) and pd.api.types.is_numeric_dtype(r.index):
        raise ConfigError("returns need a date index (got numbers)")
    idx = pd.DatetimeIndex(r.index)
    curve = start * (1.0 + r).cumprod()
    first = pd.Series([start], index=pd.DatetimeIndex([idx[0] - pd.Timedelta(days=1)]))
    return pd.concat([first, pd.Series(curve.to_numpy(), index=idx)])


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Drawdown from the running peak, ``equity / cummax − 1`` (0 at a high, negative below)."""
    return qstats.drawdown(equity.dropna())


DRAWDOWN_COLUMNS = (
    "peak", "trough", "recovery", "depth", "peak_value", "trough_value",
    "days_to_trough", "days_to_recovery", "duration_days", "periods", "recovered",
)  # fmt: skip


def drawdown_table(equity: pd.Series, top: int | None = None) -> pd.DataFrame:
    """Every drawdown episode of an equity curve (date index), worst first.

    Columns: ``peak`` (last date at the high), ``trough`` (date of the low), ``recovery`` (first date back at
    or above the peak; NaT if not yet), ``depth`` (trough / peak − 1, negative), ``peak_value``,
    ``trough_value``, ``days_to_trough`` and ``days_to_recovery`` (calendar days from the peak),
    ``duration_days`` (peak to recovery, or to the last date if not recovered), ``periods`` (rows from peak
    to recovery or the end), ``recovered``.
    """
    eq = equity.dropna().astype(float)
    if eq.empty:
        raise InsufficientDataError("empty equity curve")
    if (eq <= 0).any():
        raise ConfigError("equity must be positive to measure drawdowns (pass an equity curve, not P&L)")
    eq.index = pd.DatetimeIndex(eq.index)
    dd = eq / eq.cummax() - 1.0
    under = (dd < 0).to_numpy()
    if not under.any():
        return pd.DataFrame(columns=list(DRAWDOWN_COLUMNS))
    episode = np.cumsum(~under)  # rows of one episode share the id of the at-peak row before them
    pos = np.arange(len(eq))
    at_peak = pd.Series(pos[~under], index=episode[~under])  # id -> row of that high
    uw = pd.DataFrame({"dd": dd.to_numpy()[under], "pos": pos[under]}, index=episode[under])
    grp = uw.groupby(level=0)
    trough_pos = grp["pos"].first() + grp["dd"].agg(lambda s: int(np.argmin(s.to_numpy())))
    ids = trough_pos.index.to_numpy()
    peak_pos = at_peak.loc[ids].to_numpy()
    rec = at_peak.reindex(ids + 1)
    recovered = rec.notna().to_numpy()
    end_pos = np.where(recovered, rec.fillna(-1).to_numpy(dtype=int), len(eq) - 1)
    dates = eq.index
    peak_d, trough_d, end_d = dates[peak_pos], dates[trough_pos.to_numpy()], dates[end_pos]
    values = eq.to_numpy()
    out = pd.DataFrame(
        {
            "peak": peak_d,
            "trough": trough_d,
            "recovery": pd.DatetimeIndex(np.where(recovered, end_d, pd.NaT)),
            "depth": grp["dd"].min().to_numpy(),
            "peak_value": values[peak_pos],
            "trough_value": values[trough_pos.to_numpy()],
            "days_to_trough": (trough_d - peak_d).days,
            "days_to_recovery": np.where(recovered, (end_d - peak_d).days, np.nan),
            "duration_days": (end_d - peak_d).days,
            "periods": end_pos - peak_pos,
            "recovered": recovered,
        }
    )
    out = out.sort_values(["depth", "peak"], kind="stable").reset_index(drop=True)
    return out.head(top) if top else out


def max_drawdown(equity: pd.Series) -> float:
    """Deepest drawdown of an equity curve (negative fraction; 0 if it never fell)."""
    return float(qstats.max_drawdown_of_equity(equity.dropna()))
