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
    from tracking.ml.feature_registry import split_inputs
    from tracking.reproduce import reproduce
    from tracking.run_context import client

    lake.merge("equity_bars", synthetic_bars())
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    real_tune = train_mod.tune

    def spy(family, train, features, cfg, seed, *rest):  # type: ignore[no-untyped-def]
        seen.append((train["date"].max(), train["label_end"].max()))
        return real_tune(family, train, features, cfg, seed, *rest)

    monkeypatch.setattr(train_mod, "tune", spy)
    run_id = run_job("models.train", SMALL, lake=Lake(lake.root))
    c = client()
    parent = c.get_run(run_id)
    m = parent.data.metrics
    for fam in ("logistic", "lightgbm", "xgboost", "sequence", "ensemble"):
        for key in ("oos_sharpe", "oos_max_drawdown", "oos_dsr", "oos_trades", "oos_auc"):
            assert f"{fam}.{key}" in m
    assert m["oos_sharpe"] == m["ensemble.oos_sharpe"]
    assert m["n_trials"] == 2 * 4 + 1

    # Optuna saw only each fold's training window: every label it tuned on settled before that fold's test
    rows = load_dataset(lake, horizon=5, lag=1, feature_table=None, regime_table=None).labeled
    splits = walk_forward(rows["date"], rows["label_end"], 2, 0.6, 3)
    test_starts = [rows.loc[sp.test, "date"].min() for sp in splits]
    assert len(seen) == 8  # 2 folds x 4 families
    for k, (last_date, last_label_end) in enumerate(seen):
        assert last_label_end < test_starts[k // 4] and last_date < test_starts[k // 4]

    children = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert {r.data.tags["quantlake.model_family"] for r in children} == {
        "logistic", "lightgbm", "xgboost", "sequence", "ensemble"
    }
    ens = next(r for r in children if r.data.tags["quantlake.model_family"] == "ensemble")
    assert ens.data.metrics["oos_sharpe"] == m["ensemble.oos_sharpe"]
    assert ens.data.tags["lake.version.equity_bars"] == "0"
    model = mlflow.pyfunc.load_model(ens.data.tags["quantlake.model_uri"])
    inputs = model.metadata.get_input_schema().input_names()[2:]
    _, windows = split_inputs([c for c in inputs if c != "regime"])
    assert windows == (["rsi_14", "ema_ratio"], 10)  # the default channels among the built-in features
    feats = load_dataset(lake, feature_table=None, regime_table=None, windows=windows).frame.dropna().tail(20)
    out = model.predict(feats[["symbol", "date", *inputs]])
    assert list(out.columns) == ["symbol", "date", "prob_up", "signal"]
    assert out["prob_up"].between(0, 1).all() and set(out["signal"]) <= {0.0, 1.0}
    artifacts = {a.path for a in c.list_artifacts(ens.info.run_id)}
    assert {"feature_importance.parquet", "feature_importance.html", "oos_predictions.parquet",
            "permutation_importance.parquet", "permutation_importance.html"} <= artifacts

    result = reproduce(run_id, lake.root)
    assert result.identical, [x for x in result.metrics if not x.identical]
    assert len(result.metrics) == len(m)

    from typer.testing import CliRunner

    from quantlake.cli import app
    from tracking.registry import get_version

    # `quantlake models register RUN_ID`: the trained families become registered versions
    res = CliRunner().invoke(app, ["models", "register", run_id], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "quantlake models promote ml_ensemble --version 1" in res.output
    for name in (f"ml_{f}" for f in ("ensemble", "lightgbm", "logistic", "sequence", "xgboost")):
        assert name in res.output
        assert get_version(name, "1").run_id != run_id  # the family's child run


def test_rule_strategy_job_and_registration(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    from tracking.jobs import run_job
    from tracking.registry import get_version
    from tracking.run_context import client

    lake.merge("equity_bars", synthetic_bars(300))
    rule = {"kind": "cross", "fast": "ret_5", "slow": "ret_20"}
    run_id = run_job(
        "strategies.evaluate_rule", {"rule": rule, "feature_table": None, "n_trials": 7}, lake=lake
    )
    metrics = client().get_run(run_id).data.metrics
    assert metrics["n_trials"] == 7 and metrics["oos_n_obs"] == pytest.approx(150, abs=3)
    assert 0 <= metrics["oos_dsr"] <= 1 and metrics["oos_max_drawdown"] <= 0
    from typer.testing import CliRunner

    from quantlake.cli import app

    res = CliRunner().invoke(app, ["models", "register", run_id, "--name", "rule_momentum"])
    assert res.exit_code == 0, res.output
    version = "1"
    mv = get_version("rule_momentum", version)
    assert mv.tags["quantlake.kind"] == "rule" and float(mv.tags["oos_sharpe"]) == metrics["oos_sharpe"]

    from quantlake.errors import ConfigError

    with pytest.raises(ConfigError, match="rule"):
        run_job("strategies.evaluate_rule", {"rule": {"kind": "nope"}}, lake=lake)


def _feature_tables(lake, bars: pd.DataFrame) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Minimal ``features_technical`` / ``features_regime`` tables (the columns tracking reads, plus price
    levels and recursion state it must ignore), computed here from ``bars`` by plain pandas."""
    import pyarrow as pa

    from quantlake.tables import TableSpec

    b = bars.sort_values(["symbol", "date"]).reset_index(drop=True)
    g = b.groupby("symbol")["adj_close"]
    tech = b[["symbol", "date", "close"]].copy()
    for k in (1, 5, 20, 60):
        tech[f"ret_{k}d"] = g.pct_change(k)
    tech["rsi_14"] = 50.0 + 10 * np.tanh(tech["ret_5d"].fillna(0) * 20)
    tech["bb_pctb"] = tech["ret_20d"] * 3 + 0.5
    tech["bb_width"] = g.transform(lambda s: s.rolling(20).std()) / b["close"]
    tech["ema_12"] = g.transform(lambda s: s.ewm(span=12, adjust=False).mean())
    tech["ema_26"] = g.transform(lambda s: s.ewm(span=26, adjust=False).mean())
    tech["sma_50"] = g.transform(lambda s: s.rolling(50).mean())
    tech["st_rsi_gain"] = 1.0  # recursion state: never a feature
    spec = TableSpec(
        name="features_technical",
        keys=("symbol", "date"),
        schema=pa.schema(
            [("symbol", pa.string()), ("date", pa.date32())]
            + [(c, pa.float64()) for c in tech.columns if c not in ("symbol", "date")]
        ),
        date_column="date",
    )
    lake.merge("features_technical", tech, spec=spec)
    regime = b[["symbol", "date"]].copy()
    regime["regime"] = np.where(b.index % 3 == 0, "high_vol", "neutral")
    regime.loc[regime.groupby("symbol").head(30).index, "regime"] = None  # no VIX history yet
    lake.merge(
        "features_regime",
        regime,
        spec=TableSpec(
            name="features_regime",
            keys=("symbol", "date"),
            schema=pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("regime", pa.string())]),
            date_column="date",
        ),
    )
    return tech


def test_dataset_from_feature_tables(lake) -> None:  # type: ignore[no-untyped-def]
    """With the feature tables present: scale-free default columns, derived ratios, the table's regime."""
    from quantlake.errors import UserInputError
    from tracking.ml.dataset import DERIVED_FEATURES, TABLE_FEATURES, load_dataset

    bars = synthetic_bars(300)
    lake.merge("equity_bars", bars)
    tech = _feature_tables(lake, bars)
    data = load_dataset(lake, symbols=["AAA", "BBB"], horizon=5, lag=1)
    assert data.source == "features_technical" and data.regime_source == "features_regime"
    assert data.features == TABLE_FEATURES + list(DERIVED_FEATURES)[:2]  # no sma_200 column: no sma200_ratio
    assert not {"close", "sma_50", "ema_12", "st_rsi_gain"} & set(data.frame.columns)
    assert set(data.frame["symbol"]) == {"AAA", "BBB"}
    f = data.frame.merge(
        tech.assign(date=pd.to_datetime(tech["date"])), on=["symbol", "date"], suffixes=("", "_t")
    )
    np.testing.assert_allclose(f["ema_ratio"], f["ema_12"] / f["ema_26"] - 1, rtol=1e-12)
    np.testing.assert_allclose(f["sma50_ratio"].dropna(), (f["close"] / f["sma_50"] - 1).dropna(), rtol=1e-12)
    np.testing.assert_array_equal(f["ret_5d"].to_numpy(), f["ret_5d_t"].to_numpy())
    first = data.frame.sort_values("date").groupby("symbol").head(30)
    assert set(first["regime"]) == {"unknown"}  # NULL regime (no VIX history) is "unknown", not a vol regime
    assert set(data.frame["regime"]) == {"unknown", "high_vol", "neutral"}

    with pytest.raises(UserInputError, match=r"no numeric column\(s\) \['sma200_ratio'\]"):
        load_dataset(lake, feature_columns=["sma200_ratio"])
    chosen = load_dataset(lake, feature_columns=["close", "ema_ratio"], regime_table=None)
    assert chosen.features == ["close", "ema_ratio"] and chosen.regime_source == "volatility"
    builtin = load_dataset(lake, feature_table=None)
    assert builtin.source == "equity_bars" and "ema_ratio" in builtin.features


def test_rule_on_feature_table_records_its_version(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    """The rule reads features_technical through the lake: lineage pins it, so a rebuilt table cannot change
    a reproduction."""
    from tracking.jobs import run_job
    from tracking.reproduce import reproduce
    from tracking.run_context import client

    bars = synthetic_bars(300)
    lake.merge("equity_bars", bars)
    tech = _feature_tables(lake, bars)
    rule = {"kind": "threshold", "feature": "ema_ratio", "long_above": 0.0}
    run_id = run_job("strategies.evaluate_rule", {"rule": rule}, lake=lake)
    tags = client().get_run(run_id).data.tags
    assert tags["lake.version.features_technical"] == "0" and tags["lake.version.equity_bars"] == "0"
    lake.merge("features_technical", tech.assign(ema_12=tech["ema_12"] * 1.01))  # a rebuild with new numbers
    assert lake.version("features_technical") == 1
    result = reproduce(run_id, lake.root)
    assert result.identical and result.original.pins["features_technical"] == 0


@pytest.mark.slow
@pytest.mark.integration
def test_train_and_promote_flows(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    from quantlake.config import quiet_environment

    quiet_environment()  # what the CLI does: telemetry off, a patient ephemeral-server start on a busy machine
    from flows.promote import promote_flow
    from flows.train_models import train_models_flow
    from quantlake.errors import ConfigError
    from tracking.registry import by_alias, get_version
    from tracking.run_context import client

    lake.merge("equity_bars", synthetic_bars())
    out = train_models_flow(config=SMALL, prefix="flowtest")
    assert isinstance(out, dict)
    assert out["versions"] == {f"flowtest_{f}": "1" for f in ("ensemble", "lightgbm", "logistic", "sequence", "xgboost")}
    metrics = client().get_run(out["run_id"]).data.metrics
    assert "ensemble.oos_sharpe" in metrics and "logistic.oos_auc" in metrics

    # an unreachable gate: every candidate rejected, each decision recorded with its failed check
    strict = {"min_oos_sharpe": 50.0}
    decisions = promote_flow({"flowtest_logistic": 1, "flowtest_ensemble": 1}, gate=strict)
    assert [d["outcome"] for d in decisions] == ["rejected", "rejected"]
    for d in decisions:
        sharpe = next(c for c in d["checks"] if c["name"] == "oos_sharpe")
        assert not sharpe["passed"] and "vs minimum 50.000" in sharpe["detail"]
        assert len(d["record_run_id"]) == 32
    assert by_alias("flowtest_logistic", "champion") is None
    assert get_version("flowtest_logistic", 1).tags["promotion.decision"] == "rejected"

    # forced: champion moves, the decision says forced
    forced = promote_flow({"flowtest_logistic": 1}, gate=strict, force=True, note="flow test")
    assert forced[0]["outcome"] == "forced"
    assert str(by_alias("flowtest_logistic", "champion").version) == "1"

    with pytest.raises(ConfigError, match="min_trades"):
        promote_flow({"flowtest_logistic": 1}, gate={"min_trades": -1})


def test_option_trade_labels_train_a_trade_filter(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    """Labels from option-trade profitability: one row per closed position of an options backtest run,
    features as of the close before entry, purged until exit; a model learns a rule planted in the P&L."""
    from pydantic import BaseModel

    from quantlake.lake import Lake
    from tracking.jobs import run_job
    from tracking.ml.dataset import load_dataset
    from tracking.ml.trades import load_trade_dataset
    from tracking.reproduce import reproduce
    from tracking.run_context import client, tracked_run

    bars = synthetic_bars(700, symbols=("AAA",), seed=5)
    lake.merge("equity_bars", bars)
    feats = load_dataset(lake, feature_table=None, regime_table=None).frame.set_index("date")
    days = pd.to_datetime(pd.Series(sorted(bars["date"].unique())))
    legs, pos_id = [], 0
    for i in range(30, len(days) - 8, 2):  # a position every other day, held 6 days, two legs each
        before = feats.loc[days[i - 1], "ret_5"]  # what the strategy knew at the close before entry
        pnl = 120.0 if before > 0 else -100.0  # the planted rule
        for share in (0.7, 0.3):
            legs.append({"position_id": pos_id, "entry_date": days[i].date(), "exit_date": days[i + 6].date(),
                         "pnl": pnl * share, "qty": 1})  # fmt: skip
        pos_id += 1
    legs.append(
        {
            "position_id": pos_id,
            "entry_date": days[len(days) - 5].date(),
            "exit_date": None,
            "pnl": 5.0,
            "qty": 1,
        }
    )  # fmt: skip  (still open: no label yet)
    daily = pd.DataFrame({"date": days, "equity": 100_000.0 + np.arange(len(days))})

    class Cfg(BaseModel):
        underlying: str = "AAA"

    with tracked_run(
        "options_backtest", "test.options", Cfg(), lake, extra_tags={"options.underlying": "AAA"}
    ) as bt:
        bt.log_frame("trades", pd.DataFrame(legs))
        bt.log_frame("daily", daily)

    data = load_trade_dataset(lake, bt.run_id, feature_table=None, regime_table=None)
    rows = data.frame
    assert len(rows) == pos_id  # the open position has no label
    first = rows.iloc[0]
    assert first["date"] == days[29] and first["label_end"] == days[36]  # the close before entry; the exit
    assert first["label"] == float(feats.loc[days[29], "ret_5"] > 0)
    assert first["hold_ret"] == pytest.approx((120.0 if first["label"] else -100.0) / (100_000.0 + 30))

    cfg = {
        **SMALL,
        "labels": "option_trades",
        "trades_run": bt.run_id,
        "n_splits": 2,
        "min_train_fraction": 0.5,
    }
    run_id = run_job("models.train", cfg, lake=Lake(lake.root))
    m = client().get_run(run_id).data.metrics
    assert m["lightgbm.oos_auc"] > 0.75  # the planted rule is learnt out of sample (chance: 0.5)
    oos_trades = rows[rows["date"] >= rows["date"].unique()[len(rows["date"].unique()) // 2]]
    assert 0 < m["lightgbm.oos_trades"] <= len(oos_trades)
    assert m["lightgbm.oos_sharpe"] > 0 and m["n_rows"] == pos_id
    assert reproduce(run_id, lake.root).identical

    from quantlake.errors import ConfigError

    with pytest.raises(ConfigError, match="trades_run"):
        run_job("models.train", {**SMALL, "labels": "option_trades"}, lake=lake)
