"""``quantlake bars ...``: bars at any interval (list, resample, gaps).  Heavy imports live in the commands."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

bars_app = typer.Typer(help="Bars at any interval: what the lake holds, resampled views, gaps.", no_args_is_help=True)

DateOpt = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]


def register(app: typer.Typer) -> None:
    """Mount the ``bars`` sub-app on the root CLI."""
    app.add_typer(bars_app, name="bars")


def _symbols(value: str) -> list[str]:
    return [s for s in (p.strip() for p in value.split(",")) if s]


@bars_app.command("list")
def bars_list() -> None:
    """Each symbol and interval the lake holds: bars, first and last bar, calendar."""
    from quantlake.cli import OutputFormat, _print_frame
    from quantlake.lake import Lake

    lake = Lake()
    if not (lake.exists("equity_bars") or lake.exists("bars")):
        typer.echo("No bars yet. Try `quantlake ingest equity --source sample` or `quantlake ingest crypto`.")
        return
    df = lake.query(
        "SELECT symbol, interval, count(*) AS bars, min(ts) AS first, max(ts) AS last FROM all_bars "
        "GROUP BY ALL ORDER BY symbol, interval"
    )
    _print_frame(df, OutputFormat.table, title="bars by symbol and interval (ts = bar open, UTC)")


@bars_app.command("resample")
def bars_resample(
    symbols: Annotated[str, typer.Option("--symbols", "--symbol", help="Comma-separated symbols")],
    interval: Annotated[str, typer.Option(help="Target interval: 15m, 1h, 4h, 1d, 1w, ...")] = "1h",
    source_interval: Annotated[
        str | None, typer.Option("--from", help="Stored interval to aggregate (default: the coarsest that divides)")
    ] = None,
    start: DateOpt = None,
    end: DateOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
) -> None:
    """Closed bars at an interval, aggregated in DuckDB (sql/bars_resample.sql), aligned to sessions."""
    from features.bars import resample
    from quantlake.cli import OutputFormat, _print_frame
    from quantlake.errors import UserInputError

    try:
        fmt = OutputFormat(format)
    except ValueError:
        raise UserInputError(f"--format must be table, csv or json, got {format!r}") from None
    df = resample(
        symbols=_symbols(symbols), interval=interval, source_interval_=source_interval,
        start=start.date() if start else None, end=end.date() if end else None,
    )
    _print_frame(df, fmt, title=f"{interval} bars (ts = open, close_ts = close, UTC)")


@bars_app.command("gaps")
def bars_gaps(
    interval: Annotated[str, typer.Option(help="Stored intraday interval to check")] = "5m",
    symbols: Annotated[str, typer.Option("--symbols", "--symbol", help="Comma-separated (default: all)")] = "",
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
) -> None:
    """Bars missing inside sessions (runs of consecutive missing bars); nothing is filled in."""
    from features.bars import gaps
    from quantlake.cli import OutputFormat, _print_frame

    df = gaps(symbols=_symbols(symbols), interval=interval)
    if df.empty:
        typer.echo(f"No {interval} bars missing inside sessions.")
        return
    _print_frame(df, OutputFormat(format), title=f"missing {interval} bars")
