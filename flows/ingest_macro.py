"""Flow: ingest macro series (FRED, with realtime_start vintages) into ``macro_series``."""


import datetime as dt
from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, finish, quantlake_errors_fail_cleanly
from flows.tasks import network_fetch
from quantlake.ingest_run import run_ingest


@flow(name="ingest-macro", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_macro_flow(
    source: str = "sample",
    series: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]] | State[Any]:
    reports = run_ingest("macro", source, keys=series, start=start, end=end, full=full, progress=progress,
                         network_fetch=network_fetch)
    return finish(reports)
