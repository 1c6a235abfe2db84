"""Shared research statistics (``backtests.research``): overfitting statistics (published example, closed forms,
brute-force CSCV, ties at the median), Monte Carlo properties (exact identities, expectations, an exact
risk-of-ruin recursion, independent streams per method) and walk-forward window arithmetic."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backtests.research.montecarlo import equity_paths, max_drawdowns, monte_carlo
from backtests.research.overfitting import (
    deflated_sharpe,
    deflated_sharpe_from_stats,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe,
    sharpe_ratio,
)
from backtests.research.specs import MonteCarloSpec, WalkForwardSpec
from backtests.research.walkforward import walk_forward, windows
from quantlake.errors import UserInputError


# ------------------------------------------------------------------------------------ deflated Sharpe
def test_dsr_matches_the_published_example() -> None:
    """Bailey & López de Prado (2014), numerical example: annualized SR 2.5 over 5 years of daily returns
    (T = 1250), skewness -3, kurtosis 10, N = 100 trials with variance 1/2 of their annualized Sharpe ratios:
    SR₀ = 0.1132 per day and DSR = 0.9004."""
    d = deflated_sharpe_from_stats(
        sharpe=2.5 / math.sqrt(250), sharpe_variance=0.5 / 250, n_trials=100, n_obs=1250, skew=-3, kurtosis=10
    )
    assert d.sr0 == pytest.approx(0.1132, abs=5e-5)
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)


def test_psr_closed_form_for_normal_returns() -> None:
    sr, t = 0.08, 500
    expected = stats.norm.cdf(sr * math.sqrt(t - 1) / math.sqrt(1 + sr**2 / 2))
    assert probabilistic_sharpe(sr, 0.0, t, 0.0, 3.0) == pytest.approx(expected, rel=1e-12)
    assert probabilistic_sharpe(sr, sr, t, 0.0, 3.0) == pytest.approx(0.5)


def test_expected_max_sharpe_against_simulation() -> None:
    rng = np.random.default_rng(1)
    for n in (10, 100):
        simulated = rng.normal(0, 0.3, (20_000, n)).max(axis=1).mean()
        assert expected_max_sharpe(0.09, n) == pytest.approx(simulated, rel=0.03)  # an approximation
    assert expected_max_sharpe(0.09, 1) == 0.0


def test_deflated_sharpe_from_returns_uses_the_sample_moments() -> None:
    rng = np.random.default_rng(2)
    r = rng.standard_t(5, (1000, 8)) * 0.01 + 0.0005
    d = deflated_sharpe(r, 3)
    assert d.sharpe == pytest.approx(r[:, 3].mean() / r[:, 3].std(ddof=1))
    assert d.skew == pytest.approx(stats.skew(r[:, 3]))
    assert d.kurtosis == pytest.approx(stats.kurtosis(r[:, 3], fisher=False))
    srs = r.mean(axis=0) / r.std(axis=0, ddof=1)
    assert d.sharpe_variance == pytest.approx(srs.var(ddof=1))
    assert d.n_trials == 8 and d.n_obs == 1000
    assert d.dsr < d.psr0  # deflating for 8 trials can only lower the probability


def test_deflated_sharpe_is_bitwise_the_same_in_any_trial_order() -> None:
    """A reproduced sweep may list its trials in another order: DSR is a function of the set of trials."""
    rng = np.random.default_rng(7)
    r = rng.normal(0.0004, 0.01, (500, 6))
    base = deflated_sharpe(r, 2)
    for _ in range(40):
        perm = rng.permutation(6)
        d = deflated_sharpe(r[:, perm], int(np.flatnonzero(perm == 2)[0]))
        assert (d.sharpe_variance, d.sr0, d.dsr) == (base.sharpe_variance, base.sr0, base.dsr)


# ------------------------------------------------------------------------------------------------ PBO
def brute_force_pbo(r: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """CSCV written out directly from the paper: loop over splits, concatenate blocks, rank out of sample."""
    size = r.shape[0] // s
    blocks = [r[i * size : (i + 1) * size] for i in range(s)]
    logits = []
    for ins in itertools.combinations(range(s), s // 2):
        is_rows = np.vstack([blocks[i] for i in ins])
        oos_rows = np.vstack([blocks[i] for i in range(s) if i not in ins])
        sr_is = is_rows.mean(0) / is_rows.std(0, ddof=1)
        sr_oos = oos_rows.mean(0) / oos_rows.std(0, ddof=1)
        best = int(np.argmax(sr_is))
        rank = stats.rankdata(sr_oos)[best]
        w = rank / (r.shape[1] + 1)
        logits.append(math.log(w / (1 - w)))
    arr = np.array(logits)
    return float((arr <= 0).mean()), arr  # R pbo / pypbo: phi = share of lambda <= 0


def test_pbo_equals_a_brute_force_cscv() -> None:
    rng = np.random.default_rng(4)
    r = rng.normal(0.0002, 0.01, (600, 7))
    res = pbo_cscv(r, n_splits=6)
    pbo, logits = brute_force_pbo(r, 6)
    assert res.n_combinations == math.comb(6, 3) == len(logits)
    np.testing.assert_allclose(res.logits, logits, rtol=1e-9)
    assert res.pbo == pbo


def test_pbo_counts_ties_at_the_median_as_overfit() -> None:
    """λ = 0 exactly when the in-sample winner sits at the out-of-sample median (rank (N+1)/2).  The common
    CSCV implementations (R ``pbo``: ``sum(lambda <= 0)``; ``pypbo``: ``1.0 if lam <= 0``) count those splits
    as overfit; counting only λ < 0 reported PBO 0 for trials that cannot be told apart."""
    rng = np.random.default_rng(0)
    same = np.repeat(rng.normal(0.001, 0.01, (400, 1)), 3, axis=1)  # three identical trials: every OOS rank ties
    res = pbo_cscv(same, n_splits=4)
    assert res.n_combinations == 6 and np.all(res.logits == 0.0)
    assert res.pbo == 1.0
    # odd N, two halves: trial 0 wins the first half and is the middle one in the second, trial 1 the other
    # way round, trial 2 is last in both (same noise, so the Sharpe ratios order like the drifts)
    t = 400
    half = np.arange(t) < t // 2
    base = rng.normal(0, 0.01, t)
    r = np.column_stack([base + np.where(half, 0.003, 0.002), base + np.where(half, 0.002, 0.003), base + 0.001])
    res = pbo_cscv(r, n_splits=2)
    assert sorted(res.logits.round(12)) == [0.0, 0.0]  # the winner in each half is the median in the other
    assert res.pbo == 1.0


def test_pbo_extremes_by_construction() -> None:
    t = 400
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, (t, 2))
    # trial 0 is good in the first half and bad in the second; trial 1 the other way round: with two
    # blocks the in-sample winner is always the out-of-sample loser
    flip = np.where(np.arange(t)[:, None] < t // 2, [[0.01, -0.01]], [[-0.01, 0.01]])
    assert pbo_cscv(noise * 0.1 + flip, n_splits=2).pbo == 1.0
    # one trial dominates every block: never overfit
    dominant = noise.copy()
    dominant[:, 0] += 0.02
    assert pbo_cscv(dominant, n_splits=8).pbo == 0.0
    assert math.isnan(pbo_cscv(noise[:10], n_splits=8).pbo)  # fewer rows than 2 per block
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(noise, n_splits=5)


def test_sharpe_ratio_of_a_flat_column_is_zero() -> None:
    r = np.column_stack([np.zeros(50), np.linspace(-0.01, 0.02, 50)])
    srs = sharpe_ratio(r)
    assert srs[0] == 0.0 and srs[1] == pytest.approx(r[:, 1].mean() / r[:, 1].std(ddof=1))


# ---------------------------------------------------------------------------------------- Monte Carlo
def test_equity_paths_and_drawdowns_by_hand() -> None:
    paths = equity_paths(np.array([[0.1, -0.2, 0.05]]), fraction=0.5)
    np.testing.assert_allclose(paths[0], [1.0, 1.05, 1.05 * 0.9, 1.05 * 0.9 * 1.025])
    assert max_drawdowns(paths)[0] == pytest.approx(-0.1)
    assert equity_paths(np.array([[-2.0]]), 1.0)[0, -1] == 0.0  # never below zero


def test_shuffle_keeps_final_equity_and_varies_drawdowns() -> None:
    trades = np.array([0.08, -0.05, 0.12, -0.09, 0.03, -0.02, 0.07, -0.11, 0.04, 0.06])
    mc = monte_carlo(trades, MonteCarloSpec(n_sims=500, methods=["shuffle"], seed=3), fraction=1.0)
    row = mc.summary.loc["shuffle"]
    final = np.prod(1 + trades)
    assert row["final_p05"] == pytest.approx(final) and row["final_p95"] == pytest.approx(final)
    assert mc.observed["final"] == pytest.approx(final)
    assert row["mdd_p05"] < row["mdd_p95"]  # order matters for the drawdown
    assert mc.bands["shuffle"].shape == (len(trades) + 1, 5)


def test_bootstrap_mean_final_equity_is_the_product_of_means() -> None:
    """For trades drawn independently with replacement E[Π(1 + f r)] = (1 + f·mean r)^n exactly."""
    rng = np.random.default_rng(8)
    trades = rng.normal(0.01, 0.05, 40)
    f, n_sims = 0.5, 40_000
    mc = monte_carlo(trades, MonteCarloSpec(n_sims=n_sims, methods=["bootstrap"], seed=1), fraction=f)
    expected = (1 + f * trades.mean()) ** len(trades)
    # standard error from one more independent sample of the same size
    paths = equity_paths(trades[rng.integers(0, 40, (n_sims, 40))], f)[:, -1]
    se = paths.std() / math.sqrt(n_sims)
    assert abs(mc.summary.loc["bootstrap", "final_mean"] - expected) < 4 * se


def test_risk_of_ruin_against_an_exact_recursion() -> None:
    """Trades of +10 % or -10 % (equally likely), all capital each time, 30 trades, ruin at 50 %: the exact
    probability of touching the ruin level comes from a recursion over the number of wins."""
    trades = np.array([0.1, -0.1])
    n, ruin = 30, 0.5
    alive = {0: 1.0}  # wins so far -> probability of not having been ruined yet
    ruined = 0.0
    for step in range(1, n + 1):
        nxt: dict[int, float] = {}
        for w, p in alive.items():
            for dw in (1, 0):
                wins = w + dw
                eq = 1.1**wins * 0.9 ** (step - wins)
                if eq <= ruin:
                    ruined += p / 2
                else:
                    nxt[wins] = nxt.get(wins, 0.0) + p / 2
        alive = nxt
    seq = np.resize(trades, n)  # 30 trades: 15 wins, 15 losses -> the bootstrap draws each with p = 1/2
    mc = monte_carlo(seq, MonteCarloSpec(n_sims=40_000, methods=["bootstrap"], ruin_level=ruin, seed=2), 1.0)
    est = mc.summary.loc["bootstrap", "risk_of_ruin"]
    se = math.sqrt(ruined * (1 - ruined) / 40_000)
    assert 0.05 < ruined < 0.95
    assert abs(est - ruined) < 4 * se


def test_parametric_draws_match_the_trades_moments_and_extremes() -> None:
    trades = np.array([0.02, -0.01, 0.03, -0.02, 0.01, 0.0])
    mc = monte_carlo(trades, MonteCarloSpec(n_sims=20_000, methods=["parametric"], seed=0), 1.0)
    expected = (1 + trades.mean()) ** len(trades)
    assert mc.summary.loc["parametric", "final_mean"] == pytest.approx(expected, rel=2e-3)
    losers = monte_carlo(np.full(5, -0.6), MonteCarloSpec(n_sims=50, methods=["bootstrap"]), 1.0)
    assert losers.summary.loc["bootstrap", "risk_of_ruin"] == 1.0
    assert losers.summary.loc["bootstrap", "prob_loss"] == 1.0
    winners = monte_carlo(np.array([0.01, 0.02]), MonteCarloSpec(n_sims=50, methods=["bootstrap"]), 1.0)
    assert winners.summary.loc["bootstrap", "risk_of_ruin"] == 0.0


def test_monte_carlo_methods_draw_independent_streams() -> None:
    """A method's result depends on the trades, the seed and its own settings only: not on which other
    methods are listed, nor in which order (each has its own seeded stream)."""
    trades = np.array([0.05, -0.03, 0.02, 0.04, -0.06, 0.01])
    forward = monte_carlo(trades, MonteCarloSpec(n_sims=300, methods=["bootstrap", "shuffle", "parametric"], seed=4), 0.5)
    backward = monte_carlo(trades, MonteCarloSpec(n_sims=300, methods=["parametric", "shuffle", "bootstrap"], seed=4), 0.5)
    pd.testing.assert_frame_equal(forward.summary.sort_index(), backward.summary.sort_index())
    alone = monte_carlo(trades, MonteCarloSpec(n_sims=300, methods=["parametric"], seed=4), 0.5)
    pd.testing.assert_series_equal(alone.summary.loc["parametric"], forward.summary.loc["parametric"])
    for method in ("bootstrap", "shuffle", "parametric"):
        pd.testing.assert_frame_equal(forward.bands[method], backward.bands[method])
    other_seed = monte_carlo(trades, MonteCarloSpec(n_sims=300, methods=["parametric"], seed=5), 0.5)
    assert other_seed.summary.loc["parametric", "final_mean"] != alone.summary.loc["parametric", "final_mean"]


def test_monte_carlo_is_seeded_and_needs_two_trades() -> None:
    spec = MonteCarloSpec(n_sims=200, seed=11)
    a = monte_carlo(np.array([0.05, -0.03, 0.02]), spec, 0.3).summary
    b = monte_carlo(np.array([0.05, -0.03, 0.02]), spec, 0.3).summary
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(UserInputError, match="1 closed trade"):
        monte_carlo(np.array([0.05, np.nan]), spec, 1.0)


# --------------------------------------------------------------------------------------- walk-forward
def test_rolling_and_anchored_windows() -> None:
    spec = WalkForwardSpec(mode="rolling", train_bars=300, test_bars=200)
    got = [(w.is_start, w.is_end, w.oos_start, w.oos_end) for w in windows(1000, spec)]
    assert got == [(0, 300, 300, 500), (200, 500, 500, 700), (400, 700, 700, 900), (600, 900, 900, 1000)]
    anchored = windows(1000, spec.model_copy(update={"mode": "anchored"}))
    assert [(w.is_start, w.is_end) for w in anchored] == [(0, 300), (0, 500), (0, 700), (0, 900)]
    overlapping = windows(1000, spec.model_copy(update={"step_bars": 100}))
    assert [w.oos_start for w in overlapping] == [300, 400, 500, 600, 700, 800, 900]
    with pytest.raises(UserInputError, match="train_bars: 1000 in-sample bars leave no out-of-sample"):
        windows(1000, WalkForwardSpec(train_bars=1000, test_bars=50))


def test_walk_forward_chooses_in_sample_and_stitches_out_of_sample() -> None:
    """Combination 0 earns in the first half and loses in the second, 1 earns in the second, 2 never: a window
    is judged on its in-sample rows only, so the first window after the switch still picks 0 and pays."""
    rng = np.random.default_rng(6)
    n = 1000
    r = rng.normal(0, 0.005, (n, 3))
    r[: n // 2, 0] += 0.004
    r[n // 2 :, 0] -= 0.004
    r[n // 2 :, 1] += 0.004
    frame = pd.DataFrame(r, index=pd.bdate_range("2010-01-01", periods=n), columns=[10, 11, 12])
    wf = walk_forward(frame, WalkForwardSpec(train_bars=250, test_bars=250), "sharpe")
    w = wf.windows
    assert w["combo"].tolist() == [10, 10, 11]  # windows IS [0,250) [250,500) [500,750)
    pieces = [frame.iloc[a:b][c] for (a, b), c in zip([(250, 500), (500, 750), (750, 1000)], w["combo"], strict=True)]
    pd.testing.assert_series_equal(wf.oos_returns, pd.concat(pieces), check_names=False)
    np.testing.assert_allclose(w["degradation"], w["oos_sharpe"] - w["is_sharpe"])
    assert w.loc[1, "oos_sharpe"] < 0 < w.loc[1, "is_sharpe"]  # the regime change costs window 1
    exp_sr = wf.oos_returns.mean() / wf.oos_returns.std(ddof=1) * math.sqrt(252)
    assert wf.oos_metrics["sharpe"] == pytest.approx(exp_sr, rel=1e-9)
    assert wf.oos_metrics["total_return"] == pytest.approx(np.prod(1 + wf.oos_returns) - 1, rel=1e-9)
    assert w.loc[0, "is_start"] == frame.index[0] and w.loc[2, "oos_end"] == frame.index[-1]
