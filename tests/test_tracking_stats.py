"""Out-of-sample statistics behind the promotion gate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tracking import stats


def test_sharpe_is_scale_free_and_signed() -> None:
    r = np.array([0.01, -0.004, 0.006, 0.002, -0.001])
    s = stats.sharpe_ratio(r)
    assert s == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert stats.sharpe_ratio(2 * r) == pytest.approx(s)
    assert stats.sharpe_ratio(-r) == pytest.approx(-s)
    assert stats.sharpe_ratio(np.full(10, 0.01)) == 0.0  # no volatility
    assert stats.sharpe_ratio([0.01]) == 0.0


def test_max_drawdown() -> None:
    assert stats.max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(-0.5)
    assert stats.max_drawdown([-0.2, 0.1]) == pytest.approx(-0.2)  # a loss from the start counts
    assert stats.max_drawdown([0.01, 0.02]) == 0.0


def test_psr_and_expected_max_sharpe() -> None:
    assert stats.probabilistic_sharpe_ratio(0.1, 0.1, 500) == pytest.approx(0.5)
    assert stats.probabilistic_sharpe_ratio(0.1, 0.0, 1000) > stats.probabilistic_sharpe_ratio(0.1, 0.0, 100)
    assert stats.expected_max_sharpe(1, 0.04) == 0.0
    # (1-γ)Φ⁻¹(0.9) + γΦ⁻¹(1-1/(10e)) = 1.5748 standard deviations for 10 trials
    assert stats.expected_max_sharpe(10, 0.04) == pytest.approx(0.2 * 1.5748, abs=1e-3)
    assert stats.expected_max_sharpe(1000, 0.04) > stats.expected_max_sharpe(10, 0.04)


def test_deflation_punishes_many_trials() -> None:
    rng = np.random.default_rng(7)
    skilled = rng.normal(0.002, 0.01, 1000)  # per-period SR ≈ 0.2
    assert stats.deflated_sharpe_ratio(skilled, n_trials=1) > 0.99
    # the same record picked as the best of 1,000 trials whose Sharpe ratios spread with sd 0.1
    spread = rng.normal(0.0, 0.1, 1000)
    assert stats.deflated_sharpe_ratio(skilled, n_trials=1000, trial_sharpes=spread) < 0.5
    noise = rng.normal(0.0, 0.01, 1000)
    assert stats.deflated_sharpe_ratio(noise, n_trials=50) < 0.5


def test_strategy_returns_costs_and_trades() -> None:
    idx = pd.to_datetime(["2021-01-04", "2021-01-05", "2021-01-06"])
    pos = pd.DataFrame({"A": [1.0, 1.0, 0.0], "B": [0.0, -1.0, -1.0]}, index=idx)
    ret = pd.DataFrame({"A": [0.01, 0.02, 0.03], "B": [0.01, -0.02, 0.04]}, index=idx)
    gross = stats.strategy_returns(pos, ret)
    assert gross.tolist() == pytest.approx([0.005, 0.02, -0.02])
    net = stats.strategy_returns(pos, ret, cost_bps=10)
    # turnover per day (mean over symbols): 0.5 (enter A), 0.5 (enter B short), 0.5 (exit A)
    assert (gross - net).tolist() == pytest.approx([0.0005, 0.0005, 0.0005])
    assert stats.count_trades(pos) == 3
    m = stats.oos_metrics(pos, ret, n_trials=3)
    assert m[stats.OOS_TRADES] == 3 and m[stats.OOS_N_OBS] == 3 and m[stats.N_TRIALS] == 3
    assert m[stats.OOS_TOTAL_RETURN] == pytest.approx(1.005 * 1.02 * 0.98 - 1)
