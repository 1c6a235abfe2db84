"""Small helpers the flows share (kept out of quantlake so the library never imports Prefect)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ParamSpec, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.flows import FlowStateHook
from prefect.logging import get_run_logger
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from execution import alerts
from quantlake.errors import QuantlakeError, UserInputError
from quantlake.ingest import IngestReport, failures_error
from quantlake.redact import redact_urls

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
            return Failed(message=redact_urls(str(exc)), data=exc)

    return wrapper


def finish(reports: list[IngestReport]) -> list[dict[str, Any]] | State[Any]:
    """Log the reports; a Failed state naming every failed key if any failed (after the rest committed)."""
    summary = log_reports(reports)
    err = failures_error(reports)
    if err is not None:
        return Failed(message=redact_urls(str(err)), data=err)
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


# ------------------------------------------------------------------------ research chunks on task runners
RUNNERS = ("thread", "dask")


@task(name="research-chunk", cache_policy=NO_CACHE, task_run_name="chunk {label}")
@quantlake_errors_fail_cleanly  # an expected error in a chunk: one log line, raised again by .result()
def chunk_task(fn: Callable[[Any], Any], item: Any, label: str = "") -> Any:
    return fn(item)


def prefect_runner(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
    """A :mod:`backtests.research.runner` runner: every chunk a task on the flow's task runner.  The results
    are handed on in order, each as soon as it is ready (the future is dropped once its result has been
    taken).  Equity sweeps (symbol chunks) and option sweeps (trial chunks) install it."""
    futures: list[Any] = [chunk_task.submit(fn, item, label=str(i)) for i, item in enumerate(items)]
    for i in range(len(futures)):
        future, futures[i] = futures[i], None
        yield future.result()


# Dask's connection teardown at the end of a run logs CommClosedError tracebacks (a worker's stream closed
# while the scheduler shut down) and ~40 INFO lines per run; task failures still surface as failed tasks.
_DASK_TEARDOWN_LOGGERS = ("distributed.comm", "distributed.batched", "distributed.core", "distributed.worker",
                          "distributed.nanny", "distributed.client", "tornado.application")


def quiet_dask_logs() -> None:
    """Dask's loggers at WARNING, its connection-teardown loggers at CRITICAL."""
    logging.getLogger("distributed").setLevel(logging.WARNING)
    for name in _DASK_TEARDOWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def task_runner(kind: str = "thread", workers: int = 2) -> Any:
    """``thread``: a thread pool; ``dask``: a local Dask cluster of ``workers`` processes (one thread each).
    (An existing cluster is not a task runner here: see ``dask_address`` of the research flows.)"""
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        quiet_dask_logs()
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "silence_logs": logging.ERROR,  # the workers' own start/stop chatter
            }
        )
    raise UserInputError(f"unknown task runner {kind!r}; choose one of: {', '.join(RUNNERS)}")
