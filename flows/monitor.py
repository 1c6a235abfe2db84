"""Flow: the daily check of a champion model (input drift per feature, paper vs backtest); past the
thresholds it starts a ``train-models`` run whose new version goes through the promotion gate.

Thin: the check, alert, retraining and record are :func:`tracking.ml.monitor_run.run_check` (``quantlake
models monitor --no-flow`` runs it without Prefect).  The retraining runs through the ``train-models``
deployment when a Prefect server has it (a worker runs it; this flow returns its flow-run id), otherwise
in-process as a subflow.  Each check is an MLflow run (experiment ``monitoring``), a Prefect artifact
(``model-monitor-<model>``) and, when it triggers, a ``monitor`` alert (de-duplicated per model).
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly
from quantlake.errors import ConfigError

TRAIN_DEPLOYMENT = "train-models/train-models"


def submit_retraining(parameters: dict[str, Any]) -> dict[str, Any]:
    """Through the deployment when the configured Prefect server has it, else in-process."""
    if os.environ.get("PREFECT_API_URL"):
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        try:
            run: Any = run_deployment(name=TRAIN_DEPLOYMENT, parameters=parameters, timeout=0)
            return {"via": "deployment", "deployment": TRAIN_DEPLOYMENT, "flow_run_id": str(run.id)}
        except ObjectNotFound:
            get_run_logger().warning("deployment %s not on the server: retraining in-process", TRAIN_DEPLOYMENT)
    from flows.train_models import train_models_flow

    result: Any = train_models_flow(**parameters)
    if not isinstance(result, dict):
        raise ConfigError(f"the retraining failed: {getattr(result, 'message', result)}")
    return {"via": "in-process", **result}


@flow(name="monitor-models", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def monitor_flow(config: dict[str, Any] | None = None) -> dict[str, Any] | State[Any]:
    """Check ``config.model``'s champion; retrain (and gate) it when a threshold is crossed."""
    from prefect.artifacts import create_markdown_artifact

    from tracking.ml import monitor
    from tracking.ml.monitor_run import parse_config, run_check

    outcome = run_check(parse_config(config), retrain=submit_retraining, log=get_run_logger())
    report = outcome.report
    slug = "".join(ch if ch.isalnum() else "-" for ch in report.model.lower())
    create_markdown_artifact(key=f"model-monitor-{slug}", markdown=monitor.summary_markdown(report, outcome.retraining),
                             description=f"drift and performance of {report.model}")  # fmt: skip
    return outcome.as_dict()
