"""Flow: ingest option chains into ``option_quotes`` (vendor chain files, the sample, network snapshots)."""


from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, finish, quantlake_errors_fail_cleanly
from flows.tasks import network_fetch
from quantlake.ingest_run import run_ingest


@flow(name="ingest-options", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_options_flow(
    source: str = "sample",
    underlyings: list[str] | None = None,
    path: str | None = None,
    fmt: str = "auto",
    underlying: str | None = None,
    iv_unit: str = "auto",
    quote_time: str = "eod",
    progress: bool = True,
) -> list[dict[str, Any]] | State[Any]:
    reports = run_ingest(
        "options", source, keys=underlyings, path=path, fmt=fmt, underlying=underlying, iv_unit=iv_unit,
        quote_time=quote_time, progress=progress, network_fetch=network_fetch,
    )  # fmt: skip
    return finish(reports)
