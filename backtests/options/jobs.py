"""The ``options_backtest`` job: registered with :mod:`tracking.jobs` so every run is tracked in MLflow
(config, lineage of every lake table read, provenance) and can be reproduced with ``quantlake runs
reproduce``.  :func:`run_tracked` runs it and also hands back the in-memory result."""

from __future__ import annotations

from pathlib import Path

from backtests.options.config import OptionsBacktestConfig
from backtests.options.report import log_result, output_dir, write_outputs
from backtests.options.runner import BacktestResult, run_backtest
from quantlake.lake import Lake
from tracking.jobs import register_job
from tracking.run_context import current_run

JOB = "options_backtest"
EXPERIMENT = "options_backtest"

_last: dict[str, BacktestResult] = {}


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v == v and abs(v) != float("inf")}


@register_job(JOB, OptionsBacktestConfig, experiment=EXPERIMENT)
def options_backtest(config: OptionsBacktestConfig, lake: Lake) -> dict[str, float]:
    """Option strategy backtest (backtrader + observed/modeled chains): trades, equity, Greeks, metrics."""
    result = run_backtest(config, lake)
    run = current_run()
    files = write_outputs(result, output_dir(config, run.run_id if run else None), plots=config.outputs.plots,
                          tearsheet=config.outputs.tearsheet)
    if run is not None:
        log_result(run, result, files)
        _last[run.run_id] = result
    result.extra["files"] = {k: str(v) for k, v in files.items()}
    return _finite(result.metrics)


def run_tracked(config: OptionsBacktestConfig, lake: Lake | None = None) -> tuple[str, BacktestResult]:
    """Run ``config`` as a tracked job; returns the MLflow run id and the result."""
    from tracking.jobs import run_job

    run_id = run_job(JOB, config, lake, experiment=config.tracking.experiment,
                     run_name=config.tracking.run_name or config.name)
    return run_id, _last.pop(run_id)


def result_files(result: BacktestResult) -> dict[str, Path]:
    return {k: Path(v) for k, v in result.extra.get("files", {}).items()}
