"""Portfolio optimization: minimum variance, mean-variance with a target return, maximum Sharpe, risk parity
and hierarchical risk parity, all long-only with per-asset weight bounds.

Library: **riskfolio-lib** (installed with the project).  Why: it covers all four models in one
maintained package (minimum variance / mean-variance via ``Portfolio.optimization``, equal risk
contribution via ``Portfolio.rp_optimization``, HRP via ``HCPortfolio``) on top of cvxpy with open solvers
(Clarabel, ECOS, SCS), accepts linear weight constraints and per-asset HRP bounds, and offers two dozen
other risk measures (CVaR, CDaR, ...) for later.  skfolio and PyPortfolioOpt are not installed;
PyPortfolioOpt has no HRP bounds and is less active, skfolio would add a second large dependency tree.

One piece is written here: risk parity **with binding bounds**.  riskfolio's ``rp_optimization`` ignores
linear constraints, and its relaxed variant (``rrp_optimization``) only lifts the smallest risk
contributions (with bounds it leaves the others unequal, and cvxpy flags the solution inaccurate).  So when
the equal-risk solution breaks a bound, :func:`risk_parity` pins the offending assets to their bounds and
solves ``w_j (Σw)_j = rho · b_j`` for the free assets with ``Σw = 1`` (scipy ``root`` on log-weights),
repeating until no free asset breaks a bound: "cap A at 30 %, risk-parity the rest".

Inputs are per-period simple returns (one column per asset); a ``target_return`` is in the same units
(daily returns → a daily target).  ``cov``/``mu`` override the sample estimates (e.g. a shrunk covariance).
Weights sum to 1.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, model_validator

from quantlake.errors import ConfigError
from risk._model import RiskModel
from risk.errors import InfeasiblePortfolioError, InsufficientDataError

Weight = Annotated[float, Field(ge=0.0, le=1.0)]
BoundSpec = Weight | dict[str, Weight]


class WeightBounds(RiskModel):
    """Long-only weight bounds: one number for every asset, or a mapping asset → bound (others default
    to 0 below and 1 above).  Feasibility (Σ lower ≤ 1 ≤ Σ upper) is checked against the assets."""

    lower: BoundSpec = 0.0
    upper: BoundSpec = 1.0

    @model_validator(mode="after")
    def _lower_below_upper(self) -> WeightBounds:
        if isinstance(self.lower, float) and isinstance(self.upper, float) and self.lower > self.upper:
            raise ValueError("lower must not exceed upper")
        return self

    def arrays(self, assets: list[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        def expand(spec: BoundSpec, default: float, name: str) -> npt.NDArray[np.float64]:
            if isinstance(spec, Mapping):
                unknown = sorted(set(spec) - set(assets))
                if unknown:
                    raise ConfigError(f"WeightBounds.{name}: unknown asset(s) {unknown}")
                return np.array([float(spec.get(a, default)) for a in assets])
            return np.full(len(assets), float(spec))

        lo, hi = expand(self.lower, 0.0, "lower"), expand(self.upper, 1.0, "upper")
        bad = [a for a, lo_i, hi_i in zip(assets, lo, hi, strict=True) if lo_i > hi_i]
        if bad:
            raise ConfigError(f"WeightBounds: lower > upper for {bad}")
        if lo.sum() > 1 + 1e-9 or hi.sum() < 1 - 1e-9:
            raise InfeasiblePortfolioError(
                f"weight bounds are infeasible: lower bounds sum to {lo.sum():.4g} and upper bounds to "
                f"{hi.sum():.4g}; need sum(lower) <= 1 <= sum(upper)"
            )
        return lo, hi


NO_BOUNDS = WeightBounds()
# riskfolio tries Clarabel first; its default tolerances leave ~1e-5 in the weights
_CLARABEL_TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}


def _returns(returns: pd.DataFrame) -> pd.DataFrame:
    x = returns.dropna(how="any")
    if x.shape[1] < 2:
        raise InsufficientDataError("need returns of at least 2 assets")
    if len(x) < x.shape[1] + 2:
        raise InsufficientDataError(
            f"need more complete return rows ({len(x)}) than assets ({x.shape[1]}) + 1"
        )
    return x


def _cov(returns: pd.DataFrame, cov: pd.DataFrame | None) -> pd.DataFrame:
    if cov is None:
        return returns.cov()
    return cov.loc[list(returns.columns), list(returns.columns)]


def _result(weights: Any, assets: list[str], what: str) -> pd.Series:
    if weights is None:
        raise InfeasiblePortfolioError(f"{what}: no portfolio satisfies the constraints")
    w = pd.Series(np.asarray(weights, dtype=float).ravel(), index=assets, name="weight")
    w = w.clip(lower=0.0)
    return w / w.sum()


@contextlib.contextmanager
def _quiet() -> Any:
    """riskfolio prints 'no solution' to stdout and cvxpy warns about accuracy; the caller gets an error."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _portfolio(
    returns: pd.DataFrame, bounds: WeightBounds, mu: pd.Series | None, cov: pd.DataFrame | None
) -> Any:
    import riskfolio as rp

    assets = list(returns.columns)
    port = rp.Portfolio(returns=returns)
    port.assets_stats(method_mu="hist", method_cov="hist")
    # the weights do not depend on the scale of the covariance; unit-scale it so the solver's absolute
    # tolerances are relative to the problem (daily variances ~1e-4 otherwise cost ~1e-5 in the weights)
    sigma = _cov(returns, cov)
    port.cov = sigma / float(np.mean(np.diag(sigma)))
    port.sol_params = {name: {} for name in port.solvers} | {"CLARABEL": _CLARABEL_TIGHT}
    if mu is not None:
        port.mu = mu.loc[assets].to_frame().T
    lo, hi = bounds.arrays(assets)
    n = len(assets)
    port.ainequality = np.vstack([np.eye(n), -np.eye(n)])  # riskfolio: A w <= b
    port.binequality = np.concatenate([hi, -lo]).reshape(-1, 1)
    return port


