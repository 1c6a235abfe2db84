"""Flow: ingest option-chain snapshots into ``option_quotes``."""


from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, finish, quantlake_errors_fail_cleanly
from flows.tasks import network_fetch
from quantlake.ingest_run import run_ingest


@flow(name="ingest-options", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_options_flow(
    source: str = "sample", underlyings: list[str] | None = None, progress: bool = True
) -> list[dict[str, Any]] | State[Any]:
    reports = run_ingest("options", source, keys=underlyings, progress=progress, network_fetch=network_fetch)
    return finish(reports)
