"""Research chunks on an existing Dask cluster (issue 14): ``--dask-address`` / ``QUANTLAKE_DASK_ADDRESS``.

The flow stays the orchestrator (one Prefect flow run, one MLflow run); each chunk is a plain Dask task on
the cluster, so workers need only the same quantlake installation and lake settings — not access to the
Prefect API (a Prefect task on a worker without ``PREFECT_API_URL`` would start its own temporary server
first: minutes on a busy machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from quantlake.errors import SourceUnavailableError

ChunkRunner = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]


def cluster_runner(address: str, timeout: float = 30) -> ChunkRunner:
    """A chunk runner that maps ``fn`` over ``items`` on the scheduler at ``address`` (results in order)."""

    def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        from distributed import Client

        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except OSError as exc:
            raise SourceUnavailableError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:
            futures = client.map(fn, list(items), pure=False)
            return list(client.gather(futures))
        finally:
            client.close()

    return run


def check_reachable(address: str, timeout: float = 10) -> None:
    """Fail in one line, before any flow starts, when nothing listens at the scheduler's address."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(address)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 8786), timeout=timeout):
            return
    except OSError as exc:
        raise SourceUnavailableError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}") from None