def min_variance(
    returns: pd.DataFrame, bounds: WeightBounds = NO_BOUNDS, cov: pd.DataFrame | None = None
) -> pd.Series:
    """Minimum-variance weights (riskfolio ``optimization(rm="MV", obj="MinRisk")``)."""
    x = _returns(returns)
    port = _portfolio(x, bounds, None, cov)
    with _quiet():
        w = port.optimization(model="Classic", rm="MV", obj="MinRisk", hist=True)
    return _result(w, list(x.columns), "minimum variance")


def mean_variance(
    returns: pd.DataFrame,
    target_return: float,
    bounds: WeightBounds = NO_BOUNDS,
    mu: pd.Series | None = None,
    cov: pd.DataFrame | None = None,
) -> pd.Series:
    """Minimum variance subject to expected return ≥ ``target_return`` (per period, like the returns).

    A target below the minimum-variance portfolio's return does not bind (the efficient frontier never
    holds a dominated portfolio); one above the best reachable return raises
    :class:`~risk.errors.InfeasiblePortfolioError`.
    """
    x = _returns(returns)
    port = _portfolio(x, bounds, mu, cov)
    port.lowerret = float(target_return)
    with _quiet():
        w = port.optimization(model="Classic", rm="MV", obj="MinRisk", hist=True)
    return _result(w, list(x.columns), f"mean-variance with target return {target_return:g}")


def max_sharpe(
    returns: pd.DataFrame,
    risk_free: float = 0.0,
    bounds: WeightBounds = NO_BOUNDS,
    mu: pd.Series | None = None,
    cov: pd.DataFrame | None = None,
) -> pd.Series:
    """Tangency portfolio: the weights maximising ``(μᵀw − rf) / √(wᵀΣw)`` (riskfolio ``optimization(rm="MV",
    obj="Sharpe")``); ``risk_free`` per period like the returns.  When no asset's expected return beats the
    risk-free rate there is no tangency portfolio: :class:`~risk.errors.InfeasiblePortfolioError`."""
    x = _returns(returns)
    m = x.mean() if mu is None else mu.loc[list(x.columns)]
    if not (m > risk_free).any():
        raise InfeasiblePortfolioError("maximum Sharpe: no asset's expected return beats the risk-free rate")
    port = _portfolio(x, bounds, mu, cov)
    with _quiet():
        w = port.optimization(model="Classic", rm="MV", obj="Sharpe", rf=float(risk_free), hist=True)
    return _result(w, list(x.columns), "maximum Sharpe")


def risk_contributions(weights: pd.Series, cov: pd.DataFrame) -> pd.Series:
    """Share of portfolio variance from each asset: ``wᵢ(Σw)ᵢ / wᵀΣw`` (sums to 1)."""
    s = cov.loc[weights.index, weights.index].to_numpy()
    w = weights.to_numpy(dtype=float)
    rc = w * (s @ w)
    return pd.Series(rc / rc.sum(), index=weights.index, name="risk_contribution")


