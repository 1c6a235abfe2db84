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
from tracking.ml.monitor import feature_drift, psi


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
