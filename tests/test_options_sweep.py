"""Option sweeps: the config grammar (lists, ranges, explicit values, random draws, invalid combinations), trials
on shared chains equal to standalone backtests, identical results whatever the chunking, the research
statistics wired to the trials' excess returns, and the tracked job (parent run, trials table, heatmap,
selected trial's charts, lineage, child runs) through the CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from backtests.options import metrics as mx
from backtests.options.runner import run_backtest
from backtests.options.sweep.config import expand, parse_sweep_config
from backtests.options.sweep.research import position_returns, research_sections, run_option_sweep
from backtests.research.overfitting import pbo_cscv
from backtests.research.runner import use_runner
from quantlake.errors import ConfigError
from quantlake.lake import Lake

BASE: dict[str, Any] = {
    "name": "pcs", "underlying": "^GSPC", "start": "2015-03-02", "end": "2015-08-31",
    "strategy": {"kind": "put_credit_spread", "short_put": {"by": "delta", "value": [0.15, 0.3]},
                 "exits": {"profit_target": [0.5, None], "exit_regimes": []}},
    "market": {"rate": {"constant": 0.01}}, "overfitting": {"cscv_splits": 4},
}


def sweep(**over: Any) -> Any:
    return parse_sweep_config({**BASE, **over})


# ------------------------------------------------------------------------------------------------ grammar
def test_lists_ranges_and_explicit_values_make_the_grid() -> None:
    cfg = sweep(strategy={"kind": "iron_condor", "short_put": {"by": "delta", "value": [0.1, 0.2]},
                          "width": {"points": {"range": [25, 75], "step": 25}},
                          "exits": {"exit_regimes": {"values": [[], ["iv_expansion", "high_vol"]]},
                                    "stop_loss": 2.0}},
                execution={"fill": {"mode": ["market", "mid"]}}, commissions={"per_contract": 0.5})
    trials = expand(cfg)
    assert list(trials.params.columns) == ["short_put.value", "width.points", "exits.exit_regimes",
                                           "execution.fill.mode"]
    assert len(trials) == 2 * 3 * 2 * 2
    first, last = trials.configs[0], trials.configs[-1]
    assert (first.strategy.short_put.value, first.strategy.width.points, first.strategy.exits.exit_regimes,
            first.execution.fill.mode) == (0.1, 25, [], "market")
    assert (last.strategy.short_put.value, last.strategy.width.points, last.strategy.exits.exit_regimes,
            last.execution.fill.mode) == (0.2, 75, ["iv_expansion", "high_vol"], "mid")
    assert all(c.commissions.per_contract == 0.5 and c.strategy.exits.stop_loss == 2.0 for c in trials.configs)
    assert len({c.name for c in trials.configs}) == len(trials)
    # a list-valued setting written as a plain list is one value, not a sweep
    fixed = expand(sweep(strategy={**BASE["strategy"], "exits": {"exit_regimes": ["iv_expansion"]}}))
    assert "exits.exit_regimes" not in fixed.params.columns
    assert all(c.strategy.exits.exit_regimes == ["iv_expansion"] for c in fixed.configs)


def test_a_swept_null_stays_null() -> None:
    trials = expand(sweep())
    assert [c.strategy.exits.profit_target for c in trials.configs] == [0.5, None, 0.5, None]


def test_invalid_combinations_are_dropped_and_counted() -> None:
    trials = expand(sweep(strategy={**BASE["strategy"], "dte": {"min": [20, 60], "max": 50}}))
    assert len(trials) == 4 and all(c.strategy.dte.min == 20 for c in trials.configs)
    assert "4 of 8 combinations are not valid" in trials.notes[0] and "dte.min=60" in trials.notes[0]
    with pytest.raises(ConfigError, match=r"no valid combination.*dte\.min=55.*min \(55\) is above max \(50\)"):
        sweep(strategy={**BASE["strategy"], "dte": {"min": [55, 60], "max": 50}})


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"strategy: kind: one strategy per sweep"):
        sweep(strategy={"kind": ["put_credit_spread", "iron_condor"]})
    with pytest.raises(ConfigError, match=r"needs search\.method: random"):
        sweep(strategy={**BASE["strategy"], "max_open": {"uniform": [1, 3], "integer": True}})
    with pytest.raises(ConfigError, match=r"report.heatmap: 'width.pct' is not a swept setting"):
        sweep(report={"heatmap": ["short_put.value", "width.pct"]})
    with pytest.raises(ConfigError, match=r"short_put.value.*range \[0.3, 0.1\] is backwards"):
        sweep(strategy={**BASE["strategy"], "short_put": {"value": {"range": [0.3, 0.1], "step": 0.1}}})
    with pytest.raises(ConfigError, match="metric"):
        sweep(metric="win_rate")


def test_random_search_is_seeded_distinct_and_in_bounds() -> None:
    spec = {"kind": "put_credit_spread", "short_put": {"by": "delta", "value": {"uniform": [0.1, 0.3]}},
            "max_open": {"uniform": [1, 3], "integer": True}, "exits": {"exit_regimes": []}}
    a = expand(sweep(strategy=spec, search={"method": "random", "n": 12, "seed": 3}))
    b = expand(sweep(strategy=spec, search={"method": "random", "n": 12, "seed": 3}))
    pd.testing.assert_frame_equal(a.params, b.params)
    assert len(a) == 12 and not a.params.duplicated().any()
    assert a.params["short_put.value"].between(0.1, 0.3).all()
    assert set(a.params["max_open"]) <= {1, 2, 3}
    c = expand(sweep(strategy=spec, search={"method": "random", "n": 12, "seed": 4}))
    assert not a.params.equals(c.params)


# ------------------------------------------------------------------------------------------- the sweep
@pytest.fixture(scope="module")
def gspc_lake(sample_lake_dir: Path) -> Lake:
    return Lake(sample_lake_dir)  # read-only here: a sweep writes nothing to the lake


def thread_runner(fn: Any, items: Any) -> list[Any]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(fn, items))


@pytest.fixture(scope="module")
def four_chunks(gspc_lake: Lake) -> Any:
    cfg = sweep(chunks=4, walkforward={"train_bars": 60, "test_bars": 40}, montecarlo={"n_sims": 200})
    with use_runner(thread_runner):
        return run_option_sweep(cfg, gspc_lake)


def test_same_trials_table_with_one_chunk_and_with_four(gspc_lake: Lake, four_chunks: Any) -> None:
    one = run_option_sweep(sweep(chunks=1), gspc_lake)
    pd.testing.assert_frame_equal(one.trials, four_chunks.trials)
    pd.testing.assert_frame_equal(one.returns, four_chunks.returns)
    assert one.best == four_chunks.best and one.pbo.pbo == four_chunks.pbo.pbo
    assert four_chunks.trials["positions"].min() > 3  # the trials traded
    assert four_chunks.trials["sharpe"].nunique() == 4  # and their settings made a difference


def test_a_trial_is_the_standalone_backtest_of_its_config(gspc_lake: Lake, four_chunks: Any) -> None:
    trials = expand(four_chunks.config)
    k = 1
    alone = run_backtest(trials.configs[k], gspc_lake)  # its own ChainProvider, nothing shared
    excess = mx.returns(alone.daily, alone.initial_cash) - mx.cash_returns(alone.daily)
    np.testing.assert_allclose(four_chunks.returns[k].to_numpy(), excess.to_numpy(), rtol=1e-12, atol=1e-15)
    for m in ("sharpe", "cagr", "max_drawdown", "final_equity", "positions", "fees"):
        assert four_chunks.trials.loc[k, m] == pytest.approx(alone.metrics[m], rel=1e-12)


def test_selection_and_overfitting_statistics_read_the_trials_returns(four_chunks: Any) -> None:
    res = four_chunks
    assert res.best == int(res.trials["sharpe"].idxmax())
    r = res.returns.to_numpy()
    best = r[:, res.best]
    assert res.dsr.n_trials == 4 and res.dsr.n_obs == len(r)
    assert res.dsr.sharpe == pytest.approx(best.mean() / best.std(ddof=1), rel=1e-9)
    # the backtest's own Sharpe (annualized, excess of cash) is the same series' ratio
    assert res.trials.loc[res.best, "sharpe"] == pytest.approx(res.dsr.sharpe * np.sqrt(252), rel=1e-9)
    assert res.pbo.pbo == pbo_cscv(r, 4).pbo and res.pbo.n_combinations == 6
    # walk-forward: windows of 60 in-sample / 40 out-of-sample rows, stitched from the chosen trials' returns
    wf = res.walkforward
    assert len(wf.windows) == (len(r) - 60 + 39) // 40
    for w in wf.windows.itertuples():
        chosen = res.returns.loc[w.oos_start:w.oos_end, w.combo]
        pd.testing.assert_series_equal(wf.oos_returns.loc[w.oos_start:w.oos_end], chosen, check_names=False)
    # Monte Carlo resamples the selected trial's positions, each over the equity before it opened
    pos = res.selected.positions
    assert res.montecarlo.n_trades == len(pos)
    eq = res.selected.daily["equity"]
    first = pos.sort_values("closed", kind="stable").iloc[0]
    day_before = eq.index[list(eq.index).index(first["opened"]) - 1]
    assert position_returns(res.selected)[0] == pytest.approx(first["pnl"] / eq.loc[day_before], rel=1e-12)


def test_anchored_walk_forward_and_every_monte_carlo_method_on_the_option_trials(four_chunks: Any) -> None:
    """Anchored windows grow from the first day; each window picks the trial with the best Sharpe of its own
    in-sample excess returns (a plain mean/std here); the shuffle keeps every path's final equity at the
    product of the selected trial's position returns."""
    res = four_chunks
    cfg = res.config.model_copy(update={
        "walkforward": res.config.walkforward.model_copy(update={"mode": "anchored"}),
        "montecarlo": res.config.montecarlo.model_copy(update={"methods": ["bootstrap", "shuffle", "parametric"]}),
    })
    clean = res.returns.dropna(how="all").fillna(0.0)
    wf, mc = research_sections(cfg, clean, res.selected)
    first = clean.index[0]
    assert len(wf.windows) == len(res.walkforward.windows) >= 2
    for w in wf.windows.itertuples():
        assert w.is_start == first
        ins = clean.loc[first:w.is_end]
        sharpe = ins.mean() / ins.std(ddof=1)
        assert w.combo == sharpe.idxmax()
        pd.testing.assert_series_equal(wf.oos_returns.loc[w.oos_start:w.oos_end],
                                       clean.loc[w.oos_start:w.oos_end, w.combo], check_names=False)
    # rolling windows of the fixture started later than the first day after the first window
    assert (res.walkforward.windows["is_start"].iloc[1:] > first).all()
    trades = position_returns(res.selected)
    final = float(np.prod(1.0 + trades))
    assert set(mc.summary.index) == {"bootstrap", "shuffle", "parametric"} and mc.n_trades == len(trades)
    for q in ("final_p05", "final_p50", "final_p95"):
        assert mc.summary.loc["shuffle", q] == pytest.approx(final, rel=1e-9)
    assert mc.observed["final"] == pytest.approx(final, rel=1e-12)
    assert 0.0 <= mc.summary.loc["bootstrap", "risk_of_ruin"] <= 1.0


