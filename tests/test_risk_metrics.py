"""Risk metrics against riskfolio-lib, quantstats, scipy and closed forms written out here."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from quantlake.errors import ConfigError
from risk import metrics as m
from risk.errors import InsufficientDataError

logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
Z95 = -1.6448536269514722  # Φ⁻¹(0.05), published to 16 digits


@pytest.fixture(scope="module")
def fat_tailed() -> pd.Series:
    rng = np.random.default_rng(42)
    idx = pd.bdate_range("2015-01-01", periods=1500)
    return pd.Series(0.0004 + 0.01 * rng.standard_t(4, len(idx)), index=idx)


@pytest.fixture(scope="module")
def qs():  # type: ignore[no-untyped-def]
    import quantstats

    return quantstats


def test_historical_by_hand() -> None:
    r = [0.06, -0.05, 0.02, -0.03, 0.0, 0.05, -0.01, 0.04, 0.01, 0.03]  # sorted: -.05 -.03 -.01 0 .01 ...
    # 95 %: alpha·T = 0.5 -> the worst observation; CVaR = 0.05 + 0/(0.5) = 0.05
    assert m.var_historical(r, 0.95) == pytest.approx(0.05)
    assert m.cvar_historical(r, 0.95) == pytest.approx(0.05)
    # 80 %: alpha·T = 2 -> 2nd worst 0.03; CVaR = mean of the two worst = 0.04
    assert m.var_historical(r, 0.80) == pytest.approx(0.03)
    assert m.cvar_historical(r, 0.80) == pytest.approx(0.04)
    # 75 %: alpha·T = 2.5 -> 3rd worst 0.01; CVaR = 0.01 + (0.04 + 0.02)/2.5 = 0.034
    assert m.var_historical(r, 0.75) == pytest.approx(0.01)
    assert m.cvar_historical(r, 0.75) == pytest.approx(0.034)


def test_historical_tail_count_is_exact_when_alpha_t_is_whole() -> None:
    """1 − 0.95 is 0.050000000000000044 in binary: the 95 % VaR of 100 returns is still the 5th worst."""
    r = -np.arange(1, 101) / 100.0  # worst -1.00, then -0.99, ...
    assert m.var_historical(r, 0.95) == pytest.approx(0.96)  # 5th worst, not the 6th (0.95)
    assert m.cvar_historical(r, 0.95) == pytest.approx(np.mean([1.0, 0.99, 0.98, 0.97, 0.96]))
    assert m.var_historical(r[:20], 0.95) == pytest.approx(0.20)  # alpha·T = 1: the worst of 20
    assert m.var_historical(r, 0.99) == pytest.approx(1.0)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.975, 0.99])
def test_historical_matches_riskfolio(fat_tailed: pd.Series, confidence: float) -> None:
    from riskfolio.src import RiskFunctions as rf

    x = fat_tailed.to_numpy()
    for sample in (x, x[:333], x[:1001], x[:1000]):  # tails that are and are not whole numbers of observations
        assert m.var_historical(sample, confidence) == pytest.approx(
            rf.VaR_Hist(sample, round(1 - confidence, 12)), abs=1e-15
        )
        assert m.cvar_historical(sample, confidence) == pytest.approx(
            rf.CVaR_Hist(sample, round(1 - confidence, 12)), rel=1e-12
        )


def test_parametric_closed_form_and_quantstats(fat_tailed: pd.Series, qs) -> None:  # type: ignore[no-untyped-def]
    mu, sd = fat_tailed.mean(), fat_tailed.std(ddof=1)
    assert m.var_parametric(fat_tailed, 0.95) == pytest.approx(-(mu + Z95 * sd), rel=1e-12)
    es = -(mu - sd * math.exp(-(Z95**2) / 2) / math.sqrt(2 * math.pi) / 0.05)
    assert m.cvar_parametric(fat_tailed, 0.95) == pytest.approx(es, rel=1e-12)
    for c in (0.95, 0.99):
        assert m.var_parametric(fat_tailed, c) == pytest.approx(
            -qs.stats.value_at_risk(fat_tailed, confidence=c)
        )
        cvar_qs = qs.stats.conditional_value_at_risk(fat_tailed, confidence=c, method="parametric")
        assert m.cvar_parametric(fat_tailed, c) == pytest.approx(-cvar_qs)


def test_cornish_fisher_formula_written_out(fat_tailed: pd.Series) -> None:
    x = fat_tailed.to_numpy()
    mu, sd = x.mean(), x.std(ddof=1)
    n = len(x)
    c = x - mu
    s = (c**3).mean() / (c**2).mean() ** 1.5  # moment skewness
    k = (c**4).mean() / (c**2).mean() ** 2 - 3  # moment excess kurtosis
    z = Z95
    zcf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
    assert n == 1500 and k > 1  # fat tails: the correction matters
    assert m.var_cornish_fisher(x, 0.95) == pytest.approx(-(mu + zcf * sd), rel=1e-10)
    assert m.cornish_fisher_z(0.05, 0.0, 0.0) == pytest.approx(Z95, abs=1e-15)


@pytest.mark.parametrize(
    ("alpha", "s", "k"), [(0.05, 0.0, 0.0), (0.05, -0.5, 3.0), (0.01, 0.3, 1.5), (0.1, -1, 5)]
)
def test_cornish_fisher_tail_mean_equals_integral(alpha: float, s: float, k: float) -> None:
    integral, _ = integrate.quad(
        lambda u: m.cornish_fisher_z(u, s, k), 0, alpha, limit=200, epsabs=1e-13, epsrel=1e-12
    )
    assert m.cornish_fisher_tail_mean(alpha, s, k) == pytest.approx(integral / alpha, rel=1e-8)
    if s == k == 0:  # the normal expected shortfall
        a = stats.norm.ppf(alpha)
        assert m.cornish_fisher_tail_mean(alpha, 0, 0) == pytest.approx(-stats.norm.pdf(a) / alpha)


def test_cornish_fisher_corrects_a_skewed_distribution() -> None:
    """Gamma(100) has skewness 2/√100 = 0.2 and excess kurtosis 6/100 = 0.06: the Cornish-Fisher quantile
    must be much closer to scipy's exact gamma quantile than the normal one."""
    shape = 100.0
    dist = stats.gamma(shape)
    for alpha in (0.01, 0.05):
        exact = (dist.ppf(alpha) - shape) / math.sqrt(shape)
        cf = m.cornish_fisher_z(alpha, 2 / math.sqrt(shape), 6 / shape)
        assert abs(cf - exact) < 2e-3 < abs(stats.norm.ppf(alpha) - exact) / 10
        exact_tail = integrate.quad(lambda u: (dist.ppf(u) - shape) / math.sqrt(shape), 0, alpha)[0] / alpha
        assert m.cornish_fisher_tail_mean(alpha, 2 / math.sqrt(shape), 6 / shape) == pytest.approx(
            exact_tail, abs=5e-3
        )


