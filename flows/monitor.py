"""Flow: the daily check of a champion model (input drift per feature, paper vs backtest); past the
thresholds it starts a ``train-models`` run whose new version goes through the promotion gate.

Thin: the checks are :mod:`tracking.ml.monitor`.  The retraining runs through the ``train-models``
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
from pydantic import ValidationError

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

    from execution import alerts
    from tracking.ml import monitor

    logger = get_run_logger()
    try:
        cfg = monitor.MonitorConfig.model_validate(config or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid monitor config: {problems}") from None
    champ = monitor.champion(cfg.model)
    report = monitor.check(cfg, champ=champ)
    logger.info("%s v%s: inputs %s; paper %s", report.model, report.version, report.drift_status,
                report.performance["status"])  # fmt: skip
    retraining: dict[str, Any] | None = None
    key = f"monitor:{report.model}"
    if report.triggered:
        for r in report.reasons:
            logger.warning("%s: %s", report.model, r)
        alerts.send(alerts.Alert("monitor", "warning", f"{report.model} v{report.version} needs retraining",
                                 "; ".join(report.reasons), {"model": report.model, "version": report.version},
                                 key=key))  # fmt: skip
        if cfg.retrain:
            retraining = submit_retraining(monitor.retrain_parameters(champ, cfg))
            logger.info("retraining: %s", retraining)
    else:
        alerts.resolve(key, f"{report.model} v{report.version}: inputs and paper performance within thresholds")
    record_id = monitor.record(report, cfg, retraining)
    slug = "".join(ch if ch.isalnum() else "-" for ch in report.model.lower())
    create_markdown_artifact(key=f"model-monitor-{slug}", markdown=monitor.summary_markdown(report, retraining),
                             description=f"drift and performance of {report.model}")  # fmt: skip
    return {"model": report.model, "version": report.version, "triggered": report.triggered,
            "reasons": report.reasons, "drift_status": report.drift_status, "performance": report.performance,
            "drift": report.drift.head(20).to_dict(orient="records"), "retraining": retraining,
            "record_run_id": record_id}  # fmt: skip
