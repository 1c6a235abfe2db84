"""Out-of-sample statistics behind the promotion gate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantlake import stats as qstats
from tracking import stats


def test_gate_metrics_are_quantlake_stats_of_the_strategy_returns() -> None:
    """The OOS figures are the one implementation's (quantlake.stats) on the book's daily returns."""
    rng = np.random.default_rng(5)
    idx = pd.bdate_range("2021-01-04", periods=300)
    pos = pd.DataFrame(np.sign(rng.normal(size=(300, 3))), index=idx, columns=list("ABC"))
    ret = pd.DataFrame(rng.normal(0.0005, 0.01, (300, 3)), index=idx, columns=list("ABC"))
    r = stats.strategy_returns(pos, ret, cost_bps=5)
    m = stats.oos_metrics(pos, ret, cost_bps=5, n_trials=20)
    assert m[stats.OOS_SHARPE] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert m[stats.OOS_DSR] == pytest.approx(qstats.deflated_sharpe_ratio(r, 20))
    assert m[stats.OOS_DSR] < qstats.deflated_sharpe_ratio(r, 1)  # deflation punishes trials
    assert m[stats.OOS_MAX_DRAWDOWN] == pytest.approx(qstats.max_drawdown(r))


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
