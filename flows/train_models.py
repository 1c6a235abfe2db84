"""Flow: train the ML signal models (tracked job ``models.train``) and register them.

Thin: the work is :func:`tracking.ml.train.train_job` (run through the jobs registry so it is reproducible
with ``quantlake runs reproduce``) and :func:`tracking.ml.train.register_trained`.
"""

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

import tracking.ml.jobs  # noqa: F401  (registers the job here: no discovery of every package's jobs)
from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly
from flows.promote import promote_flow
from tracking.jobs import run_job
from tracking.ml.report import register_trained
from tracking.ml.train import JOB


@flow(name="train-models", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def train_models_flow(
    config: dict[str, Any] | None = None,
    register_models: bool = True,
    prefix: str = "ml",
    promote: list[str] | None = None,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any] | State[Any]:
    """Train (walk-forward OOS metrics logged per model), then register each model as ``<prefix>_<family>``;
    the new versions of the models named in ``promote`` then go through the promotion gate ``gate`` (a
    ``promote-models`` subflow; never forced: a version failing the gate stays a candidate)."""
    logger = get_run_logger()
    run_id = run_job(JOB, config or {})
    logger.info("training run %s finished", run_id)
    versions = register_trained(run_id, prefix) if register_models else {}
    for name, version in versions.items():
        logger.info("registered %s version %s", name, version)
    decisions: Any = []
    candidates = {n: int(versions[n]) for n in promote or [] if n in versions}
    if candidates:
        decisions = promote_flow(candidates, gate=gate)
    return {"run_id": run_id, "versions": versions, "decisions": decisions}
