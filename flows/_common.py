"""Small helpers the flows share (kept out of quantlake so the library never imports Prefect)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect.flows import FlowStateHook
from prefect.logging import get_run_logger
from prefect.states import Failed, State

from execution import alerts
from quantlake.errors import QuantlakeError
from quantlake.ingest import IngestReport, failures_error

P = ParamSpec("P")
R = TypeVar("R")

# on_failure / on_crashed hooks of every flow: a failed or crashed run also sends an alert (log line, Prefect
# event, $QUANTLAKE_HOME/reports/alerts.jsonl, e-mail when SMTP is configured) instead of failing silently.
ALERT_HOOKS: list[FlowStateHook[..., Any]] = [alerts.flow_failure_hook]
# on_completion hooks: a flow that was failing completes again -> its alert is resolved (sent once); the next
# failure alerts again (alerts are de-duplicated per flow: a flow failing the same way daily alerts once)
RESOLVE_HOOKS: list[FlowStateHook[..., Any]] = [alerts.flow_completion_hook]


def quantlake_errors_fail_cleanly(fn: Callable[P, R]) -> Callable[P, R | State[Any]]:
    """Turn a quantlake error into a Failed state carrying it (no traceback in the logs).

    The run is still Failed in the Prefect UI with the one-line message, and a caller of the flow or task
    gets the original exception back (Prefect re-raises the state's data), so the CLI prints one line.
    Anything else (a bug) keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | State[Any]:
        try:
            return fn(*args, **kwargs)
        except QuantlakeError as exc:
            return Failed(message=str(exc), data=exc)

    return wrapper


def finish(reports: list[IngestReport]) -> list[dict[str, Any]] | State[Any]:
    """Log the reports; a Failed state naming every failed key if any failed (after the rest committed)."""
    summary = log_reports(reports)
    err = failures_error(reports)
    if err is not None:
        return Failed(message=str(err), data=err)
    return summary


def log_reports(reports: list[IngestReport]) -> list[dict[str, Any]]:
    logger = get_run_logger()
    out = []
    for r in reports:
        logger.info(r.summary())
        for reason, n in r.reasons.most_common():
            logger.warning("%s: %d row(s) quarantined: %s", r.table, n, reason)
        for key, exc in r.failures.items():
            logger.error("%s: %s failed: %s", r.table, key, exc)
        for note in r.notes:
            logger.info("%s: %s", r.table, note)
        out.append(
            {
                "table": r.table,
                "source": r.source,
                "rows_read": r.rows_read,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "inserted": r.inserted,
                "updated": r.updated,
                "version": r.version,
                "failed": sorted(r.failures),
                "notes": list(r.notes),
            }
        )
    return out
