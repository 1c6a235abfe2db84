"""Model monitoring: PSI against hand-computed and exact-binned references; a champion whose live inputs
shift is retrained and its new version goes through the promotion gate (never promoted past a failing one);
paper performance far below the backtest triggers too."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from test_tracking_ml import SMALL, store, synthetic_bars  # noqa: F401  (store: the MLflow store fixture)

from quantlake.errors import UserInputError
from tracking.ml.psi import feature_drift, psi


def test_psi_matches_a_hand_computation() -> None:
    expected = np.arange(100.0)  # quartile edges 24.75 / 49.5 / 74.25: 25 % in each bin
    actual = np.repeat([5.0, 30.0, 60.0, 90.0], [10, 20, 30, 40])  # shares 0.1 / 0.2 / 0.3 / 0.4
    by_hand = sum((a - 0.25) * math.log(a / 0.25) for a in (0.1, 0.2, 0.3, 0.4))
    assert psi(expected, actual, bins=4) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.2282, abs=1e-4)
    assert psi(expected, expected, bins=4) == 0.0


def test_psi_of_a_shifted_normal_matches_the_exact_binned_value() -> None:
    rng = np.random.default_rng(7)
    train, live, same = rng.normal(0, 1, 200_000), rng.normal(0.5, 1, 200_000), rng.normal(0, 1, 200_000)
    z = norm.ppf(np.linspace(0, 1, 11))  # the deciles of N(0, 1); outer edges +-inf
    a = np.diff(norm.cdf(z - 0.5))  # exact shares of N(0.5, 1) in those bins
    exact = float(np.sum((a - 0.1) * np.log(a / 0.1)))
    assert psi(train, live) == pytest.approx(exact, abs=0.005)
    assert 0.2 < exact < 0.25  # below the continuous limit d^2 = 0.25 (binning loses information)
    assert psi(train, same) < 0.002


def test_psi_edge_cases() -> None:
    const = np.full(50, 3.0)
    assert psi(const, const) == 0.0
    assert psi(const, np.full(50, 4.0)) > 5  # every live value beyond the training's only value
    with pytest.raises(UserInputError, match=r"training 50, live 0"):
        psi(const, [np.nan, np.nan])


def test_psi_of_a_discrete_feature_compares_distributions_not_grids() -> None:
    """Cross-sectional ranks are uniform on [0, 1] over any universe, but take the values k/7 over 8 symbols
    and k/4 over 5: point counts in one-value quantile bins read that as PSI ~5 (the demo's xs_rank_*)."""
    rng = np.random.default_rng(11)
    grid8, grid5 = np.arange(8) / 7, np.arange(5) / 4
    train = np.r_[np.tile(grid8, 2_000), np.full(3, 0.5)]  # 2,000 days of 8 ranks (+ three tied-average ranks)
    assert psi(train, np.tile(grid5, 60)) < 0.1  # the same uniform rank over a universe of 5
    assert psi(train, rng.choice(grid8, 300)) < 0.1  # a sample of the same distribution
    assert psi(train, np.r_[rng.choice(grid8, 299), 0.5]) < 0.1  # ... that holds one tied rank
    assert psi(train, rng.choice(grid8, 300, p=np.linspace(2, 0, 8) / 8)) > 0.25  # low ranks twice as common
    assert psi(train, np.tile(grid5[:3], 100)) > 1  # ranks over 5 symbols, never above the median
    assert psi(train, np.full(300, 0.5)) > 5  # stuck at one value


def test_psi_of_discrete_values_matches_hand_computations() -> None:
    # same values, other shares: every decile bin lies within one value's half-way interval, so the PSI is
    # the one of the two shares per value
    by_hand = (0.6 - 0.7) * math.log(0.6 / 0.7) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert psi([0.0] * 7 + [1.0] * 3, [0.0] * 6 + [1.0] * 4) == pytest.approx(by_hand, rel=1e-12)
    # ranks over 3 symbols (0, 0.5, 1: uniform on [-0.25, 1.25], tertile edges 0.25 / 0.75) against ranks over
    # 2 (0, 1: uniform on [-0.5, 1.5]): live shares 0.375 / 0.25 / 0.375 against a third each
    by_hand = 2 * (0.375 - 1 / 3) * math.log(0.375 * 3) + (0.25 - 1 / 3) * math.log(0.25 * 3)
    assert psi([0.0, 0.5, 1.0] * 4, [0.0, 1.0] * 6, bins=3) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.0338, abs=1e-4)


