"""Flow: judge model versions with the promotion gate; move ``champion`` for those that pass.

Thin: the work is :func:`tracking.promotion.promote`, which records every decision (model version tags and a
run in the ``promotions`` experiment).
"""

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State
from pydantic import ValidationError

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly
from quantlake.errors import ConfigError
from tracking.promotion import PromotionGate, promote


@flow(name="promote-models", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def promote_flow(
    candidates: dict[str, int], gate: dict[str, Any] | None = None, force: bool = False, note: str = ""
) -> list[dict[str, Any]] | State[Any]:
    """``candidates`` maps model name → version.  Returns one decision summary per candidate."""
    logger = get_run_logger()
    try:
        gate_cfg = PromotionGate.model_validate(gate or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid promotion gate: {problems}") from None
    out = []
    for name, version in candidates.items():
        d = promote(name, version, gate_cfg, force=force, note=note)
        logger.info("%s v%s: %s (%s)", name, d.version, d.outcome, d.reasons)
        out.append(d.summary())
    return out
