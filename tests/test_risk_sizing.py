"""Sizing: hand-worked numbers, closed forms and numerical optimisation as references."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

import risk.sizing as sz
from quantlake.errors import ConfigError
from risk.errors import UnknownRegimeError


def test_docstring_examples() -> None:
    assert doctest.testmod(sz).failed == 0


def test_fixed_and_percent_of_equity_round_down() -> None:
    assert sz.fixed_quantity(7.9) == 7.0
    assert sz.fixed_quantity(250, lot_size=100) == 200.0
    # 10 % of 100,000 = 10,000: 10,000 / 333 = 30.03 -> 30 shares; price 0 -> nothing
    out = sz.percent_of_equity(100_000, 0.10, np.array([250.0, 333.0, 0.0]))
    np.testing.assert_array_equal(out, [40.0, 30.0, 0.0])
    # options: 5 % of 20,000 = 1,000 on a $3.20 premium × 100 = $320 per contract -> 3 contracts
    assert sz.percent_of_equity(20_000, 0.05, 3.20, multiplier=100) == 3.0
    s = sz.percent_of_equity(10_000, 0.5, pd.Series([100.0, 49.0], index=["a", "b"]))
    assert list(s.index) == ["a", "b"] and s.tolist() == [50.0, 102.0]
    with pytest.raises(ConfigError, match="qty"):
        sz.fixed_quantity(-1)


def test_kelly_closed_forms() -> None:
    assert sz.kelly_fraction(0.6, 1.0) == pytest.approx(0.2)  # 0.6 - 0.4/1
    assert sz.kelly_fraction(0.55, 2.0) == pytest.approx(0.325)  # 0.55 - 0.45/2
    assert sz.kelly_fraction(0.3, 1.0) == 0.0  # negative edge: no bet
    assert sz.kelly_mean_variance(0.10, 0.20**2) == pytest.approx(2.5)
    assert sz.kelly_mean_variance(0.10, 0.04, risk_free=0.02) == pytest.approx(2.0)
    # wins 0.1, 0.1, 0.1 and losses -0.05, -0.05: p = 0.6, payoff 0.1 / 0.05 = 2 -> 0.6 - 0.4/2 = 0.4
    assert sz.kelly_from_trades([0.1, -0.05, 0.1, 0.0, 0.1, -0.05]) == pytest.approx(0.4)
    assert sz.kelly_from_trades([0.1, 0.2]) == 0.0
    assert sz.fractional_kelly(0.4, 0.5) == pytest.approx(0.2)
    assert sz.fractional_kelly(3.0, 0.5, cap=1.0) == 1.0
    with pytest.raises(ConfigError, match="win_rate"):
        sz.kelly_fraction(1.2, 1.0)


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.3, 0.9), b=st.floats(0.5, 4.0))
def test_kelly_maximises_expected_log_growth(p: float, b: float) -> None:
    """The Kelly fraction is the argmax of p·log(1 + b f) + (1 − p)·log(1 − f) (found numerically)."""
    res = minimize_scalar(
        lambda f: -(p * math.log1p(b * f) + (1 - p) * math.log1p(-f)),
        bounds=(0.0, 0.999),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert sz.kelly_fraction(p, b) == pytest.approx(max(res.x, 0.0), abs=1e-5)


def test_kelly_mean_variance_maximises_gbm_growth() -> None:
    """For GBM the growth rate at leverage f is r + f(mu − r) − f²σ²/2; maximise it numerically."""
    mu, sigma, r = 0.08, 0.18, 0.03
    res = minimize_scalar(
        lambda f: -(r + f * (mu - r) - f * f * sigma**2 / 2), bounds=(0, 10), method="bounded"
    )
    assert sz.kelly_mean_variance(mu, sigma**2, risk_free=r) == pytest.approx(res.x, rel=1e-5)


def test_realized_vol_and_vol_targeting() -> None:
    rng = np.random.default_rng(1)
    r = pd.Series(rng.normal(0, 0.01, 300))
    rv = sz.realized_vol(r, window=20)
    assert rv.iloc[:19].isna().all()
    assert rv.iloc[-1] == pytest.approx(np.std(r.iloc[-20:].to_numpy(), ddof=1) * math.sqrt(252))
    lev = sz.vol_target_leverage(pd.Series([0.20, 0.05, np.nan, 0.0, 0.10]), 0.10, max_leverage=1.5)
    assert lev.tolist() == [0.5, 1.5, 0.0, 1.5, 1.0]  # 10/20, capped, no estimate -> 0, zero vol -> cap
    assert sz.vol_target_leverage(0.25, 0.15, 2.0) == pytest.approx(0.6)
    with pytest.raises(ConfigError, match="target_vol"):
        sz.vol_target_leverage(0.2, 0.0)


def test_risk_based_sizing_for_stocks_and_spreads() -> None:
    # $100k, risk 1 % = $1,000; entry 50, stop 47.5 -> $2.50 per share -> 400 shares
    per_share = sz.stop_risk_per_unit(50.0, 47.5)
    assert sz.risk_based_quantity(100_000, 0.01, per_share) == 400.0
    # put credit spread 5 wide for 1.40 credit: max risk 3.60 per share, $360 per contract;
    # 2 % of $50k = $1,000 -> 2 contracts (2.78 rounded down)
    risk = sz.credit_spread_max_risk(5.0, 1.40)
    assert risk == pytest.approx(3.60)
    assert sz.spread_contracts(50_000, 0.02, risk) == 2.0
    # debit spread bought for 2.10: $210 per contract; 1 % of $100k -> 4 contracts
    assert sz.spread_contracts(100_000, 0.01, sz.debit_spread_max_risk(2.10)) == 4.0
    with pytest.raises(ConfigError, match="credit"):
        sz.credit_spread_max_risk(5.0, 6.0)


def test_regime_and_confidence_scaling_defaults() -> None:
    table = {"low_vol": 1.0, "iv_contraction": 1.0, "high_vol": 0.5, "iv_expansion": 0.5, "neutral": 0.0}
    for regime, mult in table.items():
        assert sz.regime_multiplier(regime) == mult
    assert [sz.confidence_multiplier(c) for c in ("low", "medium", "high")] == [0.0, 0.5, 1.0]
    # probabilities: below 0.55 low, below 0.65 medium, else high
    assert [sz.confidence_multiplier(p) for p in (0.5, 0.55, 0.64, 0.65, 0.9)] == [0.0, 0.5, 0.5, 1.0, 1.0]
    # 10 contracts in high vol with medium confidence: 10 × 0.5 × 0.5 = 2.5 -> 2
    assert sz.adaptive_quantity(10.0, "high_vol", "medium") == 2.0
    assert sz.adaptive_quantity(10.0, "low_vol", "low") == 0.0
    regimes = pd.Series(["low_vol", "iv_expansion", "neutral"], index=[3, 4, 5])
    out = sz.adaptive_quantity(
        pd.Series([8.0, 8.0, 8.0], index=[3, 4, 5]), regimes, pd.Series([0.9, 0.6, 0.9], index=[3, 4, 5])
    )
    assert out.tolist() == [8.0, 2.0, 0.0] and list(out.index) == [3, 4, 5]


def test_regime_config_is_validated_and_used() -> None:
    cfg = sz.AdaptiveSizing.from_mapping({"regimes": {"neutral": 0.25}, "confidence": {"medium": 0.75}})
    assert sz.adaptive_quantity(16.0, "neutral", "medium", cfg) == 3.0  # 16 × 0.25 × 0.75
    with pytest.raises(ConfigError, match="high_vol"):
        sz.AdaptiveSizing.from_mapping({"regimes": {"high_vol": 3.0}})
    with pytest.raises(ConfigError, match="low <= medium <= high"):
        sz.ConfidenceScaling(medium=0.1, low=0.2)
    with pytest.raises(ConfigError, match="bull"):
        sz.AdaptiveSizing.from_mapping({"regimes": {"bull": 1.0}})
    with pytest.raises(UnknownRegimeError, match="bull"):
        sz.regime_multiplier("bull")
    with pytest.raises(UnknownRegimeError, match="sideways"):
        sz.regime_multiplier(pd.Series(["low_vol", "sideways"]))
