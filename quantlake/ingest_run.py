"""One ingest by name: build the source adapter, pick how network calls are made, run the ingest function.

The Prefect flows (``flows/ingest_*.py``) and the CLI's ``--no-flow`` path both call :func:`run_ingest`, so
a command does the same work with or without Prefect; only ``fetch`` differs (a Prefect task with retries
inside a flow, :func:`quantlake.sources.retry.retrying_fetch` without one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from quantlake.errors import UserInputError
from quantlake.ingest import (
    IngestReport,
    direct_fetch,
    ingest_cot,
    ingest_equity,
    ingest_macro,
    ingest_options,
)
from quantlake.lake import Lake
from quantlake.sources import NETWORK_SOURCES, check_source, get_source, rate_limit
from quantlake.sources.retry import retrying_fetch

Fetch = Callable[[Callable[..., Any], Sequence[Any]], Any]


def uses_network(kind: str, source: str, path: str | None = None) -> bool:
    """Whether this ingest calls a network service (``cot`` with a downloaded ``--path`` does not)."""
    if kind == "cot":
        return path is None
    return source in NETWORK_SOURCES or "," in source  # a chain is made of network sources


def run_ingest(
    kind: str,
    source: str,
    *,
    keys: list[str] | None = None,
    path: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    report_types: list[str] | None = None,
    progress: bool = True,
    network_fetch: Fetch | None = None,
    csv_options: dict[str, Any] | None = None,
    cross_check: bool = True,
    tolerance: float = 0.005,
    fmt: str = "auto",
    underlying: str | None = None,
    iv_unit: str = "auto",
    quote_time: str = "eod",
) -> list[IngestReport]:
    """Ingest ``kind`` (equity, options, macro, cot) from ``source``; ``keys`` are symbols, underlyings or
    series ids.  Network calls go through ``network_fetch`` (default: retried in-process).  Equity only:
    ``csv_options`` (intraday files: interval, tz, calendar, bar_time) and, for a chain ``yahoo,stooq``,
    ``cross_check``/``tolerance`` (:mod:`quantlake.source_chain`).  Option chain files (``options`` from
    ``csv``) take ``path``, ``fmt`` (layout), ``underlying``, ``iv_unit`` and ``quote_time``
    (:mod:`quantlake.ingest_chains`)."""
    check_source(kind, source)
    fetch: Fetch = (network_fetch or retrying_fetch) if uses_network(kind, source, path) else direct_fetch
    lake = Lake()
    if kind == "equity" and "," in source:
        from quantlake.source_chain import build_chain, ingest_equity_chain

        chain = build_chain(source, lake, cross_check=cross_check, tolerance=tolerance)
        rates = [r for r in (rate_limit(s.name) for s in chain.sources) if r]
        return ingest_equity_chain(lake, chain, keys, start, end, full=full, fetch=fetch,
                                   rate_limit=min(rates) if rates else None, progress=progress)
    if kind == "equity":
        src = get_source(source, path, **(csv_options or {}))
        return ingest_equity(lake, src, keys, start, end, full=full, fetch=fetch, rate_limit=rate_limit(source),
                             progress=progress)
    if kind == "options" and source == "csv":
        from quantlake.ingest_chains import ingest_option_files
        from quantlake.sources.chains import ChainSettings

        if path is None:
            raise UserInputError("--source csv needs --path (a chain file or a directory of chain files)")
        settings = ChainSettings(underlying=underlying, iv_unit=iv_unit, quote_time=quote_time)  # type: ignore[arg-type]
        return [ingest_option_files(lake, path, settings, fmt=fmt, progress=progress)]
    if kind == "options" and source == "sample":
        from quantlake.ingest_chains import ingest_sample_options

        return ingest_sample_options(lake, keys, progress=progress)
    if kind == "options":
        return ingest_options(lake, get_source(source), keys, fetch=fetch, rate_limit=rate_limit(source),
                              progress=progress)
    if kind == "macro":
        return ingest_macro(lake, get_source(source), keys, start, end, full=full, fetch=fetch,
                            rate_limit=rate_limit(source), progress=progress)
    return ingest_cot(lake, get_source(source, path), report_types or ["disaggregated", "financial"], start, end,
                      full=full, fetch=fetch, progress=progress)