def test_drift_limit_is_measured_against_the_training_window() -> None:
    """A persistent feature (AR(1), phi 0.9) has large PSIs over 60-day spans with nothing changed: its
    limit comes from its own training window, so only a real shift of the live values counts."""
    rng = np.random.default_rng(4)
    x = np.zeros(1_060)
    for i in range(1, len(x)):
        x[i] = 0.9 * x[i - 1] + rng.normal()
    dates = pd.bdate_range("2020-01-01", periods=len(x))
    frame = pd.DataFrame({"date": dates, "ar": x, "iid": rng.normal(size=len(x))})
    train, live = frame.iloc[:1_000], frame.iloc[1_000:]
    calm = feature_drift(train, live, ["ar", "iid"], bins=10, threshold=0.25).set_index("feature")
    assert calm.loc["ar", "psi"] > 0.25 and calm.loc["ar", "baseline"] > 1.0  # a fixed 0.25 would misfire
    assert not calm["drifted"].any() and calm.loc["iid", "limit"] < calm.loc["ar", "limit"]
    shifted = live.assign(iid=live["iid"] + 3 * train["iid"].std(), ar=live["ar"] + 5 * train["ar"].std())
    got = feature_drift(train, shifted, ["ar", "iid"], bins=10, threshold=0.25).set_index("feature")
    assert got["drifted"].all(), got


@pytest.mark.slow
@pytest.mark.integration
def test_shifted_feature_triggers_retraining_through_the_gate(store: Path, lake) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from quantlake.config import quiet_environment

    quiet_environment()
    from execution.tables import EXEC_ACCOUNT
    from flows.monitor import monitor_flow
    from flows.promote import promote_flow
    from flows.train_models import train_models_flow
    from tracking.ml import monitor
    from tracking.registry import by_alias
    from tracking.run_context import client

    bars = synthetic_bars(560, seed=11)
    dates = sorted(bars["date"].unique())
    end = dates[-121]  # the champion is trained up to here; 120 later days are its "live" inputs
    lake.merge("equity_bars", bars)
    cfg = {**SMALL, "families": ["logistic"], "ensemble": False, "end": str(end)}
    out = train_models_flow(config=cfg, prefix="mon")
    assert isinstance(out, dict) and out["versions"] == {"mon_logistic": "1"}
    promote_flow({"mon_logistic": 1}, force=True, note="monitor test")
    champ = monitor.champion("mon_logistic")
    assert champ.data_end is not None and champ.data_end <= end and champ.prefix == "mon"
    assert set(champ.features) == {"ret_1", "ret_5", "ret_20", "vol_20", "rsi_14", "ema_ratio", "sma50_ratio", "bb_pos"}

    # same process after training: inputs stable, no paper account yet -> nothing to do
    calm = monitor.check(monitor.MonitorConfig(model="mon_logistic", retrain=False), lake, champ)
    assert calm.drift_status == "ok" and not calm.triggered, calm.drift
    assert len(calm.drift) == 8 and calm.drift["live_rows"].min() >= 150 and calm.performance["status"] == "no paper account"

    # paper equity falling steadily for 30 days: far below the backtest -> retrain (checked, not run here)
    days = pd.bdate_range(pd.Timestamp(end) + pd.Timedelta(days=1), periods=31)
    equity = 100_000 * np.cumprod(np.r_[1.0, np.full(30, 0.995) + np.tile([0.002, -0.002], 15)])
    acct = pd.DataFrame({"broker": "paper", "account": "demo", "strategy": "mon_logistic", "trade_date": days.date,
                         "equity": equity, "cash": equity, "peak_equity": 100_000.0, "drawdown": 1 - equity / 100_000})  # fmt: skip
    lake.merge("exec_account", acct, spec=EXEC_ACCOUNT)
    slow = monitor.check(monitor.MonitorConfig(model="mon_logistic", retrain=False), lake, champ)
    assert slow.performance["status"] == "degraded" and slow.performance["days"] == 30
    assert slow.performance["paper_sharpe"] < -5 and any("paper Sharpe" in r for r in slow.reasons)

    # the live bars turn four times as volatile: vol_20 (and the return features) shift
    rng = np.random.default_rng(1)
    live = bars[bars["date"] > end].copy()
    for sym, idx in live.groupby("symbol").groups.items():
        start = bars[(bars["symbol"] == sym) & (bars["date"] == end)]["close"].iloc[0]
        px = start * np.exp(np.cumsum(rng.normal(0.0, 0.06, len(idx))))
        live.loc[idx, ["close", "adj_close"]] = np.c_[px, px]
    lake.merge("equity_bars", live)
    gate = {"min_oos_sharpe": 50.0}  # unreachable: the retrained version must stay a candidate
    result = monitor_flow(config={"model": "mon_logistic", "min_paper_days": 500, "gate": gate})
    assert isinstance(result, dict) and result["triggered"] and result["drift_status"] == "drift"
    drifted = {d["feature"]: d["psi"] for d in result["drift"] if d["drifted"]}
    assert "vol_20" in drifted and drifted["vol_20"] > 1.0, result["drift"]
    assert result["performance"]["status"].startswith("insufficient data: 30 paper day(s) of 500")
    retraining = result["retraining"]
    assert retraining["via"] == "in-process" and retraining["versions"] == {"mon_logistic": "2"}
    decision = retraining["decisions"][0]
    assert decision["model"] == "mon_logistic" and decision["version"] == "2" and decision["outcome"] == "rejected"
    assert str(by_alias("mon_logistic", "champion").version) == "1"  # never promoted past the failing gate
    retrained_cfg = client().get_run(retraining["run_id"]).data.params
    assert retrained_cfg["end"] == "null" and "logistic" in retrained_cfg["families"]  # up to today, same families
    assert "lightgbm" not in retrained_cfg["families"]

    rec = client().get_run(result["record_run_id"])
    assert rec.data.tags["monitor.triggered"] == "true" and rec.data.tags["monitor.retraining"] == retraining["run_id"]
    assert rec.data.metrics["psi.vol_20"] == pytest.approx(drifted["vol_20"])


