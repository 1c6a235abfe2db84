"""Demo stage of paper trading (run by ``quantlake demo``): the champion the tracking stage promoted trades
the last two sample dates on the paper broker, then the last date is re-run to show that nothing is sent
twice.  Without a champion (tracking stage skipped, or no model passed the gate) it says so and trades the
rule model directly.

Then the option part: the options stage's iron condor backtest is registered as an option strategy,
promoted (forced: an options backtest logs in-sample metrics, not the gate's out-of-sample ones) and traded
on the paper broker for its first days with the backtest's own engine and strategy object; its fills are
compared with the backtest's.
"""

from __future__ import annotations

import datetime as dt

from quantlake.demo_context import DemoContext

ACCOUNT = "demo"
OPTION_ACCOUNT = "demo-options"
TRADING_DAYS = 5  # 4 daily returns: what `quantlake risk report --paper demo` needs at least
OPTION_MODEL = "demo_iron_condor"
OPTION_DAYS = 4


def _champion(ctx: DemoContext) -> str | None:
    """The registered model to trade: a champion promoted in this demo, else the registry's champion with
    the best out-of-sample Sharpe; None when there is none (never creates an MLflow store)."""
    promoted = [
        d["model"]
        for d in ctx.results.get("models", {}).get("decisions", [])
        if d.get("outcome") in ("promoted", "forced", "unchanged")
    ]
    if not (ctx.paths.mlflow / "mlflow.db").exists() and not promoted:
        return None
    from tracking.registry import list_models
    from tracking.run_context import configure_mlflow

    configure_mlflow()
    champions = [m for m in list_models() if m.champion]
    if not champions:
        return None
    names = {m.name for m in champions}
    preferred = [p for p in promoted if p in names]
    if preferred:
        return preferred[0]
    return max(champions, key=lambda m: m.champion_sharpe if m.champion_sharpe is not None else -1e9).name


def _last_dates(ctx: DemoContext, day: dt.date, n: int) -> list[dt.date]:
    """The ``n`` latest trading dates up to ``day`` (oldest first)."""
    import pandas as pd

    got = ctx.lake.query(
        "SELECT DISTINCT date FROM equity_bars WHERE symbol NOT LIKE '^%' AND close IS NOT NULL AND date <= ? "
        "ORDER BY date DESC LIMIT ?", [day, n]
    )
    return sorted(pd.Timestamp(d).date() for d in got["date"])


def _sent(ctx: DemoContext) -> int:
    """Orders of the demo account that reached the paper broker (they carry a broker order id)."""
    from execution.audit import orders

    return int(orders(ctx.lake, "paper", ACCOUNT)["broker_order_id"].notna().sum())


def stage(ctx: DemoContext) -> None:
    """Paper-trade the champion on the latest sample dates; print orders, fills and positions."""
    from execution.market_data import latest_trading_date
    from execution.settings import TradeConfig
    from execution.signal_source import in_process_model
    from execution.trader import render, run_trade
    from tracking.demo import DEMO_RULE, RULE_MODEL
    from tracking.signal_models import RuleSignalModel, ThresholdRule

    name = _champion(ctx)
    model = None
    if name is None:
        ctx.console.print(
            "[bold yellow]No champion model in the registry[/] (the tracking stage trains and promotes models; "
            f"it did not run or nothing passed the gate): trading the rule model {RULE_MODEL} "
            f"({DEMO_RULE['feature']} > 0, i.e. EMA12 above EMA26) directly, without the registry."
        )
        model = in_process_model(RuleSignalModel(ThresholdRule.model_validate(DEMO_RULE)), f"{RULE_MODEL} (in-process rule)")
        name = RULE_MODEL
    else:
        ctx.console.print(f"Trading [bold]models:/{name}@champion[/] on the paper broker (account {ACCOUNT!r}).")

    last = latest_trading_date(ctx.lake, None)
    days = _last_dates(ctx, last, TRADING_DAYS)
    ctx.console.print(
        f"Day 1 ({days[0]}) decides orders at the close; each later day (to {last}) fills them at its open "
        "(close-only series fill at the close) and rebalances; then the last day is run again."
    )
    results = []
    for day in days:
        cfg = TradeConfig(model=name, account=ACCOUNT, as_of=day)
        result = run_trade(cfg, ctx.lake, model=model)
        render(result, ctx.console)
        results.append(result)
    before = _sent(ctx)
    rerun = run_trade(TradeConfig(model=name, account=ACCOUNT, as_of=last), ctx.lake, model=model)
    ctx.console.print(
        f"Re-run of {last}: {_sent(ctx) - before} new order(s) sent ({before} at the broker in total) — client "
        "order ids come from (date, account, strategy, symbol, leg) and working orders count as held, so nothing is "
        "sent twice."
    )
    ledger = ctx.paths.paper / f"{ACCOUNT}.sqlite"
    ctx.output("paper ledger", ledger)
    ctx.console.print(
        f"Audit: [bold]quantlake trade status --account {ACCOUNT}[/] (tables exec_orders, exec_fills, "
        f"exec_account), its risk: [bold]quantlake risk report --paper {ACCOUNT}[/] "
        "(Alpaca/IBKR accounts: [bold]quantlake trade export[/] then [bold]risk report --returns/--positions[/])."
    )
    ctx.results["paper_trade"] = {"model": name, "days": [r.summary() for r in results], "rerun": rerun.summary()}
    options_part(ctx)


