"""The ``options.sweep`` job: registered with :mod:`tracking.jobs`, so every option sweep is one MLflow run
(experiment ``options_sweep``) with the config, the lineage of every lake table read (the versions the trials
were pinned to) and provenance, reproducible with ``quantlake runs reproduce RUN_ID``."""

from __future__ import annotations

from typing import Any

from backtests.options.sweep.config import OptionsSweepConfig
from backtests.options.sweep.report import log_sweep, write_reports
from backtests.options.sweep.research import OptionSweepResult, rank_order, run_option_sweep
from quantlake.lake import Lake
from tracking.jobs import register_job
from tracking.run_context import current_run

JOB = "options.sweep"
EXPERIMENT = "options_sweep"
# run id -> result of a sweep run in this process (the flow and the CLI read it back to print it)
RESULTS: dict[str, OptionSweepResult] = {}


@register_job(JOB, OptionsSweepConfig, experiment=EXPERIMENT)
def options_sweep(config: OptionsSweepConfig, lake: Lake) -> dict[str, float]:
    """Option strategy sweep: trials on shared chains, heatmaps, DSR/PBO, optional walk-forward and Monte Carlo."""
    res = run_option_sweep(config, lake)
    write_reports(res)
    run = current_run()
    if run is not None:
        log_sweep(run, res, lake)
        RESULTS[run.run_id] = res
    return res.metrics()


def summary(run_id: str, top: int = 5) -> dict[str, Any]:
    """JSON-able digest of a sweep finished in this process (the flow's return value)."""
    res = RESULTS.pop(run_id, None)
    if res is None:
        return {"run_id": run_id}
    order = rank_order(res.trials[res.config.metric], res.config.metric).index[:top]
    cols = [*res.swept, "sharpe", "cagr", "max_drawdown", "positions", "win_rate"]
    table = res.trials.loc[order, list(dict.fromkeys(cols))].reset_index()
    return {
        "run_id": run_id, "best_trial": res.best, "best_params": res.best_params, "metrics": res.metrics(),
        "timing": res.timing(), "top": table.to_dict("records"), "notes": res.notes,
        "files": {k: str(v) for k, v in res.files.items()},
    }
