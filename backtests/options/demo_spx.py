"""``quantlake demo`` stage on real option quotes: a put-write and an iron condor on the shipped SPX chains.

The sample's daily SPX/SPXW chain files (2019-04-25 .. 2019-06-13, CBOE delayed quotes, ingested by the
ingest stage) are the only prices here: ``chain.source: observed`` (a leg without a quote would stop the
run).  SPX has no bars in the lake, so each day's chain underlying level is the mark and settlement price
(the run's ``bars_source``), except for an expiry day without a chain file: the official ^GSPC level of that
day, booked on the next bar (``settled_on_reference_level``).  The configs are the example files ``configs/options/put_write_spx.yaml`` and
``iron_condor_spx.yaml`` (the same settings, kept equal by a test); the put-write's first position is worked
out by hand in the README and recomputed from the raw chain files by ``tests/test_options_spx.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantlake.demo_context import DemoContext

UNDERLYING = "SPX"
BASE: dict[str, Any] = {
    "underlying": UNDERLYING, "start": "2019-04-25", "end": "2019-06-13", "initial_cash": 1_000_000,
    "chain": {"source": "observed"}, "market": {"rate": {"series": "DGS2"}, "dividend_yield": 0.019},
    "execution": {"fill": {"mode": "market"}}, "commissions": {"per_contract": 0.65},
}
CONFIGS: dict[str, dict[str, Any]] = {
    "put-write": {**BASE, "name": "put_write_spx", "strategy": {
        "kind": "put_write", "strike": "at_or_below", "collateral_fraction": 1.0, "start_immediately": True}},
    "iron condor": {**BASE, "name": "iron_condor_spx", "strategy": {
        "kind": "iron_condor", "short_put": {"by": "delta", "value": 0.16},
        "short_call": {"by": "delta", "value": 0.16}, "width": {"points": 25},
        "dte": {"min": 20, "max": 50, "target": 35, "monthly_only": False},
        "exits": {"profit_target": 0.5, "stop_loss": 2.0, "time_exit": 0.8, "exit_regimes": []},
        "sizing": {"method": "risk", "risk_fraction": 0.02}, "max_open": 1}},
}


def first_position(result: Any) -> dict[str, Any]:
    """The first closed position of a run with its legs: what the README works out by hand."""
    pos = result.positions.iloc[0]
    legs = result.trades[result.trades["position_id"] == pos["position_id"]]
    return {"position": pos.to_dict(), "legs": legs.to_dict("records")}


def _has_quotes(ctx: DemoContext) -> bool:
    if not ctx.lake.exists("option_quotes"):
        return False
    rows = ctx.lake.query("SELECT count(*) AS n FROM option_quotes WHERE underlying = 'SPX'")
    return bool(int(rows["n"].iloc[0]))


SURFACE_SQL = """
SELECT date, spot, atm_iv_30, atm_iv_30_vendor, atm_iv_60, skew_25d, term_slope, hv_20, hv_iv_ratio,
       put_call_oi_ratio, gex_1pct, iv_rank_252, regime
FROM features_surface WHERE underlying = 'SPX' ORDER BY date
"""


def _surface(ctx: DemoContext) -> None:
    """The SPX surface features (``features_surface``, built by the features stage) the strategies could read,
    every fifth day (the terminal-width table helper drops the optional columns on a narrow terminal)."""
    from quantlake.display import Col, print_table

    if not ctx.lake.exists("features_surface"):
        return
    df = ctx.lake.query(SURFACE_SQL)
    if df.empty:
        return
    shown = df.iloc[::5].assign(gex_bn=lambda d: d["gex_1pct"] / 1e9)
    cols = [Col("date", kind="date"), Col("spot", "SPX", "float"), Col("atm_iv_30", "IV 30d", "pct"),
            Col("atm_iv_60", "IV 60d", "pct"), Col("skew_25d", "skew", "pct"), Col("hv_20", "HV 20", "pct"),
            Col("hv_iv_ratio", "HV/IV", "float"), Col("iv_rank_252", "IV rank", "float"),
            Col("regime", "regime", optional=True), Col("gex_bn", "GEX $bn", "float", optional=True),
            Col("put_call_oi_ratio", "P/C OI", "float", optional=True),
            Col("atm_iv_30_vendor", "vendor IV", "pct", optional=True)]
    print_table(shown, cols, title=f"features_surface: SPX from its observed chains ({len(df)} days, every 5th)",
                out=ctx.console,
                caption=f"IV rank needs 252 days of SPX's own ATM IV ({len(df)} observed): NULL, never the VIX's. "
                        "HV 20 needs 20 returns of the chain level.")


def stage(ctx: DemoContext) -> None:
    """Put-write and iron condor on the observed SPX chains, each one Prefect flow run tracked in MLflow."""
    from backtests.options.demo import ROWS, metrics_table, run_configs

    if not _has_quotes(ctx):
        ctx.console.print("[yellow]no SPX option quotes in the lake: run the ingest stage first[/]")
        return
    results = run_configs(CONFIGS)
    keys = ("final_equity", "total_return", "max_drawdown", "positions", "fees", "interest", "rejections",
            "leg_days_observed", "leg_days_modeled")
    rows = [r for r in ROWS if r[1] in keys]
    rows.insert(-2, ("entries skipped", "entries_skipped", "{:.0f}"))
    title = "option backtests on real SPX quotes (chain.source observed), each one MLflow run"
    ctx.console.print(metrics_table(title, results, rows))
    _surface(ctx)

    pw = results["put-write"]["result"]
    first = first_position(pw)
    pos, leg = first["position"], first["legs"][0]
    credit, settle = leg["entry_price"], leg["exit_price"]
    ctx.console.print(
        f"Worked by hand (README): sold {-leg['qty']:.0f} {leg['contract']} on {leg['entry_date']} at the bid "
        f"{credit:.2f} with SPX at {leg['entry_spot']:,.2f}; it expired {leg['expiry']} at {leg['exit_spot']:,.2f}"
        f"{_level_source(pw.extra, leg)}, settled at {settle:.2f}: P&L = {-leg['qty']:.0f} x 100 x "
        f"({credit:.2f} - {settle:.2f}) - fees {pos['fees']:.2f} = {pos['pnl']:,.2f}")
    for label, out in results.items():
        files = out["files"]
        for key in ("equity", "trades"):
            if key in files:
                ctx.output(f"options SPX {label} {key}", Path(files[key]))
    ctx.console.print(f"[dim]Bars: {pw.extra.get('bars_source')} (SPX has no bars in the lake: the chains' "
                      "underlying level marks every leg and settles it, except on an expiry day without a chain: "
                      "the official ^GSPC level of that day, booked on the next bar).[/]")
    ctx.results["options_spx"] = {label: {"run_id": out["run_id"], **out["metrics"]} for label, out in results.items()}


def _level_source(extra: dict[str, Any], leg: Any) -> str:
    """' (the official ^GSPC close, no chain that day; booked 2019-05-20)' for a leg settled on a reference
    level, else ''."""
    for row in extra.get("settled_on_reference_level", []):
        if row["contract"] == leg["contract"] and row["expiry"] == str(leg["expiry"]):
            return f" (the official {row['index']} level, no chain that day; booked {row['settled_on']})"
    return ""
