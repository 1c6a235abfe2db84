"""Flow: ingest option-chain snapshots into ``option_quotes``."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._common import log_reports
from flows.tasks import network_fetch
from quantlake.ingest import direct_fetch, ingest_options, raise_for_failures
from quantlake.lake import Lake
from quantlake.sources import NETWORK_SOURCES, get_source, rate_limit


@flow(name="ingest-options")
def ingest_options_flow(
    source: str = "sample", underlyings: list[str] | None = None, progress: bool = True
) -> list[dict[str, Any]]:
    src = get_source(source)
    reports = ingest_options(
        Lake(),
        src,
        underlyings,
        fetch=network_fetch if source in NETWORK_SOURCES else direct_fetch,
        rate_limit=rate_limit(source),
        progress=progress,
    )
    summary = log_reports(reports)
    raise_for_failures(reports)
    return summary
