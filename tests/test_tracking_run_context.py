"""tracked_run: config as params and config.json, provenance tags, lineage, failure handling, store location."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel


@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ql_home with an empty MLflow store copied from a cached template (MLflow's migrations take ~6 s)."""
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


def bars(symbols: list[str], days: list[int], base: float = 10.0) -> pd.DataFrame:
    rows = [
        {"symbol": s, "date": dt.date(2021, 1, d), "close": base + i * 100 + d, "source": "test"}
        for i, s in enumerate(symbols)
        for d in days
    ]
    return pd.DataFrame(rows)


class Inner(BaseModel):
    window: int = 20
    weights: list[float] = [0.5, 0.5]


class Cfg(BaseModel):
    name: str = "alpha"
    inner: Inner = Inner()
    start: dt.date = dt.date(2020, 1, 1)
    note: str = ""


def test_configure_mlflow_uses_home_unless_env(ql_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracking.run_context import configure_mlflow

    assert configure_mlflow() == f"sqlite:///{ql_home / 'mlflow' / 'mlflow.db'}"
    assert (ql_home / "mlflow").is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ql_home / 'elsewhere.db'}")
    assert configure_mlflow() == f"sqlite:///{ql_home / 'elsewhere.db'}"


def test_experiment_artifacts_live_under_home(store: Path) -> None:
    from quantlake.errors import UserInputError
    from tracking.run_context import client, get_or_create_experiment

    eid = get_or_create_experiment("sweep")
    assert get_or_create_experiment("sweep") == eid
    exp = client().get_experiment(eid)
    assert exp.artifact_location == (store / "mlflow" / "artifacts" / "sweep").as_uri()
    with pytest.raises(UserInputError, match="invalid experiment name"):
        get_or_create_experiment("../escape")


