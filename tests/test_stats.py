"""quantlake.stats against independent references: plain-Python loops of the textbook (empyrical/quantstats
style) formulas written here, scipy's moment estimators, vectorbt's own return kernels, and the numerical
example published with the deflated Sharpe ratio."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from quantlake import stats


def _loop_mean_std(r: list[float]) -> tuple[float, float]:
    n = len(r)
    mean = sum(r) / n
    var = sum((x - mean) ** 2 for x in r) / (n - 1)
    return mean, math.sqrt(var)


def _ref_sharpe(r: list[float], ppy: float) -> float:
    mean, sd = _loop_mean_std(r)
    return mean / sd * math.sqrt(ppy)


def _ref_sortino(r: list[float], ppy: float) -> float:
    # quantstats: downside = sqrt(sum(r[r<0]^2) / len(r)); sortino = mean / downside * sqrt(ppy)
    downside = math.sqrt(sum(x * x for x in r if x < 0) / len(r))
    return (sum(r) / len(r)) / downside * math.sqrt(ppy)


def _ref_max_dd(r: list[float]) -> float:
    equity, peak, worst = 1.0, 1.0, 0.0
    for x in r:
        equity *= 1.0 + x
        peak = max(peak, equity)
        worst = min(worst, equity / peak - 1.0)
    return worst


def _ref_cagr(r: list[float], ppy: float) -> float:
    growth = 1.0
    for x in r:
        growth *= 1.0 + x
    return growth ** (ppy / len(r)) - 1.0


@pytest.fixture(scope="module")
def panel() -> np.ndarray:
    rng = np.random.default_rng(11)
    r = rng.standard_t(4, (600, 5)) * 0.01 + np.array([0.0004, -0.0002, 0.0, 0.001, 0.0003])
    r[:150, 2] = np.nan  # a symbol that starts later
    r[300, 4] = np.nan  # a missing bar
    return r


def test_one_series_equals_plain_loops() -> None:
    r = [0.01, -0.02, 0.015, 0.003, -0.007, 0.012, -0.001]
    assert stats.sharpe_ratio(r) == pytest.approx(_ref_sharpe(r, 252), rel=1e-12)
    assert stats.sharpe_ratio(r, periods_per_year=52) == pytest.approx(_ref_sharpe(r, 52), rel=1e-12)
    assert stats.sortino_ratio(r) == pytest.approx(_ref_sortino(r, 252), rel=1e-12)
    assert stats.max_drawdown(r) == pytest.approx(_ref_max_dd(r), rel=1e-12)
    assert stats.annualized_return(r) == pytest.approx(_ref_cagr(r, 252), rel=1e-12)
    assert stats.annualized_volatility(r, 12) == pytest.approx(_loop_mean_std(r)[1] * math.sqrt(12))
    assert stats.calmar_ratio(r) == pytest.approx(_ref_cagr(r, 252) / abs(_ref_max_dd(r)))
    assert stats.total_return(r) == pytest.approx(math.prod(1 + x for x in r) - 1)
    assert isinstance(stats.sharpe_ratio(pd.Series(r)), float)


def test_columns_equal_each_column_alone(panel: np.ndarray) -> None:
    """2-D input (axis 0 = time): each column measured over its own finite returns, as the 1-D call."""
    for fn in (stats.sharpe_ratio, stats.sortino_ratio, stats.annualized_return, stats.annualized_volatility,
               stats.calmar_ratio, stats.probabilistic_sharpe_ratio):
        cols = fn(panel)
        assert cols.shape == (5,)
        for k in range(5):
            alone = [float(x) for x in panel[:, k] if np.isfinite(x)]
            assert cols[k] == pytest.approx(fn(alone), rel=1e-12), fn.__name__
    for k in range(5):
        alone = [float(x) for x in panel[:, k] if np.isfinite(x)]
        assert stats.sharpe_ratio(panel)[k] == pytest.approx(_ref_sharpe(alone, 252), rel=1e-10)
        assert stats.max_drawdown(panel)[k] == pytest.approx(_ref_max_dd(alone), rel=1e-10)
    assert stats.sharpe_ratio(pd.DataFrame(panel)).shape == (5,)


def test_columns_are_bitwise_the_1d_results_in_any_column_order(panel: np.ndarray) -> None:
    """The sweep measures thousands of columns at once: a column's figures must not move by a bit with its
    position, its neighbours or the column count; performance() gives each single function's value."""
    fns = {"sharpe": stats.sharpe_ratio, "sortino": stats.sortino_ratio, "total_return": stats.total_return,
           "annualized_return": stats.annualized_return, "volatility": stats.annualized_volatility,
           "calmar": stats.calmar_ratio, "max_drawdown": stats.max_drawdown}  # fmt: skip
    wide = np.hstack([panel, np.random.default_rng(3).normal(0.0, 0.02, (panel.shape[0], 40))])
    perm = np.random.default_rng(5).permutation(wide.shape[1])
    together = stats.performance(wide[:, perm])
    for name, fn in fns.items():
        shuffled = fn(wide[:, perm])
        for j, k in enumerate(perm):
            alone = fn(wide[:, k])
            assert shuffled[j] == alone or (math.isnan(alone) and math.isnan(shuffled[j])), name
            assert together[name][j] == alone or (math.isnan(alone) and math.isnan(together[name][j])), name
    m_all, m_one = stats.moments(wide[:, perm]), stats.moments(wide[:, perm[3]])
    assert (m_all.skew[3], m_all.kurtosis[3], m_all.std[3]) == (m_one.skew[0], m_one.kurtosis[0], m_one.std[0])


