"""``quantlake demo`` stage for the risk package: optimize a small portfolio on the sample data, report its
risk (VaR/CVaR, drawdowns, beta, stress with an option hedge fully repriced), and show a limit check."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from quantlake.demo_context import DemoContext

UNIVERSE = ("SPY", "AAPL", "GOOG", "GLD", "GDX")
START, END = dt.date(2010, 1, 4), dt.date(2017, 12, 29)
EQUITY = 100_000.0


def stage(ctx: DemoContext) -> None:
    """Portfolio weights by four methods, the risk report of the risk-parity portfolio, a limit check."""
    from risk import portfolio as pf
    from risk.book import Account, ComboOrder, Order, Position
    from risk.data import load_closes
    from risk.limits import Limits, validate
    from risk.report import build_report, render
    from risk.sizing import credit_spread_max_risk, spread_contracts
    from risk.stress import StressConfig

    closes = load_closes(ctx.lake, UNIVERSE, START, END).dropna()
    returns = closes.pct_change().dropna()
    bounds = pf.WeightBounds(upper=0.4)
    weights = pd.DataFrame(
        {
            "min variance": pf.min_variance(returns, bounds),
            "mean-variance (15 %/yr)": pf.mean_variance(returns, 0.15 / 252, bounds),
            "risk parity": pf.risk_parity(returns, bounds),
            "HRP": pf.hierarchical_risk_parity(returns, bounds),
        }
    )
    t = Table(title=f"portfolio weights, {START}..{END}, each ≤ 40 % (riskfolio-lib)")
    t.add_column("symbol")
    for c in weights.columns:
        t.add_column(c, justify="right")
    for sym, row in weights.iterrows():
        t.add_row(str(sym), *[f"{w:.1%}" for w in row])
    ctx.console.print(t)

    w = weights["risk parity"]
    equity = EQUITY * (1 + returns[w.index] @ w).cumprod()
    last = closes.iloc[-1]
    spy = float(last["SPY"])
    held = [Position(symbol=s, qty=float(np.floor(w[s] * equity.iloc[-1] / last[s])), price=float(last[s]))
            for s in w.index]  # fmt: skip
    expiry = END + dt.timedelta(days=84)
    strike = float(round(spy * 0.95))
    held.append(_option("SPY", "P", strike, expiry, 3.0, spy, 0.14, Position))
    report = build_report(equity, held, ctx.lake, stress=StressConfig(as_of=END))
    render(report, ctx.console)
    out = ctx.paths.reports / "risk_report.json"
    out.write_text(json.dumps(report.to_dict(), indent=2))
    ctx.output("risk report (JSON)", out)

    # a put credit spread: 20 contracts break the 2 % risk budget; risk-based sizing gives the allowed count
    account = Account(equity=float(equity.iloc[-1]), cash=0.0, peak_equity=float(equity.max()))
    limits = Limits(
        max_risk_per_trade=0.02, max_gross_exposure=1.5, max_symbol_concentration=0.5, max_delta=1.5
    )

    def spread(n: float) -> ComboOrder:
        short = _option("SPY", "P", strike, expiry, n, spy, 0.14, Order, side="sell")
        long = _option("SPY", "P", strike - 10, expiry, n, spy, 0.15, Order, side="buy")
        return ComboOrder(legs=(short, long))

    for n in (20.0, None):
        order = spread(n or 1.0)
        if n is None:  # size it: max loss per share = width − credit
            credit = order.legs[0].price - order.legs[1].price
            n = float(spread_contracts(account.equity, 0.02, credit_spread_max_risk(10.0, credit)))
            order = spread(n)
        check = validate(order, account, held, limits)
        ctx.console.print(
            f"[bold]limit check[/] sell {n:g} SPY {strike:g}/{strike - 10:g} put spreads: {check.summary()}"
        )
    ctx.results["risk"] = {"weights": weights, "report": report, "limit_check": check}
    _backtest_run_report(ctx)


BACKTEST_EXPERIMENTS = ("options_backtest", "equity_sweep")


def _backtest_run_report(ctx: DemoContext) -> None:
    """The headline risk figures of the newest backtest run of an earlier stage (`risk report --run`)."""
    import tempfile
    from pathlib import Path

    from quantlake.errors import UserInputError
    from risk.report import build_report, curve_from_frame
    from tracking.run_context import client
    from tracking.runs import backtest_curve, search

    c = client()
    ids = [
        e.experiment_id for name in BACKTEST_EXPERIMENTS if (e := c.get_experiment_by_name(name)) is not None
    ]
    runs = search(c, ids, "attributes.status = 'FINISHED'", limit=1) if ids else []
    if not runs:
        ctx.console.print(
            "[dim]No backtest runs yet: `quantlake risk report --run RUN_ID` reports on one.[/]"
        )
        return
    run_id = runs[0].info.run_id
    try:
        with tempfile.TemporaryDirectory(prefix="ql-risk-demo-") as tmp:
            local, column = backtest_curve(run_id, Path(tmp))
            frame = pd.read_parquet(local)
    except UserInputError as exc:  # the run logged no curve: say so, the rest of the stage stands
        ctx.console.print(f"[dim]risk report of backtest run {run_id[:8]} skipped: {exc}[/]")
        return
    if column is not None and column not in frame.columns:
        column = None
    rep = build_report(curve_from_frame(frame, f"run {run_id}", column), lake=ctx.lake)
    s, v = rep.summary, rep.var
    beta = "n/a" if s["beta"] is None else f"{s['beta']:.2f}"
    cf = v.loc["cornish_fisher", "var_95"]
    cf_text = f"Cornish-Fisher {cf:.2%} (!) outside its domain" if rep.warnings else f"Cornish-Fisher {cf:.2%}"
    ctx.console.print(
        f"[bold]risk of backtest run {run_id[:8]}[/] ({runs[0].data.tags.get('quantlake.job', '?')}): "
        f"max drawdown {s['max_drawdown']:.1%}, 1-day VaR95 {v.loc['historical', 'var_95']:.2%} "
        f"({cf_text}), beta {beta}; full report: quantlake risk report --run {run_id}",
        soft_wrap=True,
    )
    _option_book(ctx, run_id)


def _option_book(ctx: DemoContext, run_id: str) -> None:
    """An options run: its open book on the worst-drawdown day, stressed in full (`risk report --run ID`)."""
    from quantlake.lake import Lake
    from risk.report import build_report
    from risk.run_book import book_on, default_dates, equity_until, option_run
    from risk.stress import StressConfig

    art = option_run(run_id)
    if art is None:
        return
    day, label = default_dates(art.daily)[0]
    book = book_on(art, day, Lake(ctx.lake.uri, pins=art.pins), label)
    if not any(p.is_option for p in book.positions):
        return
    cfg = StressConfig(as_of=book.date, rate=book.rate, dividend_yield=art.dividend_yield)
    rep = build_report(equity_until(art, book.date), book.positions, ctx.lake, stress=cfg)
    worst = rep.stress.loc[rep.stress["pnl"].idxmin()]
    ov = rep.option_var
    var = (f"; 1-day VaR99 by full revaluation {ov.table.loc['full revaluation', 'var_99']:,.0f} vs "
           f"delta-gamma {ov.table.loc['delta-gamma', 'var_99']:,.0f}") if ov is not None else ""
    ctx.console.print(
        f"[bold]open book of run {run_id[:8]} on {book.date}[/] ({label}): {len(book.positions)} leg(s); worst "
        f"stress {worst['scenario']} {worst['pnl']:,.0f} ({worst['pnl_pct']:.1%} of equity, Greeks say "
        f"{worst['greeks_pnl']:,.0f}){var}; quantlake risk report --run {run_id} --date {book.date}",
        soft_wrap=True,
    )


def _option(symbol: str, right: str, strike: float, expiry: dt.date, qty: float, spot: float, iv: float,
            cls: Any, side: str | None = None) -> Any:  # fmt: skip
    """An option order/position priced and with Greeks from features.pricing (as of the demo's END)."""
    from features.pricing import bs_greeks, bs_price
    from risk.book import Greeks

    t = (expiry - END).days / 365
    price = float(bs_price(right, spot, strike, t, 0.0, 0.0, iv))
    g = bs_greeks(right, spot, strike, t, 0.0, 0.0, iv)
    greeks = Greeks(
        delta=float(g["delta"]), gamma=float(g["gamma"]), vega=float(g["vega"]), theta=float(g["theta"])
    )
    fields: dict[str, Any] = {"symbol": symbol, "right": right, "strike": strike, "expiry": expiry, "qty": qty,
                              "price": round(price, 2), "underlying_price": spot, "iv": iv, "greeks": greeks}  # fmt: skip
    if side is not None:
        fields["side"] = side
    return cls(**fields)
