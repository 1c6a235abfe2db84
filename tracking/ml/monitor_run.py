"""One monitoring check of a champion end to end, without Prefect: the checks (:mod:`tracking.ml.monitor`), the
``monitor`` alert (sent when it triggers, resolved when it does not), the retraining past the thresholds and
the MLflow record.  The ``monitor-models`` flow (:mod:`flows.monitor`) runs this with its own retraining
(through the ``train-models`` deployment or subflow); ``quantlake models monitor --no-flow`` runs it with
:func:`retrain_directly` (the same training job, registration and promotion gate, in this process).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from quantlake.errors import ConfigError
from tracking.ml import monitor

Retrain = Callable[[dict[str, Any]], dict[str, Any]]


@dataclasses.dataclass
class MonitorOutcome:
    report: monitor.MonitorReport
    retraining: dict[str, Any] | None
    record_run_id: str

    def as_dict(self) -> dict[str, Any]:
        """What the flow returns and the CLI prints."""
        r = self.report
        return {"model": r.model, "version": r.version, "triggered": r.triggered, "reasons": r.reasons,
                "drift_status": r.drift_status, "performance": r.performance, "window": r.window,
                "drift": r.drift.head(20).to_dict(orient="records"), "retraining": self.retraining,
                "record_run_id": self.record_run_id}  # fmt: skip


def parse_config(config: dict[str, Any] | None) -> monitor.MonitorConfig:
    try:
        return monitor.MonitorConfig.model_validate(config or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid monitor config: {problems}") from None


def retrain_directly(parameters: dict[str, Any]) -> dict[str, Any]:
    """``train_models_flow``'s work without Prefect: the ``models.train`` job, registration as
    ``<prefix>_<family>``, and the named models' new versions through the promotion gate (never forced)."""
    import tracking.ml.jobs  # noqa: F401  (registers the models.train job)
    from tracking.jobs import run_job
    from tracking.ml.report import register_trained
    from tracking.ml.train import JOB
    from tracking.promotion import PromotionGate, promote

    try:
        gate = PromotionGate.model_validate(parameters.get("gate") or {})
    except ValidationError as exc:
        raise ConfigError(f"invalid promotion gate: {exc.errors()[0]['msg']}") from None
    run_id = run_job(JOB, parameters.get("config") or {})
    versions = register_trained(run_id, parameters.get("prefix", "ml"))
    decisions = [promote(name, versions[name], gate).summary() for name in parameters.get("promote") or []
                 if name in versions]  # fmt: skip
    return {"via": "in-process (no flow)", "run_id": run_id, "versions": versions, "decisions": decisions}


def run_check(cfg: monitor.MonitorConfig, retrain: Retrain = retrain_directly,
              log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> MonitorOutcome:  # fmt: skip
    """Check ``cfg.model``'s champion; alert and retrain (``retrain(parameters)``) when a threshold is crossed."""
    from execution import alerts

    log = log or logging.getLogger("quantlake.monitor")
    champ = monitor.champion(cfg.model)
    report = monitor.check(cfg, champ=champ)
    log.info("%s v%s: inputs %s; paper %s", report.model, report.version, report.drift_status,
             report.performance["status"])  # fmt: skip
    retraining: dict[str, Any] | None = None
    key = f"monitor:{report.model}"
    if report.triggered:
        for r in report.reasons:
            log.warning("%s: %s", report.model, r)
        alerts.send(alerts.Alert("monitor", "warning", f"{report.model} v{report.version} needs retraining",
                                 "; ".join(report.reasons), {"model": report.model, "version": report.version},
                                 key=key))  # fmt: skip
        if cfg.retrain:
            retraining = retrain(monitor.retrain_parameters(champ, cfg))
            log.info("retraining: %s", retraining)
    else:
        alerts.resolve(key, f"{report.model} v{report.version}: inputs and paper performance within thresholds")
    return MonitorOutcome(report, retraining, monitor.record(report, cfg, retraining))
