"""Prefect tasks shared by the ingest flows: a network call with retries and exponential backoff."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from flows._common import quantlake_errors_fail_cleanly
from quantlake.sources.retry import JITTER, RETRY_DELAYS, is_transient


def _transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry outages and HTTP errors, never a user mistake (:func:`quantlake.sources.retry.is_transient`)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


@task(
    name="fetch",
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=list(RETRY_DELAYS),  # 1 s, 2 s, 4 s (+ jitter)
    retry_jitter_factor=JITTER,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
    task_run_name="fetch {label}",
    log_prints=True,
)
@quantlake_errors_fail_cleanly
def fetch_task(fn: Callable[..., Any], args: Sequence[Any], label: str = "") -> Any:
    return fn(*args)


def network_fetch(fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    """The ``fetch`` hook of :mod:`quantlake.ingest` for network sources: one Prefect task per call."""
    label = f"{getattr(fn, '__name__', 'call')}({', '.join(str(a) for a in args if a is not None)})"
    state = fetch_task(fn, args, label=label, return_state=True)
    return state.result()  # a Failed state re-raises the quantlake error it carries
