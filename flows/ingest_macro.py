"""Flow: ingest macro series (FRED, with realtime_start vintages) into ``macro_series``."""


import datetime as dt
from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, finish, quantlake_errors_fail_cleanly
from flows.tasks import network_fetch
from quantlake.ingest import direct_fetch, ingest_macro
from quantlake.lake import Lake
from quantlake.sources import NETWORK_SOURCES, get_source, rate_limit


@flow(name="ingest-macro", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_macro_flow(
    source: str = "sample",
    series: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]] | State[Any]:
    src = get_source(source)
    reports = ingest_macro(
        Lake(),
        src,
        series,
        start,
        end,
        full=full,
        fetch=network_fetch if source in NETWORK_SOURCES else direct_fetch,
        rate_limit=rate_limit(source),
        progress=progress,
    )
    return finish(reports)
