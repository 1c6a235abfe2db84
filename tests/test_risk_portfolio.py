"""Portfolio optimization against closed forms written out here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlake.errors import ConfigError
from risk import portfolio as pf
from risk.errors import InfeasiblePortfolioError


def _returns(
    mu: list[float], vol: list[float], corr: np.ndarray, n: int = 1500, seed: int = 0
) -> pd.DataFrame:
    cov = np.outer(vol, vol) * corr
    rng = np.random.default_rng(seed)
    cols = [f"A{i}" for i in range(len(mu))]
    x = rng.multivariate_normal(mu, cov, n)
    x = x - x.mean(axis=0) + mu  # sample means exactly mu, so the closed forms below have known signs
    return pd.DataFrame(x, columns=cols, index=pd.bdate_range("2015-01-01", periods=n))


@pytest.fixture(scope="module")
def two() -> pd.DataFrame:
    return _returns([0.0004, 0.0007], [0.010, 0.018], np.array([[1, 0.3], [0.3, 1]]))


@pytest.fixture(scope="module")
def three() -> pd.DataFrame:
    corr = np.array([[1, 0.2, 0.1], [0.2, 1, 0.35], [0.1, 0.35, 1]])
    return _returns([0.0003, 0.0006, 0.0004], [0.012, 0.016, 0.011], corr, seed=1)


def test_two_asset_minimum_variance_closed_form(two: pd.DataFrame) -> None:
    s = two.cov().to_numpy()
    s1, s2, c = s[0, 0], s[1, 1], s[0, 1]
    w1 = (s2 - c) / (s1 + s2 - 2 * c)
    w = pf.min_variance(two)
    assert w.sum() == pytest.approx(1.0)
    assert w["A0"] == pytest.approx(w1, abs=1e-7) and 0.5 < w1 < 1


def test_unconstrained_minimum_variance_is_inverse_cov_times_ones(three: pd.DataFrame) -> None:
    s = three.cov().to_numpy()
    x = np.linalg.solve(s, np.ones(3))
    expected = x / x.sum()
    assert (expected > 0).all()  # the long-only constraint does not bind
    np.testing.assert_allclose(pf.min_variance(three).to_numpy(), expected, atol=1e-7)


def test_minimum_variance_respects_bounds(three: pd.DataFrame) -> None:
    free = pf.min_variance(three)
    assert free["A2"] > 0.45 and free["A1"] < 0.1
    w = pf.min_variance(three, pf.WeightBounds(upper={"A2": 0.4}))
    assert w["A2"] == pytest.approx(0.4, abs=1e-7) and w.sum() == pytest.approx(1.0)
    # with A2 pinned at 0.4, minimise the variance of [a, 0.6 − a, 0.4]; dV/da = 0 gives
    # a (s00 + s11 − 2 s01) = 0.6 (s11 − s01) + 0.4 (s12 − s02)
    s = three.cov().to_numpy()
    a = (0.6 * (s[1, 1] - s[0, 1]) + 0.4 * (s[1, 2] - s[0, 2])) / (s[0, 0] + s[1, 1] - 2 * s[0, 1])
    assert 0 < a < 0.6 and w["A0"] == pytest.approx(a, abs=1e-6)
    lower = pf.min_variance(three, pf.WeightBounds(lower=0.15))
    assert lower["A1"] == pytest.approx(0.15, abs=1e-7) and (lower >= 0.15 - 1e-8).all()


def test_mean_variance_target_return(two: pd.DataFrame, three: pd.DataFrame) -> None:
    mu2 = two.mean().to_numpy()
    target = 0.25 * mu2[0] + 0.75 * mu2[1]  # above the min-variance return: binds
    w = pf.mean_variance(two, target)
    # two assets: the budget and the return constraint fix the weights: w1 = (t − mu2) / (mu1 − mu2)
    assert w["A0"] == pytest.approx((target - mu2[1]) / (mu2[0] - mu2[1]), abs=1e-5)
    # three assets, equality-constrained Markowitz (Merton 1972): with A=1'S⁻¹1, B=1'S⁻¹mu, C=mu'S⁻¹mu
    s, mu = three.cov().to_numpy(), three.mean().to_numpy()
    si1, simu = np.linalg.solve(s, np.ones(3)), np.linalg.solve(s, mu)
    a, b, c = si1.sum(), simu.sum(), mu @ simu
    t = 0.00045
    expected = ((c - b * t) * si1 + (a * t - b) * simu) / (a * c - b * b)
    assert (expected > 0).all()
    got = pf.mean_variance(three, t)
    np.testing.assert_allclose(got.to_numpy(), expected, atol=1e-6)
    assert got.to_numpy() @ mu == pytest.approx(t, rel=1e-4)
    # a target below the minimum-variance return does not bind
    np.testing.assert_allclose(
        pf.mean_variance(three, -1.0).to_numpy(), pf.min_variance(three).to_numpy(), atol=1e-6
    )
    with pytest.raises(InfeasiblePortfolioError, match="target return"):
        pf.mean_variance(three, 0.01)


def test_risk_parity_equal_risk_contributions(two: pd.DataFrame, three: pd.DataFrame) -> None:
    # two assets: equal risk contribution is inverse volatility whatever the correlation
    s = two.cov().to_numpy()
    vol = np.sqrt(np.diag(s))
    w = pf.risk_parity(two)
    assert w["A0"] == pytest.approx(vol[1] / (vol[0] + vol[1]), abs=1e-8)
    w3 = pf.risk_parity(three)
    s3 = three.cov().to_numpy()
    rc = w3.to_numpy() * (s3 @ w3.to_numpy())
    np.testing.assert_allclose(rc / rc.sum(), [1 / 3] * 3, atol=1e-7)
    # budgets 2:1:1 -> risk shares 0.5, 0.25, 0.25
    wb = pf.risk_parity(three, budgets={"A0": 2.0}).to_numpy()
    rcb = wb * (s3 @ wb)
    np.testing.assert_allclose(rcb / rcb.sum(), [0.5, 0.25, 0.25], atol=1e-5)
    assert pf.risk_contributions(w3, three.cov()).sum() == pytest.approx(1.0)


def test_risk_parity_with_binding_bounds(three: pd.DataFrame) -> None:
    free = pf.risk_parity(three)
    cap = round(float(free["A2"]) - 0.1, 2)  # A2 wants more than this
    w = pf.risk_parity(three, pf.WeightBounds(upper={"A2": cap}))
    assert w["A2"] == pytest.approx(cap, abs=1e-9) and w.sum() == pytest.approx(1.0)
    s = three.cov().to_numpy()
    rc = w.to_numpy() * (s @ w.to_numpy())
    assert rc[0] == pytest.approx(rc[1], rel=1e-6)  # the unpinned assets still share risk equally
    lower = pf.risk_parity(three, pf.WeightBounds(lower=0.3))
    assert (lower >= 0.3 - 1e-9).all() and lower.sum() == pytest.approx(1.0)


def test_hrp(two: pd.DataFrame, three: pd.DataFrame) -> None:
    # two assets: HRP is inverse variance
    var = np.diag(two.cov().to_numpy())
    w = pf.hierarchical_risk_parity(two)
    assert w["A0"] == pytest.approx(var[1] / (var[0] + var[1]), rel=1e-9)
    # uncorrelated assets: bisection by inverse cluster variance gives inverse variance for any tree
    diag = pd.DataFrame(np.diag(np.diag(three.cov())), index=three.columns, columns=three.columns)
    inv = 1 / np.diag(diag)
    np.testing.assert_allclose(
        pf.hierarchical_risk_parity(three, cov=diag).to_numpy(), inv / inv.sum(), rtol=1e-9
    )
    bounded = pf.hierarchical_risk_parity(three, pf.WeightBounds(upper=0.4, lower=0.2))
    assert bounded.sum() == pytest.approx(1.0)
    assert (bounded <= 0.4 + 1e-9).all() and (bounded >= 0.2 - 1e-9).all()


def test_bounds_validation(three: pd.DataFrame) -> None:
    with pytest.raises(InfeasiblePortfolioError, match="infeasible"):
        pf.min_variance(three, pf.WeightBounds(upper=0.3))
    with pytest.raises(ConfigError, match="unknown asset"):
        pf.min_variance(three, pf.WeightBounds(upper={"ZZZ": 0.5}))
    with pytest.raises(ConfigError, match="lower"):
        pf.WeightBounds(lower=-0.1)
