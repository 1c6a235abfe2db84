"""Commands ``quantlake scan ...`` (the daily scanner) and the paper-trading commands.

Heavy imports happen inside the commands so ``quantlake --help`` stays fast.  Errors are
:mod:`quantlake.errors` types; ``quantlake.cli.main`` prints them as one line with their exit code.

``quantlake scan`` (no sub-command) is ``quantlake scan run`` with its defaults.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from quantlake.cli_options import FlowOpt

console = Console()

scan_app = typer.Typer(
    help="Daily scanner: EMA crosses with RSI context and MACD confirmation, scored and ranked.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Mount the ``scan`` group (and the trading commands) on the root CLI."""
    app.add_typer(scan_app, name="scan")
    app.add_typer(trade_app, name="trade")


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [s for s in (p.strip() for p in value.replace(" ", ",").split(",")) if s]


def _pairs(values: list[str] | None) -> list[tuple[int, int]] | None:
    """``9:21`` or ``9,21`` → (9, 21)."""
    if not values:
        return None
    from quantlake.errors import ConfigError

    out = []
    for v in values:
        parts = v.replace(",", ":").replace("/", ":").split(":")
        try:
            fast, slow = (int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--ema {v!r}: use FAST:SLOW, e.g. 9:21") from None
        out.append((fast, slow))
    return out


DateOpt = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]