def _budget_equations(
    v: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    free: npt.NDArray[np.bool_],
    rest: float,
    cov: npt.NDArray[np.float64],
    budgets: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Residuals of ``w_j (Σw)_j / rho = b_j`` (free j) and ``Σ w_free = rest``; ``v`` = (log w_free, rho)."""
    x = w.copy()
    x[free] = np.exp(v[:-1])  # log-weights keep the free weights positive
    rc = x[free] * (cov @ x)[free]
    return np.append(rc / v[-1] - budgets, (x[free].sum() - rest) / rest)


def _bounded_risk_budget(
    cov: npt.NDArray[np.float64],
    budgets: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    start: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64] | None:
    """Active set: pin assets that break a bound to it, solve the rest so that
    ``w_j (Σw)_j = rho · b_j`` and the weights sum to 1, repeat until no free asset breaks a bound."""
    from scipy.optimize import root

    n = len(budgets)
    w = start.copy()
    pinned = np.zeros(n, dtype=bool)
    for _ in range(n):
        over, under = (w > hi + 1e-9) & ~pinned, (w < lo - 1e-9) & ~pinned
        if not (over.any() or under.any()):
            return w
        w = np.where(over, hi, np.where(under, lo, w))
        pinned |= over | under
        free = ~pinned
        if not free.any():
            return w if abs(w.sum() - 1) < 1e-9 else None
        rest = 1.0 - w[pinned].sum()
        if rest <= 0:
            return None

        x0 = w.copy()
        x0[free] = w[free] * rest / w[free].sum()
        rho0 = float(np.mean(x0[free] * (cov @ x0)[free] / budgets[free]))
        sol = root(
            _budget_equations,
            np.append(np.log(x0[free]), rho0),
            args=(w, free, rest, cov, budgets[free]),
            method="hybr",
            options={"xtol": 1e-13},
        )
        if not sol.success:
            return None
        w = w.copy()
        w[free] = np.exp(sol.x[:-1])
    return w if np.all(w <= hi + 1e-9) and np.all(w >= lo - 1e-9) else None


def risk_parity(
    returns: pd.DataFrame,
    bounds: WeightBounds = NO_BOUNDS,
    budgets: Mapping[str, float] | None = None,
    cov: pd.DataFrame | None = None,
) -> pd.Series:
    """Risk budgeting: each asset's share of variance equals its budget (equal risk contribution by default).

    Unbounded, riskfolio's ``rp_optimization``; if that violates ``bounds``, assets that break a bound are
    pinned to it and the others share the remaining risk in proportion to their budgets (module docstring).
    """
    x = _returns(returns)
    assets = list(x.columns)
    b = np.array([float((budgets or {}).get(a, 1.0)) for a in assets]) if budgets else np.ones(len(assets))
    if budgets and (set(budgets) - set(assets) or np.any(b <= 0)):
        raise ConfigError("budgets must name known assets with positive values")
    b = b / b.sum()
    lo, hi = bounds.arrays(assets)
    port = _portfolio(x, NO_BOUNDS, None, cov)
    with _quiet():
        w = port.rp_optimization(model="Classic", rm="MV", b=b.reshape(-1, 1))
    weights = _result(w, assets, "risk parity")
    if np.all(weights.to_numpy() >= lo - 1e-6) and np.all(weights.to_numpy() <= hi + 1e-6):
        return weights
    bounded = _bounded_risk_budget(_cov(x, cov).to_numpy(), b, lo, hi, weights.to_numpy())
    return _result(bounded, assets, "risk parity with bounds")


def hierarchical_risk_parity(
    returns: pd.DataFrame,
    bounds: WeightBounds = NO_BOUNDS,
    linkage: Literal["single", "complete", "average", "ward"] = "single",
    codependence: Literal["pearson", "spearman", "kendall", "distance"] = "pearson",
    cov: pd.DataFrame | None = None,
) -> pd.Series:
    """Hierarchical risk parity (López de Prado 2016) with riskfolio ``HCPortfolio`` (its bounds too).

    Clusters by the correlation distance, then splits weight top-down by inverse cluster variance.
    """
    import riskfolio as rp

    x = _returns(returns)
    assets = list(x.columns)
    lo, hi = bounds.arrays(assets)
    port = rp.HCPortfolio(returns=x, w_min=pd.Series(lo, index=assets), w_max=pd.Series(hi, index=assets))
    kwargs: dict[str, Any] = {}
    if cov is not None:
        kwargs = {"method_cov": "custom_cov", "custom_cov": _cov(x, cov)}
    with _quiet():
        w = port.optimization(
            model="HRP", codependence=codependence, rm="MV", linkage=linkage, leaf_order=True, **kwargs
        )
    return _result(w, assets, "hierarchical risk parity")


OPTIMIZERS = {
    "min_variance": min_variance,
    "max_sharpe": max_sharpe,
    "risk_parity": risk_parity,
    "hrp": hierarchical_risk_parity,
}