def test_live_window_ends_with_the_models_own_inputs_and_no_flow_cli(store: Path, lake, monkeypatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A model trained on every symbol of a lake whose index series runs 120 days past its stocks: the live
    window ends on the stocks' last day (an index-only date is not the model's input), the CLI says which
    windows it compared, and ``--no-flow`` runs the check without a Prefect flow."""
    import sys
    import types

    from typer.testing import CliRunner

    from quantlake.cli import app
    from tracking.ml import monitor
    from tracking.ml.monitor_run import retrain_directly
    from tracking.promotion import promote

    stocks = synthetic_bars(300, seed=5)
    index = synthetic_bars(420, symbols=("^IDX",), seed=6)
    lake.merge("equity_bars", pd.concat([stocks, index], ignore_index=True))
    days = sorted(stocks["date"].unique())
    cfg = {**SMALL, "optuna_trials": 1, "families": ["logistic"], "ensemble": False, "end": str(days[-90])}
    trained = retrain_directly({"config": cfg, "prefix": "win"})
    assert trained["versions"] == {"win_logistic": "1"}
    promote("win_logistic", 1, force=True)

    report = monitor.check(monitor.MonitorConfig(model="win_logistic", retrain=False, min_live_rows=10), lake)
    assert report.as_of == days[-1] < max(index["date"])  # not the index's newest day
    live = report.window["live"]
    assert live["end"] == str(days[-1]) and live["days"] == 60 and live["symbols"] == ["AAA", "BBB", "CCC", "^IDX"]

    def no_flow(**_: object) -> None:
        raise AssertionError("--no-flow ran the Prefect flow")

    monkeypatch.setitem(sys.modules, "flows.monitor", types.SimpleNamespace(monitor_flow=no_flow))
    res = CliRunner().invoke(app, ["models", "monitor", "win_logistic", "--no-retrain", "--no-flow"],
                             env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    first_live = days[-60]
    assert f"live window {first_live} – {days[-1]} (end: the newest date of its own inputs): 60 days, 240 rows of 4" in res.output
    assert "recorded in run" in res.output