def test_var_table_and_orderings(fat_tailed: pd.Series) -> None:
    table = m.var_table(fat_tailed)
    assert list(table.index) == ["historical", "parametric", "cornish_fisher"]
    assert list(table.columns) == ["var_95", "cvar_95", "var_99", "cvar_99"]
    assert (table["cvar_95"] >= table["var_95"]).all() and (table["var_99"] >= table["var_95"]).all()
    assert table.loc["parametric", "var_99"] == pytest.approx(m.var_parametric(fat_tailed, 0.99))
    # fat tails: at 99 % the normal model understates the loss that Cornish-Fisher and history see
    assert table.loc["parametric", "cvar_99"] < min(
        table.loc["historical", "cvar_99"], table.loc["cornish_fisher", "cvar_99"]
    )


def test_beta_against_regression_and_quantstats(fat_tailed: pd.Series, qs) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    bench = fat_tailed
    port = 0.0002 + 1.3 * bench + rng.normal(0, 0.004, len(bench))
    bench_gappy = bench.copy()
    bench_gappy.iloc[::10] = np.nan
    bench_extra = pd.concat([bench_gappy, pd.Series([0.5], index=[pd.Timestamp("2030-01-01")])])
    common = pd.concat([port, bench_gappy], axis=1).dropna()
    slope = stats.linregress(common.iloc[:, 1], common.iloc[:, 0]).slope
    assert m.beta(port, bench_extra) == pytest.approx(slope, rel=1e-10)
    assert m.beta(port, bench_gappy) == pytest.approx(qs.stats.greeks(port, bench_gappy)["beta"], rel=1e-10)
    assert 1.2 < slope < 1.4