# ------------------------------------------------------------------------------------------------ scan
@scan_app.callback()
def _scan_default(ctx: typer.Context) -> None:
    """Daily scanner (``quantlake scan`` alone runs ``quantlake scan run`` with its defaults)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(scan_run)


@scan_app.command("run")
def scan_run(
    as_of: Annotated[
        dt.datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="Trading date to scan (default: latest in the lake)."),
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: every symbol).")] = None,
    min_price: Annotated[float | None, typer.Option(help="Minimum close (default 10).")] = None,
    max_price: Annotated[float | None, typer.Option(help="Maximum close (default 100).")] = None,
    min_volume: Annotated[float | None, typer.Option(help="Minimum average volume (default 500,000).")] = None,
    ema: Annotated[
        list[str] | None, typer.Option("--ema", help="EMA pair FAST:SLOW; repeat for several (default 9:21, 50:200).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML/JSON file with ScanConfig fields (options override it).")
    ] = None,
    top: Annotated[int | None, typer.Option(help="How many signals to show and e-mail (default 20).")] = None,
    json_dir: Annotated[
        Path | None, typer.Option("--json-dir", help="Where signals_<date>.json goes (default QUANTLAKE_HOME/reports/scan).")
    ] = None,
    motd: Annotated[
        bool, typer.Option("--motd/--no-motd", help="Write the MOTD block ($QUANTLAKE_MOTD_PATH, else $QUANTLAKE_HOME/motd).")
    ] = True,
    motd_path: Annotated[Path | None, typer.Option("--motd-path", help="MOTD file to write instead.")] = None,
    email: Annotated[
        bool | None,
        typer.Option("--email/--no-email", help="Send the HTML e-mail (default: when SMTP is configured)."),
    ] = None,
    store: Annotated[bool, typer.Option("--store/--no-store", help="Write the daily_signals table.")] = True,
    max_age_days: Annotated[
        int | None,
        typer.Option(help="Fail (and alert) when the latest bar is more than this many weekdays old."),
    ] = None,
) -> None:
    """Scan the latest trading date: universe filters, EMA crosses, RSI context, MACD, score and rank.

    Writes the daily_signals table, a JSON file and the MOTD block, prints the table and e-mails it when
    SMTP is configured (QUANTLAKE_SMTP_* or QUANTLAKE_SMTP_BLOCK)."""
    from execution.report import load_scan_config, run_daily_scan
    from quantlake.lake import Lake

    overrides: dict[str, Any] = {
        "as_of": as_of.date() if as_of else None,
        "symbols": _split(symbols),
        "min_price": min_price,
        "max_price": max_price,
        "min_volume": min_volume,
        "ema_pairs": _pairs(ema),
        "top": top,
    }
    cfg = load_scan_config(config, {k: v for k, v in overrides.items() if v is not None})
    outcome = run_daily_scan(
        Lake(),
        cfg,
        json_dir=json_dir,
        motd=motd_path if motd_path is not None else motd,
        email=email,
        store=store,
        max_age_days=max_age_days,
    )
    outcome.print(console)


@scan_app.command("show")
def scan_show(
    date: Annotated[
        dt.datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="Date (default: the latest scanned).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show.")] = 20,
) -> None:
    """Show stored signals from the daily_signals table."""
    from execution.report import show_signals
    from quantlake.lake import Lake

    show_signals(Lake(), date.date() if date else None, limit, console)


@scan_app.command("test-email")
def scan_test_email() -> None:
    """Send a short test e-mail with the configured SMTP settings (the password is never printed)."""
    from execution.notify import plain_message, send, smtp_settings
    from quantlake.errors import ConfigError

    settings = smtp_settings()
    if settings is None:
        raise ConfigError("e-mail is not configured: set QUANTLAKE_SMTP_HOST/FROM/TO or QUANTLAKE_SMTP_BLOCK")
    send(plain_message("quantlake test e-mail", "SMTP settings work."), settings)
    console.print(f"sent to {', '.join(settings.recipients)} via {settings.host}:{settings.port}")


# ------------------------------------------------------------------------------------------- trading
trade_app = typer.Typer(
    help="Paper trading: the champion model's target positions → risk-checked orders at a broker, audited.",
    invoke_without_command=True,
)


@trade_app.callback()
def trade(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Registered model; its champion version trades.")] = None,
    broker: Annotated[str, typer.Option(help="paper (local ledger), alpaca (paper API) or ibkr (paper port).")] = "paper",
    account: Annotated[str, typer.Option(help="Account name (paper: one ledger per name).")] = "default",
    strategy: Annotated[str | None, typer.Option(help="Name in order ids and the audit (default: the model).")] = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="Trading date (default: latest bar in the lake)."),
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: every stock).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML/JSON file with TradeConfig fields (options override it).")
    ] = None,
    instrument: Annotated[
        str, typer.Option(help="equity (a signal model) or options (a registered option strategy).")
    ] = "equity",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and print orders; send and record nothing.")] = False,
    reset_kill_switch: Annotated[
        bool, typer.Option("--reset-kill-switch", help="Clear the drawdown kill switch of --broker/--account and exit.")
    ] = False,
) -> None:
    """Trade one day: reconcile with the broker, load models:/MODEL@champion, size and risk-check target
    positions, send the differences as orders with idempotent ids, record orders/fills/account in the lake.

    A broker failure, a rejected order or the kill switch exits with code 1 after everything is recorded."""
    if ctx.invoked_subcommand is not None:
        return
    from execution.account_state import reset_kill_switch as reset
    from execution.trader import alert, load_trade_config, render, run_trade
    from quantlake.errors import ConfigError
    from quantlake.lake import Lake

    if reset_kill_switch:
        was = reset(broker, account)
        console.print(f"kill switch of {broker}/{account} {'cleared' if was else 'was not set'}")
        return
    overrides: dict[str, Any] = {"model": model, "broker": broker, "account": account, "strategy": strategy,
                                 "as_of": as_of.date() if as_of else None, "symbols": _split(symbols),
                                 "instrument": instrument if instrument != "equity" else None}  # fmt: skip
    cfg = load_trade_config(config, overrides)
    if not cfg.model:
        raise ConfigError("--model is required (a registered model name; see `quantlake models list`)")
    if cfg.instrument == "options":
        from execution.option_trader import render_option, run_option_trade

        option_result = run_option_trade(cfg, Lake(), dry_run=dry_run)
        render_option(option_result, console)
        error = alert(option_result, cfg)
        if error is not None:
            raise error
        return
    result = run_trade(cfg, Lake(), dry_run=dry_run)
    render(result, console)
    error = alert(result, cfg)
    if error is not None:
        raise error


@trade_app.command("status")
def trade_status(
    broker: Annotated[str, typer.Option(help="paper, alpaca or ibkr.")] = "paper",
    account: Annotated[str, typer.Option(help="Account name.")] = "default",
    limit: Annotated[int, typer.Option(min=1, help="Orders to show.")] = 20,
) -> None:
    """The audit trail of one account: latest orders, account snapshots and the kill switch (lake only; no
    broker call)."""
    from execution.audit import print_status

    print_status(broker, account, limit)


@trade_app.command("export")
def trade_export(
    out: Annotated[Path, typer.Option("--out", help="Directory for equity.parquet and positions.json.")],
    broker: Annotated[str, typer.Option(help="paper, alpaca or ibkr.")] = "paper",
    account: Annotated[str, typer.Option(help="Account name.")] = "default",
) -> None:
    """Write the account's equity history and current positions in the files `quantlake risk report`
    reads: `quantlake risk report --returns OUT/equity.parquet --positions OUT/positions.json`."""
    from execution.audit import export_for_risk
    from quantlake.lake import Lake

    equity, positions = export_for_risk(Lake(), broker, account, out)
    console.print(f"equity curve: {equity}\npositions:    {positions}")
    console.print(f"next: quantlake risk report --returns {equity} --positions {positions}")


@trade_app.command("register-options")
def trade_register_options(
    run_id: Annotated[str, typer.Argument(help="An options backtest run (quantlake runs list -e options_backtest).")],
    name: Annotated[str, typer.Option("--name", help="Registered model name of the strategy.")],
) -> None:
    """Register an options backtest run's strategy (its config) as a new version of model NAME; promote it with
    `quantlake models promote NAME --version VERSION`, then trade it with `quantlake trade --instrument options --model NAME`."""
    from execution.option_book import register_option_strategy
    from tracking.run_context import configure_mlflow

    configure_mlflow()
    version = register_option_strategy(run_id, name)
    console.print(f"registered {name} version {version} (option strategy of run {run_id})")
    console.print(f"next: quantlake models promote {name} --version {version}")


@trade_app.command("reconcile")
def trade_reconcile(
    account: Annotated[str, typer.Option(help="Account name.")] = "default",
    model: Annotated[str | None, typer.Option(help="Registered model the account trades (default: its strategy).")] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy name in the audit (default: the model).")] = None,
    broker: Annotated[str, typer.Option(help="paper, alpaca or ibkr.")] = "paper",
    from_: Annotated[
        dt.datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First trading day (default: the first run).")
    ] = None,
    to: Annotated[dt.datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last trading day.")] = None,
    threshold: Annotated[float, typer.Option(help="Alert when |P&L drift| passes this fraction of equity.")] = 0.005,
    config: Annotated[Path | None, typer.Option("--config", help="The account's TradeConfig YAML/JSON (costs...).")] = None,
    flow: FlowOpt = True,
) -> None:
    """Backtest the champion over the account's trading days (same lake versions, the paper broker's fill
    model) and compare: missing/extra orders, fill price differences, P&L drift cumulative and per symbol.
    One MLflow run (experiment reconciliation) with the tables and a chart; an alert past the threshold."""
    from execution.reconcile import reconcile
    from execution.trader import load_trade_config
    from quantlake.errors import ConfigError
    from quantlake.lake import Lake

    if model is None and strategy is None and config is None:
        raise ConfigError("--model is required (the registered model the account trades)")
    cfg = load_trade_config(config, {"model": model or strategy, "strategy": strategy, "broker": broker,
                                     "account": account})  # fmt: skip
    start, end = (from_.date() if from_ else None), (to.date() if to else None)
    if flow:
        from execution.reconcile import Reconciliation
        from flows.reconcile import reconcile_flow

        out = reconcile_flow(cfg.model_dump(mode="json", exclude_unset=True), start, end, threshold)
        if not isinstance(out, Reconciliation):
            raise typer.Exit(1)  # the flow logged its one-line error
        rec = out
    else:
        rec = reconcile(cfg, Lake(), start, end, threshold=threshold)
    render_reconciliation(rec, console)


def render_reconciliation(rec: Any, out: Console) -> None:
    from rich.table import Table

    m = rec.metrics()
    out.print(f"[bold]reconciliation of {rec.broker}/{rec.account}[/], {rec.days[0]} – {rec.days[-1]} "
              f"({len(rec.days)} day(s)); MLflow run {rec.run_id}")  # fmt: skip
    out.print(f"orders: {m['orders_matched']:.0f} matched, {m['orders_missing']:.0f} missing, {m['orders_extra']:.0f} "
              f"extra, {m['orders_qty_diff']:.0f} with another quantity; largest fill price difference "
              f"{m['fill_price_diff_bps_max']:.1f} bps")  # fmt: skip
    t = Table(title="P&L drift per symbol (paper − backtest)")
    for col in ("symbol", "paper", "backtest", "drift"):
        t.add_column(col, justify="left" if col == "symbol" else "right")
    per = rec.pnl.groupby("symbol")[["pnl_paper", "pnl_backtest", "drift"]].sum()
    for sym, r in per.iterrows():
        t.add_row(str(sym), f"{r.pnl_paper:,.2f}", f"{r.pnl_backtest:,.2f}", f"{r.drift:,.2f}")
    out.print(t)
    colour = "red" if rec.breached else "green"
    out.print(f"cumulative drift [{colour}]{rec.drift:,.2f}[/] (largest {rec.max_abs_drift:,.2f}; alert above "
              f"{rec.threshold:.2%} of {rec.start_equity:,.0f})")  # fmt: skip
    for note in rec.notes:
        out.print(f"[yellow]note:[/] {note}")
