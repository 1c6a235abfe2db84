"""ML signal models: labels, no-lookahead features, purged/embargoed splits, tuning inside the training
window only, logged pyfunc models, reproducible training, rule strategies on the same OOS span."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracking.ml.splits import purged_kfold, walk_forward


@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


def synthetic_bars(
    n_days: int = 420, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC"), seed: int = 3
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=n_days).date
    frames = []
    for i, s in enumerate(symbols):
        px = 50.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0.0004, 0.015, n_days)))
        frames.append(
            pd.DataFrame({"symbol": s, "date": dates, "close": px, "adj_close": px, "source": "test"})
        )
    return pd.concat(frames, ignore_index=True)


def frame_dates(n_days: int = 300, horizon: int = 5, lag: int = 1) -> pd.DataFrame:
    dates = pd.Series(pd.bdate_range("2020-01-01", periods=n_days))
    rows = []
    for s in ("A", "B"):
        end = dates.shift(-(horizon + lag))
        rows.append(pd.DataFrame({"symbol": s, "date": dates, "label_end": end}))
    out = pd.concat(rows, ignore_index=True).dropna().sort_values(["date", "symbol"]).reset_index(drop=True)
    return out


def test_walk_forward_is_purged_and_gapped() -> None:
    f = frame_dates()
    splits = walk_forward(f["date"], f["label_end"], n_splits=3, min_train_fraction=0.5, embargo=4)
    assert len(splits) == 3
    unique = np.sort(f["date"].unique())
    previous_end = None
    for sp in splits:
        test_dates = f.loc[sp.test, "date"]
        t0 = test_dates.min()
        assert f.loc[sp.train, "label_end"].max() < t0  # no training label reaches into the test block
        gap = np.searchsorted(unique, t0) - np.searchsorted(unique, f.loc[sp.train, "date"].max())
        assert gap >= 4 + 1  # at least the embargo between last training date and first test date
        assert not (sp.train & sp.test).any()
        if previous_end is not None:
            assert t0 > previous_end  # consecutive, non-overlapping test blocks
        previous_end = test_dates.max()
    assert sum(int(sp.test.sum()) for sp in splits) == int((f["date"] >= unique[len(unique) // 2]).sum())


def test_purged_kfold_purges_and_embargoes_both_sides() -> None:
    f = frame_dates(200)
    unique = np.sort(f["date"].unique())
    for sp in purged_kfold(f["date"], f["label_end"], n_splits=4, embargo=3):
        t0, t1 = f.loc[sp.test, "date"].min(), f.loc[sp.test, "date"].max()
        tr = f[sp.train]
        overlaps = (tr["date"] <= t1) & (tr["label_end"] >= t0)
        assert not overlaps.any()  # purged: no label window overlaps the test fold
        after = tr[tr["date"] > t1]
        if len(after):
            first_after = np.searchsorted(unique, after["date"].min())
            assert first_after - np.searchsorted(unique, t1) > 3  # embargoed: 3 bars skipped after the fold
        assert len(tr) > 0


def test_labels_and_features_use_no_future(lake) -> None:  # type: ignore[no-untyped-def]
    from quantlake.lake import Lake
    from tracking.ml.dataset import BUILTIN_FEATURES, load_dataset

    bars = synthetic_bars(300)
    lake.merge("equity_bars", bars)
    full = load_dataset(lake, horizon=5, lag=1, feature_table=None, regime_table=None).frame
    a = full[full["symbol"] == "AAA"].reset_index(drop=True)
    px = bars[bars["symbol"] == "AAA"]["adj_close"].to_numpy()
    i = 100
    assert a.loc[i, "label"] == float(px[i + 6] / px[i + 1] - 1 > 0)  # enter t+1, hold 5 bars
    assert a.loc[i, "hold_ret"] == pytest.approx(px[i + 2] / px[i + 1] - 1)
    assert a["label"].isna().sum() == 6  # the last lag + horizon bars have no label yet

    # truncating the future leaves every past feature unchanged (features at t use data up to t only)
    cut = bars["date"].iloc[200]
    trunc_lake = Lake(lake.root.parent / "trunc")
    trunc_lake.merge("equity_bars", bars[bars["date"] <= cut])
    past = load_dataset(trunc_lake, horizon=5, lag=1, feature_table=None, regime_table=None).frame
    keys = ["symbol", "date"]
    merged = past.merge(full, on=keys, suffixes=("_p", "_f"))
    assert len(merged) == len(past)
    for col in [*BUILTIN_FEATURES, "regime"]:
        pd.testing.assert_series_equal(merged[f"{col}_p"], merged[f"{col}_f"], check_names=False)


SMALL = {
    "optuna_trials": 2,
    "n_splits": 2,
    "inner_splits": 2,
    "embargo": 3,
    "min_train_fraction": 0.6,
    "feature_table": None,
    "regime_table": None,
}


def test_training_job_logs_models_tunes_inside_window_and_reproduces(store: Path, lake, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    from quantlake.lake import Lake
    from tracking.jobs import run_job
    from tracking.ml import train as train_mod
    from tracking.ml.dataset import load_dataset
    from tracking.reproduce import reproduce
    from tracking.run_context import client

    lake.merge("equity_bars", synthetic_bars())
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    real_tune = train_mod.tune

    def spy(family, train, features, cfg, seed):  # type: ignore[no-untyped-def]
        seen.append((train["date"].max(), train["label_end"].max()))
        return real_tune(family, train, features, cfg, seed)

    monkeypatch.setattr(train_mod, "tune", spy)
    run_id = run_job("models.train", SMALL, lake=Lake(lake.root))
    c = client()
    parent = c.get_run(run_id)
    m = parent.data.metrics
    for fam in ("logistic", "lightgbm", "ensemble"):
        for key in ("oos_sharpe", "oos_max_drawdown", "oos_dsr", "oos_trades", "oos_auc"):
            assert f"{fam}.{key}" in m
    assert m["oos_sharpe"] == m["ensemble.oos_sharpe"]
    assert m["n_trials"] == 2 * 2 + 1

    # Optuna saw only each fold's training window: every label it tuned on settled before that fold's test
    rows = load_dataset(lake, horizon=5, lag=1, feature_table=None, regime_table=None).labeled
    splits = walk_forward(rows["date"], rows["label_end"], 2, 0.6, 3)
    test_starts = [rows.loc[sp.test, "date"].min() for sp in splits]
    assert len(seen) == 4  # 2 folds x 2 families
    for k, (last_date, last_label_end) in enumerate(seen):
        assert last_label_end < test_starts[k // 2] and last_date < test_starts[k // 2]

    children = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert {r.data.tags["quantlake.model_family"] for r in children} == {"logistic", "lightgbm", "ensemble"}
    ens = next(r for r in children if r.data.tags["quantlake.model_family"] == "ensemble")
    assert ens.data.metrics["oos_sharpe"] == m["ensemble.oos_sharpe"]
    assert ens.data.tags["lake.version.equity_bars"] == "0"
    model = mlflow.pyfunc.load_model(ens.data.tags["quantlake.model_uri"])
    feats = load_dataset(lake, feature_table=None, regime_table=None).frame.dropna().tail(20)
    out = model.predict(feats[["symbol", "date", *model.metadata.get_input_schema().input_names()[2:]]])
    assert list(out.columns) == ["symbol", "date", "prob_up", "signal"]
    assert out["prob_up"].between(0, 1).all() and set(out["signal"]) <= {0.0, 1.0}
    artifacts = {a.path for a in c.list_artifacts(ens.info.run_id)}
    assert {"feature_importance.parquet", "feature_importance.html", "oos_predictions.parquet"} <= artifacts

    result = reproduce(run_id, lake.root)
    assert result.identical, [x for x in result.metrics if not x.identical]
    assert len(result.metrics) == len(m)

    from tracking.ml.train import register_trained

    versions = register_trained(run_id)
    assert versions == {"ml_ensemble": "1", "ml_lightgbm": "1", "ml_logistic": "1"}


def test_rule_strategy_job_and_registration(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    from tracking.jobs import run_job
    from tracking.registry import get_version, register_from_run
    from tracking.run_context import client

    lake.merge("equity_bars", synthetic_bars(300))
    rule = {"kind": "cross", "fast": "ret_5", "slow": "ret_20"}
    run_id = run_job(
        "strategies.evaluate_rule", {"rule": rule, "feature_table": None, "n_trials": 7}, lake=lake
    )
    metrics = client().get_run(run_id).data.metrics
    assert metrics["n_trials"] == 7 and metrics["oos_n_obs"] == pytest.approx(150, abs=3)
    assert 0 <= metrics["oos_dsr"] <= 1 and metrics["oos_max_drawdown"] <= 0
    version = register_from_run(run_id, "rule_momentum")
    mv = get_version("rule_momentum", version)
    assert mv.tags["quantlake.kind"] == "rule" and float(mv.tags["oos_sharpe"]) == metrics["oos_sharpe"]

    from quantlake.errors import ConfigError

    with pytest.raises(ConfigError, match="rule"):
        run_job("strategies.evaluate_rule", {"rule": {"kind": "nope"}}, lake=lake)
