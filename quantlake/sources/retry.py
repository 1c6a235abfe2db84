"""Which network failures are worth retrying, and a plain retrying ``fetch`` for runs without Prefect.

With a Prefect flow, network calls are ``flows.tasks.fetch_task`` (Prefect's retries, visible in the UI);
``--no-flow`` runs use :func:`retrying_fetch` with the same schedule (1 s, 2 s, 4 s plus up to 50 % jitter)
and the same rule, :func:`is_transient`.  Hand-written because it is ten lines and the only retry library
in reach (Prefect's) needs a task run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from quantlake.errors import SourceError, SourceUnavailableError, UserInputError

T = TypeVar("T")
RETRY_DELAYS = (1.0, 2.0, 4.0)
JITTER = 0.5


def is_transient(exc: BaseException) -> bool:
    """Retry outages and HTTP errors; never a user mistake (unknown symbol, missing key) nor a failed DNS
    lookup (no network at all: retrying within seconds only delays the error)."""
    if isinstance(exc, UserInputError):
        return False
    if isinstance(exc, SourceUnavailableError):
        return "DNS lookup failed" not in str(exc)
    return isinstance(exc, SourceError)


def retrying_fetch(
    fn: Callable[..., T],
    args: Sequence[Any],
    delays: Sequence[float] = RETRY_DELAYS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn(*args)``, retried after each delay of ``delays`` while the failure :func:`is_transient`."""
    for delay in (*delays, None):
        try:
            return fn(*args)
        except Exception as exc:
            if delay is None or not is_transient(exc):
                raise
            sleep(delay * (1.0 + random.uniform(0.0, JITTER)))
    raise AssertionError("unreachable")  # pragma: no cover
