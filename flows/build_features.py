"""Flow: build the feature tables (the work is in :mod:`features.build`).

No ``from __future__ import annotations`` here: Prefect validates the flow's parameters from its annotations.
"""

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from features.build import build_features
from features.settings import FeatureSettings
from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly
from quantlake.lake import Lake


@flow(name="build-features", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def build_features_flow(
    tables: list[str] | None = None,
    full: bool = False,
    settings: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any] | State[Any]:
    """``tables``: feature tables to build (default all); ``full``: rebuild instead of incremental;
    ``settings``: :class:`features.settings.FeatureSettings` fields (periods, regime thresholds...)."""
    report = build_features(Lake(), tables, full, FeatureSettings.parse(settings), progress=progress)
    logger = get_run_logger()
    for r in report.results:
        logger.info("%s: %s, %d row(s) written, version %s (%.1f s) %s",
                    r.table, r.mode, r.written, r.version, r.seconds, r.detail)  # fmt: skip
    return {"results": report.as_dicts(), "inputs": report.inputs, "seconds": report.seconds}
