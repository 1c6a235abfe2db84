"""Flow: ingest option-chain snapshots into ``option_quotes``."""


from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, finish, quantlake_errors_fail_cleanly
from flows.tasks import network_fetch
from quantlake.ingest import direct_fetch, ingest_options
from quantlake.lake import Lake
from quantlake.sources import NETWORK_SOURCES, get_source, rate_limit


@flow(name="ingest-options", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_options_flow(
    source: str = "sample", underlyings: list[str] | None = None, progress: bool = True
) -> list[dict[str, Any]] | State[Any]:
    src = get_source(source)
    reports = ingest_options(
        Lake(),
        src,
        underlyings,
        fetch=network_fetch if source in NETWORK_SOURCES else direct_fetch,
        rate_limit=rate_limit(source),
        progress=progress,
    )
    return finish(reports)
