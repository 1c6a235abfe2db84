"""Flows: one option strategy backtest, and an option sweep (many trials in chunks on the task runner), each
tracked in MLflow (the work is in :mod:`backtests.options`).

No ``from __future__ import annotations`` here: Prefect validates the flow's parameters from its annotations.
"""

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from backtests.options.config import load_config, parse_config
from backtests.options.jobs import result_files, run_tracked
from backtests.research.runner import use_runner
from flows._common import (
    ALERT_HOOKS,
    RESOLVE_HOOKS,
    prefect_runner,
    quantlake_errors_fail_cleanly,
    task_runner,
)
from quantlake.errors import UserInputError
from quantlake.lake import Lake


@flow(name="options-backtest", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def options_backtest_flow(config: dict[str, Any] | str) -> dict[str, Any] | State[Any]:
    """``config``: a config mapping (JSON-able) or the path of a YAML/JSON config file."""
    cfg = load_config(config) if isinstance(config, str) else parse_config(config)
    run_id, result = run_tracked(cfg)
    logger = get_run_logger()
    m = result.metrics
    logger.info("%s: final equity %.2f, CAGR %.2f%%, max drawdown %.2f%%, %d positions; MLflow run %s",
                cfg.name, m["final_equity"], 100 * m["cagr"], 100 * m["max_drawdown"], int(m["positions"]), run_id)
    logger.info("leg-days priced: %d observed, %d modeled", result.leg_days["observed"], result.leg_days["modeled"])
    if len(result.skipped):
        logger.info("%d entries skipped (skipped.parquet says why), first: %s", len(result.skipped),
                    result.skipped.iloc[0]["reason"])
    return {"run_id": run_id, "metrics": result.summary(), "files": {k: str(v) for k, v in result_files(result).items()},
            "result": result}


@flow(name="options-sweep", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def options_sweep_flow(
    config: dict[str, Any] | str, as_of: dict[str, int] | None = None, dask_address: str | None = None
) -> dict[str, Any] | State[Any]:
    """An option sweep (job ``options.sweep``) as one MLflow run, its trial chunks fanned out as tasks on the
    flow's task runner, or as Dask tasks on the existing cluster at ``dask_address`` (default
    ``$QUANTLAKE_DASK_ADDRESS`` / ``dask.address`` of the config file).  ``config``: a sweep config mapping or
    the path of a YAML/JSON file; ``as_of`` pins table versions."""
    from backtests.options.sweep.config import load_sweep_config, parse_sweep_config
    from backtests.options.sweep.jobs import JOB, summary
    from quantlake.cluster import cluster_runner
    from quantlake.config import dask_address as configured_dask
    from tracking.jobs import run_job

    cfg = load_sweep_config(config) if isinstance(config, str) else parse_sweep_config(config)
    address = configured_dask(dask_address)
    with use_runner(cluster_runner(address) if address else prefect_runner):
        run_id = run_job(JOB, cfg, Lake(pins=as_of), run_name=cfg.name)
    digest = summary(run_id)
    m = digest.get("metrics", {})
    get_run_logger().info(
        "%s: %d trials, selected %s, deflated Sharpe %.3f, PBO %.3f, %.2f s per trial; MLflow run %s", cfg.name,
        int(m.get("n_trials", 0)), digest.get("best_params"), m.get("dsr.dsr", float("nan")),
        m.get("pbo.pbo", float("nan")), digest.get("timing", {}).get("seconds_per_trial", float("nan")), run_id)
    return digest


def run_options_sweep_flow(config: dict[str, Any], runner: str = "thread", workers: int = 2,
                           as_of: dict[str, int] | None = None, dask_address: str | None = None) -> dict[str, Any]:
    """Run :func:`options_sweep_flow` on the chosen task runner (``thread`` or ``dask``), or its chunks on the
    existing Dask cluster at ``dask_address``."""
    out = options_sweep_flow.with_options(task_runner=task_runner("thread" if dask_address else runner, workers))(
        config=config, as_of=as_of, dask_address=dask_address)
    if not isinstance(out, dict):  # a Failed state returned instead of raised
        raise UserInputError(f"options sweep flow failed: {out}")
    return out