def test_tracked_run_records_config_provenance_and_lineage(
    store: Path, lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import plotly.graph_objects as go

    from tracking.run_context import client, current_run, tracked_run

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    lake.merge("equity_bars", bars(["AAA", "BBB"], [4, 5]))
    lake.merge("equity_bars", bars(["AAA"], [6]))  # version 1
    cfg = Cfg(note="x" * 9000, inner=Inner(window=7))
    with tracked_run("exp1", "test.job", cfg, lake, run_name="first") as run:
        assert current_run() is run
        df = lake.read("equity_bars")
        run.log_metrics({"rows": len(df), "odd key/ok": 1.5})
        run.log_frame("bars", df)
        run.log_figure("close", go.Figure(go.Scatter(y=df["close"])))
        run.log_text("hello", "notes/hello.txt")
        run.set_tags({"custom": {"a": 1}})
    assert current_run() is None

    c = client()
    r = c.get_run(run.run_id)
    assert r.info.status == "FINISHED"
    assert r.info.run_name == "first"
    p = r.data.params
    assert "name" not in p and r.data.tags["config.name"] == "alpha"  # a run setting: a tag
    assert p["inner.window"] == "7"
    assert json.loads(p["inner.weights"]) == [0.5, 0.5]
    assert p["start"] == "2020-01-01"
    assert len(p["note"]) <= 6000 and p["note"].endswith("[truncated]")
    assert r.data.metrics == {"rows": 5.0, "odd key/ok": 1.5}

    t = r.data.tags
    assert t["quantlake.job"] == "test.job"
    assert t["quantlake.config_model"].endswith(":Cfg")
    sha = t.get("mlflow.source.git.commit")
    assert t["quantlake.code_version"].startswith(f"git:{sha}" if sha else "quantlake==")
    packages = json.loads(t["quantlake.packages"])
    assert packages["mlflow"] == __import__("mlflow").__version__
    assert {"pandas", "duckdb", "deltalake", "python"} <= set(packages)
    assert t["quantlake.prefect_flow_run_id"] == "none"
    assert t["lake.version.equity_bars"] == "1" == str(lake.version("equity_bars"))
    assert json.loads(t["custom"]) == {"a": 1}

    art = Path(r.info.artifact_uri.removeprefix("file://"))
    assert art.is_relative_to(store / "mlflow" / "artifacts" / "exp1")
    config = json.loads((art / "config.json").read_text())
    assert config == cfg.model_dump(mode="json")  # full value, not truncated
    lineage = json.loads((art / "lineage.json").read_text())
    assert lineage["tables"] == {"equity_bars": 1}
    pd.testing.assert_frame_equal(pd.read_parquet(art / "bars.parquet"), df, check_dtype=False)
    assert "plotly" in (art / "close.html").read_text()[:20000].lower()
    assert (art / "notes" / "hello.txt").read_text() == "hello"
    # nothing landed in the working directory (MLflow's ./mlruns and ./mlflow.db defaults)
    assert list(cwd.iterdir()) == []


def test_failed_run_is_marked_failed_and_reraises(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    from tracking.run_context import client, get_or_create_experiment, tracked_run

    lake.merge("equity_bars", bars(["AAA"], [4]))
    with pytest.raises(ZeroDivisionError), tracked_run("exp2", "test.fail", Cfg(), lake) as run:
        lake.read("equity_bars")
        run.log_metrics({"partial": 1})
        _ = 1 / 0
    r = client().get_run(run.run_id)
    assert r.info.status == "FAILED"
    assert r.data.tags["quantlake.error"] == "ZeroDivisionError: division by zero"
    assert r.data.tags["lake.version.equity_bars"] == "0"  # lineage is kept for failed runs too
    assert r.data.metrics == {"partial": 1.0}
    # the next run is not nested under the failed one (no leaked active run)
    import mlflow

    assert mlflow.active_run() is None
    runs = client().search_runs([get_or_create_experiment("exp2")])
    assert len(runs) == 1


def test_nested_tracked_runs_are_parent_and_child(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    from tracking.run_context import client, tracked_run

    with (
        tracked_run("exp3", "outer", Cfg(), lake) as outer,
        tracked_run("exp3", "inner", Cfg(), lake) as inner,
    ):
        pass
    assert client().get_run(inner.run_id).data.tags["mlflow.parentRunId"] == outer.run_id
    assert client().get_run(outer.run_id).info.status == "FINISHED"


def test_tracked_run_requires_pydantic_config(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    from tracking.run_context import tracked_run

    with pytest.raises(TypeError, match="pydantic"), tracked_run("exp4", "x", {"a": 1}, lake):  # type: ignore[arg-type]
        pass


class _Strategy(BaseModel):
    kind: str = "ema_cross"
    fast: int = 10


class _SweepLike(BaseModel):
    name: str = "ema_cross_sample"
    strategy: _Strategy = _Strategy()
    symbols: list[str] = ["SPY", "AAPL", "GOOG", "INTC"]
    start: dt.date = dt.date(2010, 1, 4)
    end: dt.date = dt.date(2017, 12, 29)
    chunk_size: int = 10


def test_runs_are_named_and_experiments_are_model_training(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    """Experiments open as model-training experiments in MLflow 3 (not GenAI); a run is named by strategy,
    universe, period and config hash, unique in its experiment; run settings are tags, not params."""
    from tracking.naming import config_hash
    from tracking.run_context import client, tracked_run

    cfg = _SweepLike()
    names = []
    for _ in range(2):
        with tracked_run("named", "test.named", cfg, lake, run_name=cfg.name) as r:
            pass
        names.append(client().get_run(r.run_id).info.run_name)
    base = f"ema_cross SPY,AAPL+2 2010-01-04..2017-12-29 {config_hash(cfg.model_dump(mode='json'))}"
    assert names == [base, f"{base} #2"]
    other = _SweepLike(strategy=_Strategy(fast=12))
    with tracked_run("named", "test.named", other, lake) as r:
        pass
    assert client().get_run(r.run_id).info.run_name.rsplit(" ", 1)[1] != base.rsplit(" ", 1)[1]  # other hash
    exp = client().get_experiment_by_name("named")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client().get_run(r.run_id)
    assert "strategy.fast" in run.data.params and "chunk_size" not in run.data.params
    assert run.data.tags["config.chunk_size"] == "10" and "name" not in run.data.params


def test_experiments_get_a_view_with_the_key_metrics(store: Path, lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """MLflow shows no metric column by default; each experiment gets a shared view (experiment tag) with the
    key metrics and the strategy's parameters as columns, sorted by the first key metric, and `ui mlflow`
    prints its link."""
    from typer.testing import CliRunner

    from quantlake.cli import app
    from tracking import ui
    from tracking.run_context import client, tracked_run
    from tracking.views import VIEW_TAG

    with tracked_run("viewed", "test.view", _SweepLike(), lake) as r:
        r.log_metrics({"zeta": 1.0, "max_drawdown": -0.2, "sharpe": 1.3, "trades": 12})
    exp = client().get_experiment_by_name("viewed")
    view = json.loads(exp.tags[VIEW_TAG])
    assert view["selectedColumns"][:4] == ["metrics.`sharpe`", "metrics.`max_drawdown`", "metrics.`trades`",
                                           "params.`strategy.kind`"]
    assert "metrics.`zeta`" not in view["selectedColumns"] and view["orderByKey"] == "metrics.`sharpe`"
    monkeypatch.setattr(ui, "run_foreground", lambda cmd, **kw: 0)
    res = CliRunner().invoke(app, ["ui", "mlflow", "--port", "5988"], env={"COLUMNS": "200"})
    assert f"viewed: http://127.0.0.1:5988/#/experiments/{exp.experiment_id}/runs?viewStateShareKey=quantlake" \
        in res.output
