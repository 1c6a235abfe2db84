"""Flow: one option strategy backtest, tracked in MLflow (the work is in :mod:`backtests.options`).

No ``from __future__ import annotations`` here: Prefect validates the flow's parameters from its annotations.
"""

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from backtests.options.config import load_config, parse_config
from backtests.options.jobs import result_files, run_tracked
from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly


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