def test_downside_deviation(fat_tailed: pd.Series, qs) -> None:  # type: ignore[no-untyped-def]
    r = [0.02, -0.01, 0.03, -0.02, 0.0]
    assert m.downside_deviation(r) == pytest.approx(math.sqrt((0.01**2 + 0.02**2) / 5))
    assert m.downside_deviation(r, mar=0.01) == pytest.approx(math.sqrt((0.01**2 + 0.02**2 + 0.03**2) / 5))
    # quantstats' Sortino is mean / downside deviation (MAR 0, all periods) × √252
    sortino = qs.stats.sortino(fat_tailed, periods=252)
    assert m.downside_deviation(fat_tailed) == pytest.approx(fat_tailed.mean() * math.sqrt(252) / sortino)
    assert m.downside_deviation(fat_tailed, periods_per_year=252) == pytest.approx(
        m.downside_deviation(fat_tailed) * math.sqrt(252)
    )


def test_drawdown_table_by_hand() -> None:
    idx = pd.bdate_range("2024-01-01", periods=9)  # Mon 1 .. Thu 11 January
    eq = pd.Series([100, 110, 105, 99, 112, 111, 115, 100, 101], index=idx, dtype=float)
    t = m.drawdown_table(eq)
    assert len(t) == 3
    worst, second, third = t.iloc[0], t.iloc[1], t.iloc[2]
    # 115 (Jan 9) -> 100 (Jan 10), not recovered by Jan 11
    assert (worst.peak, worst.trough, worst.recovered) == (idx[6], idx[7], False)
    assert pd.isna(worst.recovery) and worst.depth == pytest.approx(100 / 115 - 1)
    assert worst.duration_days == 2 and worst.periods == 2
    # 110 (Jan 2) -> 99 (Jan 4) -> back above at 112 (Jan 5)
    assert (second.peak, second.trough, second.recovery) == (idx[1], idx[3], idx[4])
    assert second.depth == pytest.approx(-0.1) and second.days_to_trough == 2 and second.days_to_recovery == 3
    # 112 (Fri Jan 5) -> 111 (Mon Jan 8) -> 115 (Tue Jan 9): 4 calendar days, 2 rows
    assert (third.peak, third.trough, third.recovery) == (idx[4], idx[5], idx[6])
    assert third.duration_days == 4 and third.periods == 2
    assert m.max_drawdown(eq) == pytest.approx(100 / 115 - 1)
    assert m.drawdown_table(pd.Series([1.0, 2.0, 3.0], index=idx[:3])).empty


def test_drawdown_table_matches_quantstats(fat_tailed: pd.Series, qs) -> None:  # type: ignore[no-untyped-def]
    r = fat_tailed.iloc[:600].copy()
    r.iloc[0] = -0.02  # start with a loss: a drawdown from the starting value
    ours = m.drawdown_table(m.equity_from_returns(r)).sort_values("trough").reset_index(drop=True)
    theirs = qs.stats.drawdown_details(qs.stats.to_drawdown_series(r)).reset_index(drop=True)
    assert len(ours) == len(theirs) > 10
    dates = pd.DatetimeIndex(m.equity_from_returns(r).index)
    pos = {d: i for i, d in enumerate(dates)}
    for o, t in zip(ours.itertuples(), theirs.itertuples(), strict=True):
        assert o.trough == pd.Timestamp(t.valley)
        assert o.depth * 100 == pytest.approx(t._5, rel=1e-9)  # "max drawdown" in percent
        # quantstats' start is the first day under water (the day after our peak) and its end the last day
        # under water (the day before our recovery) or the last date
        assert dates[pos[o.peak] + 1] == pd.Timestamp(t.start)
        end = dates[pos[o.recovery] - 1] if o.recovered else dates[-1]
        assert end == pd.Timestamp(t.end)


def test_errors() -> None:
    with pytest.raises(InsufficientDataError):
        m.var_historical([0.01, np.nan])
    with pytest.raises(ConfigError, match="confidence"):
        m.var_parametric([0.01, 0.02, 0.03], confidence=95)
    with pytest.raises(ConfigError, match="method"):
        m.value_at_risk([0.01, 0.02, 0.03], method="monte_carlo")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positive"):
        m.drawdown_table(pd.Series([1.0, -1.0], index=pd.bdate_range("2024-01-01", periods=2)))