def test_quantile_is_numpys_linear_quantile_bitwise() -> None:
    """A second implementation: numpy's np.quantile (default linear method) on each column's finite values,
    with ties, both tails, tiny and odd lengths."""
    rng = np.random.default_rng(8)
    for n in (1, 2, 3, 7, 40, 41, 1001):
        r = np.round(rng.standard_t(3, (n, 6)) * 0.01, 4)  # rounding makes ties
        for q in (0.0, 0.01, 0.05, 0.25, 0.5, 0.7, 0.95, 1.0):
            np.testing.assert_array_equal(stats.quantile(r, q), np.quantile(r, q, axis=0))
    r = rng.normal(0.0, 0.01, (300, 3))
    r[:50, 1] = np.nan
    assert stats.quantile(r, 0.05)[1] == np.quantile(r[50:, 1], 0.05)
    assert stats.quantile(r[:, 0], 0.05) == np.quantile(r[:, 0], 0.05)
    assert math.isnan(stats.quantile(np.full(4, np.nan), 0.05))
    with pytest.raises(ValueError, match="within"):
        stats.quantile(r, 1.5)


def test_against_vectorbt_return_kernels(panel: np.ndarray) -> None:
    """A second engine: vectorbt's returns kernels (what the sweep used before) on NaN-free columns."""
    from vectorbt.returns import dispatch as rd

    r = np.ascontiguousarray(panel[:, [0, 1, 3]])
    np.testing.assert_allclose(stats.sharpe_ratio(r), rd.sharpe_ratio(r, 252.0, 0.0, 1), rtol=1e-10)
    np.testing.assert_allclose(stats.sortino_ratio(r), rd.sortino_ratio(r, 252.0, 0.0), rtol=1e-10)
    np.testing.assert_allclose(stats.max_drawdown(r), rd.max_drawdown(r), rtol=1e-10)
    np.testing.assert_allclose(stats.annualized_return(r), rd.annualized_return(r, 252.0), rtol=1e-10)
    np.testing.assert_allclose(stats.annualized_volatility(r), rd.annualized_volatility(r, 252.0, 2.0, 1),
                               rtol=1e-10)
    np.testing.assert_allclose(stats.calmar_ratio(r), rd.calmar_ratio(r, 252.0), rtol=1e-10)


def test_degenerate_series() -> None:
    assert stats.sharpe_ratio(np.full(10, 0.01)) == 0.0  # no volatility: 0, not inf
    assert stats.sharpe_ratio([0.01]) == 0.0
    assert stats.sortino_ratio(np.full(10, 0.01)) == 0.0
    assert math.isnan(stats.sortino_ratio([0.01, 0.02, 0.03]))  # no downside
    assert stats.max_drawdown([0.01, 0.02]) == 0.0
    assert stats.max_drawdown([-0.2, 0.1]) == pytest.approx(-0.2)  # a loss from the start counts
    assert stats.max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(-0.5)
    assert stats.annualized_return([-1.0, 0.5]) == -1.0
    assert math.isnan(stats.annualized_return([]))
    assert stats.probabilistic_sharpe_ratio(np.full(10, 0.01)) == 0.0
    assert stats.deflated_sharpe_ratio([0.01, -0.01], n_trials=3) == 0.0
    assert math.isnan(stats.calmar_ratio([0.01, 0.02]))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        stats.sharpe_ratio(np.zeros((2, 2, 2)))


