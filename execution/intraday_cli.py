"""``quantlake scan intraday``: the scanner on the latest closed bar of an interval (hourly by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``intraday`` to the ``scan`` group of :mod:`execution.cli` (registered before this module)."""
    from execution.cli import scan_app

    scan_app.command("intraday")(scan_intraday)


def scan_intraday(
    interval: Annotated[str, typer.Option(help="Bar interval to scan: 15m, 1h, 4h, ...")] = "1h",
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols (default: every symbol in bars).")] = "",
    config: Annotated[Path | None, typer.Option(help="YAML/JSON with ScanConfig fields (ema_pairs, filters...).")] = None,
    flow: Annotated[bool, typer.Option("--flow/--no-flow", help="Run as the Prefect flow intraday-scan.")] = False,
) -> None:
    """Signals on the latest CLOSED bar of an interval: EMA crosses, RSI context, MACD confirmation."""
    from execution.intraday_scan import intraday_config, scan_interval
    from execution.report import load_scan_config
    from quantlake.cli import OutputFormat, _print_frame
    from quantlake.lake import Lake

    syms = [s.strip() for s in symbols.split(",") if s.strip()] or None
    overrides = load_scan_config(config, {}).model_dump(exclude_unset=True) if config else {}
    if flow:
        from flows.intraday_scan import intraday_scan_flow

        typer.echo(intraday_scan_flow(interval=interval, symbols=syms, config=overrides))
        return
    result = scan_interval(Lake(), interval, syms, intraday_config(overrides))
    typer.echo(f"{interval} bar closed at {result.bar_close:%Y-%m-%d %H:%M} UTC: {len(result.signals)} signal(s), "
               f"{int(result.universe['passed'].sum())} symbol(s) scanned; {result.json_path}")
    if len(result.signals):
        cols = ["rank", "symbol", "signal", "direction", "score", "close", "rsi", "macd_confirms"]
        _print_frame(result.signals[cols], OutputFormat.table, title="intraday signals")