# ------------------------------------------------------------------------------------------ tracked job


@pytest.mark.slow
def test_cli_runs_the_tracked_sweep(store: Path, sample_lake_dir: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from backtests.options.cli import register
    from tracking.run_context import client

    data = {**BASE, "start": "2015-05-01", "end": "2015-08-31", "chunks": 2,
            "strategy": {**BASE["strategy"], "exits": {"profit_target": 0.5, "exit_regimes": []},
                         "width": {"pct": [0.01, 0.02]}},
            "report": {"child_runs": 2, "plots": True, "output_dir": str(tmp_path / "out")}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("QUANTLAKE_LAKE_URI", str(sample_lake_dir))  # read only: a sweep writes no table
    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(app, ["options-sweep", "--config", str(path), "--runner", "none"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "best trials" in out.output and "PBO (CSCV)" in out.output
    c = client()
    runs = c.search_runs([c.get_experiment_by_name("options_sweep").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and {r.data.tags["options.rank"] for r in children} == {"1", "2"}
    tags, metrics = parent.data.tags, parent.data.metrics
    assert tags["options.swept"] == "short_put.value,width.pct"
    assert {f"lake.version.{t}" for t in ("equity_bars", "macro_series")} <= set(tags)
    assert metrics["n_trials"] == 4 and 0 <= metrics["pbo.pbo"] <= 1 and "dsr.dsr" in metrics
    files = {f.path for f in c.list_artifacts(parent.info.run_id, "tables")}
    files |= {f.path for f in c.list_artifacts(parent.info.run_id, "reports")}
    files |= {f.path for f in c.list_artifacts(parent.info.run_id, "plots")}
    files |= {f.path for f in c.list_artifacts(parent.info.run_id)}
    for name in ("tables/trials.parquet", "reports/heatmap.html", "plots/equity.png", "plots/greeks.png",
                 "daily.parquet", "overfitting_stats.json"):
        assert name in files, sorted(files)
    local = Path(c.download_artifacts(parent.info.run_id, "tables/trials.parquet", str(tmp_path)))
    table = pd.read_parquet(local)
    assert len(table) == 4 and {"short_put.value", "width.pct", "sharpe", "sortino"} <= set(table.columns)
    stats = json.loads((tmp_path / "out" / "overfitting.json").read_text())
    assert stats["selected_trial"] == int(tags["options.selected_trial"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**data, "strategy": {**data["strategy"], "dte": {"min": 60, "max": 50}}}))
    err = CliRunner().invoke(app, ["options-sweep", "--config", str(bad)])
    assert isinstance(err.exception, ConfigError) and "dte: min (60) is above max (50)" in str(err.exception)


@pytest.mark.slow
@pytest.mark.integration
def test_flow_on_threads_and_chunks_on_dask_workers_give_the_sequential_table(
        store: Path, sample_lake_dir: Path, gspc_lake: Lake, four_chunks: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The options-sweep flow (its chunks as Prefect tasks on a thread pool), and the trial chunks run by two
    Dask worker processes (each with its own chain cache): the table of the one-chunk sequential sweep."""
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    from flows.options_backtest import run_options_sweep_flow

    monkeypatch.setenv("QUANTLAKE_LAKE_URI", str(sample_lake_dir))
    cfg = sweep(chunks=3, report={"plots": False})
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120}):
        digest = run_options_sweep_flow(cfg.model_dump(mode="json"), runner="thread", workers=2)
    pd.testing.assert_frame_equal(pd.read_parquet(digest["files"]["trials"]), four_chunks.trials)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        def dask(fn: Any, items: Any) -> list[Any]:
            return list(client.gather(client.map(fn, items, pure=False)))

        with use_runner(dask):
            on_dask = run_option_sweep(sweep(chunks=4), gspc_lake)
    pd.testing.assert_frame_equal(on_dask.trials, four_chunks.trials)


@pytest.mark.parametrize("path", sorted(Path("configs/options_sweep").glob("*.yaml")), ids=lambda p: p.stem)
def test_example_sweep_configs_validate(path: Path) -> None:
    from backtests.options.sweep.config import load_sweep_config

    trials = expand(load_sweep_config(path))
    assert len(trials) >= 2 and not trials.notes


def test_demo_sweep_config_is_the_example_file() -> None:
    """README's options-sweep examples run configs/options_sweep/demo_pcs_sweep.yaml: the demo's sweep."""
    import yaml

    from backtests.options.sweep.config import load_sweep_config, parse_sweep_config
    from backtests.options.sweep.demo import CONFIG

    path = Path("configs/options_sweep/demo_pcs_sweep.yaml")
    assert load_sweep_config(path) == parse_sweep_config(CONFIG)
    assert yaml.safe_load(path.read_text())["name"] == CONFIG["name"]