def test_moments_are_scipy_population_estimators(panel: np.ndarray) -> None:
    m = stats.moments(panel)
    for k in range(5):
        x = panel[np.isfinite(panel[:, k]), k]
        assert m.skew[k] == pytest.approx(st.skew(x), rel=1e-10)
        assert m.kurtosis[k] == pytest.approx(st.kurtosis(x, fisher=False), rel=1e-10)
        assert m.std[k] == pytest.approx(np.std(x, ddof=1), rel=1e-12)


def test_drawdown_of_equity() -> None:
    eq = pd.Series([100.0, 120.0, 90.0, 130.0, 65.0])
    assert stats.drawdown(eq).tolist() == pytest.approx([0.0, 0.0, -0.25, 0.0, -0.5])
    assert stats.max_drawdown_of_equity(eq) == pytest.approx(-0.5)
    assert stats.max_drawdown_of_equity([100.0, np.nan, 80.0]) == pytest.approx(-0.2)


# ---------------------------------------------------------------------------------------------- PSR / DSR
def test_dsr_published_example() -> None:
    """Bailey & López de Prado (2014), 'The Deflated Sharpe Ratio', numerical example: annualized SR 2.5 over
    five years of daily returns (T = 1250, 250 days a year), skewness −3, kurtosis 10, N = 100 trials whose
    annualized Sharpe ratios have variance 1/2: SR₀ = 0.1132 per day and DSR = 0.9004."""
    d = stats.deflated_sharpe_from_stats(2.5 / math.sqrt(250), 0.5 / 250, 100, 1250, skew=-3, kurtosis=10)
    assert d.sr0 == pytest.approx(0.1132, abs=5e-5)
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)


def test_psr_against_scipy_written_formula() -> None:
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, 800) * 0.01 + 0.0006
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = st.skew(r), st.kurtosis(r, fisher=False)
    bench_annual = 0.5
    z = (sr - bench_annual / math.sqrt(252)) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert stats.probabilistic_sharpe_ratio(r, bench_annual) == pytest.approx(st.norm.cdf(z), rel=1e-10)
    # normal returns: the closed form of the 2012 paper
    assert stats.psr_from_moments(0.08, 0.0, 500) == pytest.approx(
        st.norm.cdf(0.08 * math.sqrt(499) / math.sqrt(1 + 0.08**2 / 2)), rel=1e-12
    )
    assert stats.psr_from_moments(0.1, 0.1, 500) == pytest.approx(0.5)
    assert math.isnan(stats.psr_from_moments(0.5, 0.0, 100, skew=10.0, kurtosis=3.0))  # variance term < 0


def test_expected_max_sharpe_against_simulation() -> None:
    rng = np.random.default_rng(1)
    for n in (10, 100):
        simulated = rng.normal(0, 0.3, (20_000, n)).max(axis=1).mean()
        assert stats.expected_max_sharpe(n, 0.09) == pytest.approx(simulated, rel=0.03)
    assert stats.expected_max_sharpe(1, 0.09) == 0.0


def test_dsr_of_returns_by_hand_and_column_wise() -> None:
    rng = np.random.default_rng(7)
    r = rng.normal(0.0005, 0.01, (1000, 6))
    srs = r.mean(axis=0) / r.std(axis=0, ddof=1)
    sr0 = stats.expected_max_sharpe(6, float(np.var(srs, ddof=1)))
    by_hand = [
        stats.psr_from_moments(srs[k], sr0, 1000, st.skew(r[:, k]), st.kurtosis(r[:, k], fisher=False))
        for k in range(6)
    ]
    np.testing.assert_allclose(stats.deflated_sharpe_ratio(r), by_hand, rtol=1e-10)
    # one series with the trials' annualized Sharpe ratios given
    trial = srs * math.sqrt(252)
    assert stats.deflated_sharpe_ratio(r[:, 2], n_trials=6, trial_sharpes=trial) == pytest.approx(by_hand[2])
    # more trials deflate more; one trial is the PSR against 0
    assert stats.deflated_sharpe_ratio(r[:, 0], n_trials=1) == pytest.approx(
        stats.probabilistic_sharpe_ratio(r[:, 0]), rel=1e-12
    )
    assert stats.deflated_sharpe_ratio(r[:, 0], n_trials=1000) < stats.deflated_sharpe_ratio(r[:, 0], n_trials=10)
