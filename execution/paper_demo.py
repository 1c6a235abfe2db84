"""Demo stage of paper trading (run by ``quantlake demo``): the champion the tracking stage promoted trades
the last two sample dates on the paper broker, then the last date is re-run to show that nothing is sent
twice.  Without a champion (tracking stage skipped, or no model passed the gate) it says so and trades the
rule model directly.
"""

from __future__ import annotations

import datetime as dt

from quantlake.demo_context import DemoContext

ACCOUNT = "demo"


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


def _previous_date(ctx: DemoContext, day: dt.date) -> dt.date:
    import pandas as pd

    got = ctx.lake.query(
        "SELECT max(date) AS d FROM equity_bars WHERE symbol NOT LIKE '^%' AND close IS NOT NULL AND date < ?", [day]
    )
    return pd.Timestamp(got["d"].iloc[0]).date()


def _sent(ctx: DemoContext) -> int:
    """Orders of the demo account that reached the paper broker (they carry a broker order id)."""
    from execution.audit import orders

    return int(orders(ctx.lake, "paper", ACCOUNT)["broker_order_id"].notna().sum())


def stage(ctx: DemoContext) -> None:
    """Paper-trade the champion on the latest sample dates; print orders, fills and positions."""
    from execution.settings import TradeConfig
    from execution.trader import in_process_model, latest_trading_date, render, run_trade
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
    first = _previous_date(ctx, last)
    ctx.console.print(
        f"Day 1 ({first}) decides orders at the close; day 2 ({last}) fills them at its open (close-only "
        "series fill at the close) and rebalances; then day 2 is run again."
    )
    results = []
    for day in (first, last):
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
        f"exec_account).  Once the account has 5+ trading days: [bold]quantlake risk report --paper {ACCOUNT}[/] "
        "(Alpaca/IBKR accounts: [bold]quantlake trade export[/] then [bold]risk report --returns/--positions[/])."
    )
    ctx.results["paper_trade"] = {"model": name, "days": [r.summary() for r in results], "rerun": rerun.summary()}
