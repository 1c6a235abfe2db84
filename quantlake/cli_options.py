"""Option types and argument parsers shared by the command modules (:mod:`quantlake.cli`,
:mod:`quantlake.ingest_cli`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer


def _symbols(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [s for s in (p.strip() for p in value.replace(" ", ",").split(",")) if s]


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


DateOpt = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]


ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
FlowOpt = Annotated[
    bool, typer.Option("--flow/--no-flow", help="Run as a Prefect flow (default) or directly, without Prefect.")
]
