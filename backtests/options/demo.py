"""``quantlake demo`` stage for the option backtester: a CBOE PUT-style put-write and a daily-managed iron
condor on the S&P 500 sample data, each one Prefect flow run tracked in MLflow.

The sample data has no US option chain history, so every leg is priced from ``features.chains``' modeled
chain (VIX-driven SSVI surface, FRED rates): the leg-day counts say so (observed 0).  The lake's only real
quotes are one DAX snapshot (``^GDAXI``, April 2018) without ^GDAXI bars to trade against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from quantlake.demo_context import DemoContext

START, END = "2018-01-01", "2018-12-31"  # Feb 2018's vol spike and the Q4 2018 sell-off
BASE: dict[str, Any] = {
    "underlying": "^GSPC", "start": START, "end": END, "initial_cash": 1_000_000,
    "market": {"rate": {"series": "DGS2"}, "dividend_yield": 0.018},
    "commissions": {"per_contract": 0.65, "per_share": 0.005},
    "outputs": {"tearsheet": False},  # quantstats' tearsheet: `quantlake options-backtest` writes it
}


def _configs(has_regime: bool) -> dict[str, dict[str, Any]]:
    exits: dict[str, Any] = {"profit_target": 0.5, "stop_loss": 2.0, "time_exit": 0.8,
                             "exit_regimes": ["iv_expansion"] if has_regime else []}
    return {
        "put-write": {**BASE, "name": "demo_put_write", "strategy": {"kind": "put_write"}},
        "iron condor": {**BASE, "name": "demo_iron_condor", "start": "2018-06-01", "strategy": {
            "kind": "iron_condor", "short_put": {"by": "delta", "value": 0.16},
            "short_call": {"by": "delta", "value": 0.16}, "width": {"pct": 0.02},
            "dte": {"min": 30, "max": 50, "target": 45}, "exits": exits,
            "sizing": {"method": "risk", "risk_fraction": 0.02}}},
    }


def _has_regime(ctx: DemoContext) -> bool:
    if not ctx.lake.exists("features_regime"):
        return False
    rows = ctx.lake.query("SELECT count(*) AS n FROM features_regime WHERE symbol IN ('^GSPC', '^VIX') "
                          "AND regime IS NOT NULL")
    return bool(int(rows["n"].iloc[0]))


ROWS: list[tuple[str, str, str]] = [
    ("final equity", "final_equity", "{:,.0f}"), ("total return", "total_return", "{:.2%}"),
    ("CAGR", "cagr", "{:.2%}"), ("annual vol", "ann_vol", "{:.2%}"), ("Sharpe", "sharpe", "{:.2f}"),
    ("max drawdown", "max_drawdown", "{:.2%}"), ("positions closed", "positions", "{:.0f}"),
    ("win rate", "win_rate", "{:.0%}"), ("fees", "fees", "{:,.2f}"),
    ("interest earned", "interest", "{:,.0f}"), ("orders rejected", "rejections", "{:.0f}"),
    ("leg-days observed", "leg_days_observed", "{:,.0f}"), ("leg-days modeled", "leg_days_modeled", "{:,.0f}")]


def run_configs(configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each config as one ``options-backtest`` flow run (tracked in MLflow), by label."""
    from flows.options_backtest import options_backtest_flow

    results: dict[str, Any] = {}
    for label, cfg in configs.items():
        out = options_backtest_flow(cfg)
        assert isinstance(out, dict)  # a failed flow raises its error instead of returning
        results[label] = out
    return results


def metrics_table(title: str, results: dict[str, Any], rows: list[tuple[str, str, str]]) -> Table:
    """One column per run (label and dates), one row per ``(name, metric key, format)``."""
    t = Table(title=title)
    t.add_column("metric")
    for label, out in results.items():
        r = out["result"]
        t.add_column(f"{label}\n{r.daily.index[0]}..{r.daily.index[-1]}", justify="right")
    for name, key, fmt in rows:
        t.add_row(name, *[fmt.format(out["result"].metrics.get(key, float("nan"))) for out in results.values()])
    return t


def stage(ctx: DemoContext) -> None:
    """Put-write (monthly, CBOE PUT rule) and iron condor (daily-managed) on ^GSPC with modeled chains."""
    has_regime = _has_regime(ctx)
    results = run_configs(_configs(has_regime))
    ctx.console.print(metrics_table("option backtests on ^GSPC (sample data), each one MLflow run", results, ROWS))

    for label, out in results.items():
        r = out["result"]
        pos = r.positions.tail(6)
        p = Table(title=f"{label}: last {len(pos)} of {len(r.positions)} closed positions (per unit: < 0 credit)")
        for col in ("opened", "closed", "units", "entry", "exit", "P&L", "reason"):
            p.add_column(col, justify="left" if col == "reason" else "right")
        for row in pos.itertuples(index=False):
            p.add_row(str(row.opened), str(row.closed), str(row.units), f"{row.entry_net:,.2f}",
                      f"{row.exit_net:,.2f}", f"{row.pnl:,.0f}", str(row.exit_reason))
        ctx.console.print(p)
        legs = r.trades.tail(4)
        lt = Table(title=f"{label}: last {len(legs)} legs (price, IV and delta at entry -> exit)")
        for col in ("leg", "qty", "price", "IV", "delta", "how"):
            lt.add_column(col, justify="left" if col in ("leg", "how") else "right")
        for row in legs.itertuples(index=False):
            lt.add_row(f"{row.expiry} {row.strike:g}{row.right}", str(row.qty),
                       f"{row.entry_price:.2f} -> {row.exit_price:.2f}", f"{row.entry_iv:.1%} -> {row.exit_iv:.1%}",
                       f"{row.entry_delta:+.2f} -> {row.exit_delta:+.2f}", str(row.exit_action))
        ctx.console.print(lt)
        files = out["files"]
        for key in ("equity", "greeks", "trades"):
            if key in files:
                ctx.output(f"options {label} {key}", Path(files[key]))
        ctx.console.print(f"[dim]{label}: MLflow run {out['run_id']}; files in {Path(files['metrics']).parent}[/]")

    regime_note = ("closes on a shift to the iv_expansion regime (features_regime)" if has_regime else
                   "runs without its regime-shift exit: the lake has no features_regime yet")
    ctx.console.print(
        "[dim]Every leg-day above was priced from features.chains' modeled chain (observed 0): the sample data "
        "has no US option chain history; its only real quotes are a DAX snapshot (^GDAXI, 2018-04) without "
        f"^GDAXI bars. The iron condor {regime_note}.[/]")
    ctx.results["options"] = {label: {"run_id": out["run_id"], **out["metrics"]} for label, out in results.items()}