def options_part(ctx: DemoContext) -> None:
    """The demo's iron condor, promoted, trades its first days on the paper broker: the same fills as its
    backtest (the trader drives the backtest's engine and strategy object)."""
    import pandas as pd
    from rich.table import Table

    run = ctx.results.get("options", {}).get("iron condor", {}).get("run_id")
    if not run:
        ctx.console.print("[yellow]No iron condor backtest in this demo (the options stage did not run): the option "
                          "part of paper trading is skipped.[/]")  # fmt: skip
        return
    from backtests.options.report import run_output_dir
    from execution.option_book import load_option_strategy, register_option_strategy
    from execution.option_trader import render_option, run_option_trade
    from execution.settings import TradeConfig
    from tracking.promotion import promote

    version = register_option_strategy(run, OPTION_MODEL)
    promote(OPTION_MODEL, version, force=True, note="demo: options backtests log in-sample metrics only")
    cfg, label = load_option_strategy(OPTION_MODEL)
    ctx.console.print(f"Option strategy [bold]{label}[/] (iron condor on ^GSPC, promoted, forced) trades on the paper "
                      f"broker (account {OPTION_ACCOUNT!r}) for its first {OPTION_DAYS} days.")  # fmt: skip
    days = [pd.Timestamp(d).date() for d in ctx.lake.query(
        "SELECT DISTINCT date FROM equity_bars WHERE symbol = ? AND date >= ? ORDER BY date LIMIT ?",
        [cfg.underlying, cfg.start, OPTION_DAYS])["date"]]  # fmt: skip
    trade = TradeConfig(model=OPTION_MODEL, instrument="options", account=OPTION_ACCOUNT, initial_cash=cfg.initial_cash)
    last = None
    for day in days:
        last = run_option_trade(trade.model_copy(update={"as_of": day}), ctx.lake)
    assert last is not None
    render_option(last, ctx.console)
    from execution import audit

    fills = audit.fills(ctx.lake, "paper", OPTION_ACCOUNT)
    when = pd.to_datetime(fills["filled_at"], utc=True).dt.tz_convert("America/New_York").dt.date
    backtest = pd.read_parquet(run_output_dir(cfg, run) / "fills.parquet")
    backtest = backtest[backtest["action"].isin(["open", "close"]) & backtest["date"].isin(days)]
    ours = sorted(zip(when, fills["price"].round(10), strict=True))
    theirs = sorted(zip(backtest["date"], backtest["price"].round(10), strict=True))
    t = Table(title=f"option fills on the paper broker, {days[0]} – {days[-1]}")
    for col in ("date", "contract", "qty", "price", "source"):
        t.add_column(col, justify="right" if col in ("qty", "price") else "left")
    for r in fills.sort_values("filled_at").itertuples(index=False):
        signed = r.qty if r.side == "buy" else -r.qty
        t.add_row(str(pd.Timestamp(r.filled_at).date()), r.symbol, f"{signed:+g}", f"{r.price:,.2f}", str(r.source))
    ctx.console.print(t)
    same = ours == theirs
    ctx.console.print(f"Fills identical to the iron condor backtest's over these days: "
                      f"{'[green]yes[/]' if same else '[red]no[/]'} ({len(ours)} leg fills).")  # fmt: skip
    ctx.results["paper_trade"]["options"] = {"model": label, "days": [str(d) for d in days], "fills": len(ours),
                                             "same_as_backtest": same}  # fmt: skip
