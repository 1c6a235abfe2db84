"""Flow: compact and vacuum the lake's tables (the work is in :mod:`quantlake.maintenance`).

No ``from __future__ import annotations`` here: Prefect validates the flow's parameters from its annotations.
"""

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly
from quantlake.errors import LakeError
from quantlake.lake import Lake
from quantlake.maintenance import DEFAULT_RETENTION_HOURS, maintain_lake


@flow(name="lake-maintenance", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def lake_maintenance_flow(
    tables: list[str] | None = None, retention_hours: int = DEFAULT_RETENTION_HOURS
) -> dict[str, Any] | State[Any]:
    """``tables``: the tables to maintain (default all); ``retention_hours``: every version younger than this
    stays readable.  A table that could not be maintained fails the run (after the others are done)."""
    rows = maintain_lake(Lake(), tables, retention_hours)
    logger = get_run_logger()
    for r in rows:
        logger.info("%s: %d file(s) -> %d (%d compacted, %d deleted), version %s (%.1f s)%s", r.table,
                    r.files_before, r.files_after, r.compacted, r.deleted, r.version, r.seconds,
                    f"; not maintained: {r.error}" if r.error else "")  # fmt: skip
    failed = [f"{r.table}: {r.error}" for r in rows if r.error]
    if failed:
        raise LakeError("lake maintenance left table(s) as they were: " + "; ".join(failed))
    return {"tables": [r.__dict__ for r in rows]}
