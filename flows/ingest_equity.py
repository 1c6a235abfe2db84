"""Flow: ingest daily bars and corporate actions from one source into the lake."""


import datetime as dt
from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, finish, quantlake_errors_fail_cleanly
from flows.tasks import network_fetch
from quantlake.ingest_run import run_ingest


@flow(name="ingest-equity", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_equity_flow(
    source: str = "sample",
    symbols: list[str] | None = None,
    path: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    progress: bool = True,
    csv_options: dict[str, Any] | None = None,
    cross_check: bool = True,
    tolerance: float = 0.005,
) -> list[dict[str, Any]] | State[Any]:
    """``source`` may be a chain (``yahoo,stooq``): fallback, cross-checked closes, daily quotas."""
    reports = run_ingest("equity", source, keys=symbols, path=path, start=start, end=end, full=full,
                         progress=progress, network_fetch=network_fetch, csv_options=csv_options,
                         cross_check=cross_check, tolerance=tolerance)
    return finish(reports)
