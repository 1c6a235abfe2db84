"""A research run as one MLflow run (params, metrics, reports, tables, overfitting statistics, lineage), its
reproduction on the pinned table versions, and the Prefect flow fanning symbol chunks out on threads and on a
local Dask cluster (prefect-dask) with the same results as a sequential run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CONFIG: dict[str, Any] = {
    "name": "eq-test",
    "strategy": {"kind": "sma_cross", "params": {"fast": [10, 20, 30], "slow": [50, 100]}},
    "symbols": ["SPY", "AAPL", "GOOG"],
    "start": "2008-01-01",
    "end": "2017-12-31",
    "chunk_size": 1,
    "overfitting": {"cscv_splits": 8},
    "walkforward": {"train_bars": 504, "test_bars": 252},
    "montecarlo": {"n_sims": 500, "seed": 3},
    "report": {"tearsheet": False},
}
TIMING = ("sweep_seconds", "backtests_per_s")




@pytest.fixture()
def home_lake(store: Path, sample_lake_dir: Path):  # type: ignore[no-untyped-def]
    """The sample lake copied to $QUANTLAKE_HOME/lake (where a flow's default Lake() looks)."""
    from quantlake.lake import Lake

    shutil.copytree(sample_lake_dir, store / "lake", dirs_exist_ok=True)
    return Lake(store / "lake")


@pytest.mark.integration
def test_sweep_is_one_tracked_run_and_reproduces(home_lake) -> None:  # type: ignore[no-untyped-def]
    from backtests.equity import jobs
    from tracking.jobs import run_job
    from tracking.reproduce import reproduce
    from tracking.run_context import client

    run_id = run_job("equity.sweep", CONFIG, home_lake, run_name="eq-test")
    digest = jobs.summary(run_id)
    c = client()
    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    assert p["strategy.kind"] == "sma_cross" and "selected.fast" in p
    assert m["n_trials"] == 6 and m["n_units"] == 3
    for key in ("best.sharpe", "dsr.dsr", "pbo.pbo", "wf.efficiency", "wf.oos.sharpe", "oos_dsr",
                "mc.bootstrap.risk_of_ruin", "mc.shuffle.final_p50", "mc.parametric.mdd_p05"):  # fmt: skip
        assert key in m, key
    assert 0 <= m["dsr.dsr"] <= 1 and 0 <= m["pbo.pbo"] <= 1
    assert not set(TIMING) & set(m)  # timings are tags: metrics must reproduce exactly
    assert float(t["equity.backtests_per_s"]) > 0
    assert t["lake.version.equity_bars"] == "0" and t["quantlake.job"] == "equity.sweep"
    arts = {a.path for a in c.list_artifacts(run_id)} | {a.path for a in c.list_artifacts(run_id, "reports")}
    arts |= {a.path for a in c.list_artifacts(run_id, "tables")}
    for name in ("overfitting_stats.json", "reports/report.html", "tables/results.parquet",
                 "tables/summary.parquet", "tables/trades.parquet", "tables/walkforward.parquet"):  # fmt: skip
        assert name in arts, (name, sorted(arts))
    # the charts go to MLflow once, on one self-contained page (plotly.js embedded once per run)
    assert not {a for a in arts if a.startswith("reports/") and a.endswith(".html")} - {"reports/report.html"}
    page = Path(c.download_artifacts(run_id, "reports/report.html")).read_text()
    for section in ("heatmap", "equity", "walkforward_equity", "montecarlo"):
        assert f">{section}<" in page, section
    assert page.count("<script type='text/javascript'>") == 1  # plotly.js once, the charts only refer to it
    heatmap = Path(digest["files"]["heatmap"]).read_text()
    assert "plotly" in heatmap and "fast=" in heatmap  # hover text names the parameters
    assert digest["best_params"]["fast"] in (10, 20, 30)

    again = reproduce(run_id, lake_root=home_lake.root)
    assert again.identical, [r for r in again.metrics if not r.identical]
    assert len(again.metrics) == len(m)


@pytest.mark.integration
@pytest.mark.slow
def test_flow_on_threads_and_dask_equals_sequential(home_lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Three chunks (one symbol each) as Prefect tasks on a thread pool and on a local Dask cluster (one
    worker process, so the chunks and their results cross a process boundary): every metric equals the
    sequential run's."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    from backtests.equity import jobs
    from flows.equity_sweep import run_equity_flow
    from tracking.jobs import run_job

    cfg = {**CONFIG, "walkforward": None, "montecarlo": None}
    sequential = jobs.summary(run_job("equity.sweep", cfg, home_lake))["metrics"]
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120}):
        threads = run_equity_flow(cfg, runner="thread", workers=2)
        dask = run_equity_flow(cfg, runner="dask", workers=1)
    for out in (threads, dask):
        assert out["metrics"].keys() == sequential.keys()
        for k, v in sequential.items():
            assert out["metrics"][k] == pytest.approx(v, rel=1e-12, abs=1e-15), k


def test_tearsheet_and_heatmap_reports(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from backtests import reports

    rng = np.random.default_rng(0)
    r = pd.Series(rng.normal(0.0005, 0.01, 300), index=pd.bdate_range("2020-01-01", periods=300))
    out = reports.tearsheet(r.rename("strategy"), tmp_path / "t.html", title="unit test")
    html = out.read_text()
    assert "unit test" in html and "Sharpe" in html
    table = pd.DataFrame({"fast": [5, 5, 10, 10], "slow": [20, 30, 20, 30], "sharpe": [0.1, 0.2, 0.3, np.inf]})
    fig = reports.heatmap_figure(table, "fast", "slow", ["sharpe"])
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z[0].tolist() == [0.1, 0.3] and np.isnan(z[1, 1])  # rows = slow, columns = fast; inf hidden
    path = reports.write_html(fig, tmp_path / "h.html")
    # opens offline: plotly.js sits once in the report folder, the chart loads it from there
    assert 'src="plotly.min.js"' in path.read_text() and (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


@pytest.mark.integration
def test_flow_fails_cleanly_without_the_regime_table(home_lake) -> None:  # type: ignore[no-untyped-def]
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    from flows.equity_sweep import run_equity_flow
    from quantlake.errors import UserInputError

    cfg = {**CONFIG, "walkforward": None, "montecarlo": None, "regime": {"allow": ["low_vol"]}}
    with (
        temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120}),
        pytest.raises(UserInputError, match="features_regime' does not exist"),
    ):
        run_equity_flow(cfg, runner="thread")
