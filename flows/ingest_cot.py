"""Flow: ingest CFTC Commitments of Traders reports into ``cot_positions``."""


import datetime as dt
from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, finish, quantlake_errors_fail_cleanly
from flows.tasks import network_fetch
from quantlake.ingest_run import run_ingest


@flow(name="ingest-cot", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_cot_flow(
    source: str = "cot",
    path: str | None = None,
    report_types: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]] | State[Any]:
    reports = run_ingest("cot", source, path=path, report_types=report_types, start=start, end=end, full=full,
                         progress=progress, network_fetch=network_fetch)
    return finish(reports)
