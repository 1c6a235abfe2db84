"""``quantlake scan intraday``: the scanner on the latest closed bar of an interval (hourly by default);
``quantlake trade interval``: paper trading on that bar (:mod:`execution.interval_trader`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``intraday`` to the ``scan`` group of :mod:`execution.cli` (registered before this module)."""
    from execution.cli import scan_app, trade_app

    scan_app.command("intraday")(scan_intraday)
    trade_app.command("interval")(trade_interval)


def trade_interval(
    config: Annotated[Path | None, typer.Option(help="YAML/JSON with IntervalTradeConfig fields.")] = None,
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols (overrides the config's).")] = "",
    interval: Annotated[str | None, typer.Option(help="Bar interval: 15m, 1h, 4h, ... (default 1h).")] = None,
    account: Annotated[str | None, typer.Option(help="Paper account (default hourly).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Run at this instant (ISO, UTC; default now).")] = None,
) -> None:
    """Paper-trade one bar: fill at the open of bars closed since the last run, then decide on the latest
    CLOSED bar (EMA fast/slow cross) and send the difference to the interval paper ledger."""
    from execution.interval_trader import load_interval_config, run_interval_trade, utc
    from execution.trader import config_mapping
    from quantlake.errors import UserInputError
    from quantlake.lake import Lake

    data = config_mapping(config, "IntervalTradeConfig")
    syms = [s.strip() for s in symbols.split(",") if s.strip()]
    data.update({k: v for k, v in (("symbols", syms or None), ("interval", interval), ("account", account)) if v})
    cfg = load_interval_config(data)
    try:
        when = utc(as_of) if as_of else None
    except ValueError:
        raise UserInputError(f"--as-of {as_of!r} is not an instant (e.g. 2024-03-01T05:10Z)") from None
    result = run_interval_trade(cfg, Lake(), as_of=when)
    s = result.summary()
    typer.echo(f"{cfg.interval} bar closed at {result.bar_close:%Y-%m-%d %H:%M} UTC, account {cfg.account}: "
               f"orders {s['orders'] or 'none'}, equity {s['equity']:,.2f}, cash {s['cash']:,.2f}, "
               f"positions {s['positions'] or 'none'}")


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
