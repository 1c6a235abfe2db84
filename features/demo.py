"""Demo stage of :mod:`features` (run by ``quantlake demo`` right after the lake stage).

Builds every feature table through the Prefect flow, builds again to show that an unchanged lake costs
nothing (incremental: "up to date"), and prints what came out: the tables with rows/timing, how often
each market regime occurred, the regime labels through the February 2020 volatility shock, a few
technical indicators, and the option analytics of the sample DAX chain (our IV next to the vendor's).
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from quantlake.demo_context import DemoContext

EPISODE = ("^GSPC", "2020-02-14", "2020-03-13")  # calm → shock → high vol, all five labels nearby
TECH_SYMBOLS = ("SPY", "AAPL", "GOOG", "^GSPC")


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def stage(ctx: DemoContext) -> None:
    """Build the feature tables and show regimes, indicators and option analytics."""
    from features.cli import print_results
    from features.errors import FeatureBuildError
    from flows.build_features import build_features_flow

    ctx.console.print(
        "[bold]Feature factory[/]: DuckDB SQL over the lake + numba kernels + vectorized pricing"
    )
    out = build_features_flow(progress=False)
    if not isinstance(out, dict):  # a Failed state (normally re-raised by Prefect)
        raise FeatureBuildError(f"feature build flow failed: {out}")
    print_results(out["results"], title=f"feature build ({out['seconds']:.1f} s, inputs {out['inputs']})")
    ctx.results["features"] = out["results"]

    from features.build import build_features

    t0 = time.perf_counter()
    again = build_features(ctx.lake)
    modes = sorted({r.mode for r in again.results})
    ctx.console.print(
        f"Second build on the unchanged lake: {', '.join(modes)} in {time.perf_counter() - t0:.2f} s "
        "(only bars/quotes/yields changed since the build note's versions are recomputed)."
    )

    import duckdb

    from features.incremental import materialize

    # DuckDB copies of the tables shown (plain scans): the queries below then never depend on how the lake's
    # Arrow datasets handle filters pushed into them
    con = duckdb.connect()
    for name in ("features_regime", "features_technical", "features_options"):
        materialize(con, name, ctx.lake.dataset(name))
    try:
        counts = con.execute(
            """SELECT regime, count(*) AS days, min(date) AS first, max(date) AS last,
                      round(avg(vix), 1) AS avg_vix
               FROM features_regime WHERE symbol = '^VIX' AND regime IS NOT NULL
               GROUP BY regime ORDER BY days DESC"""
        ).fetchall()
        sym, start, end = EPISODE
        episode = con.execute(
            """SELECT date, close, vix, vix_chg_5d, vix_rank_252, rv_20, regime, days_in_regime
               FROM features_regime WHERE symbol = ? AND date BETWEEN ? AND ? ORDER BY date""",
            [sym, start, end],
        ).df()
        tech = con.execute(
            f"""SELECT symbol, date, close, ret_20d, rsi_14, macd_hist, ema_ratio, adx_14, bb_pctb,
                       dist_52w_high
                FROM features_technical
                WHERE symbol IN ({", ".join("?" for _ in TECH_SYMBOLS)})
                QUALIFY date = max(date) OVER (PARTITION BY symbol) ORDER BY symbol""",
            list(TECH_SYMBOLS),
        ).fetchall()
        opts = con.execute(
            """WITH latest AS (SELECT underlying, quote_date FROM features_options
                               ORDER BY quote_date DESC, underlying LIMIT 1),
                    expiry AS (SELECT o.root, o.expiry FROM features_options o JOIN latest USING (underlying, quote_date)
                               WHERE o.iv IS NOT NULL ORDER BY abs(o.dte - 30), o.root LIMIT 1)
               SELECT quote_date, o.root || ' ' || o.expiry, strike, "right", mid, iv, vendor_iv, delta,
                      theta_per_day, underlying
               FROM features_options o JOIN latest USING (underlying, quote_date) JOIN expiry USING (root, expiry)
               ORDER BY abs(moneyness - 1), "right" LIMIT 6"""
        ).fetchall()
    finally:
        con.close()

    t = Table(title="market regime (features_regime, from the VIX: days per label since 1990)")
    for col in ("regime", "days", "first", "last", "avg VIX"):
        t.add_column(col, justify="right" if col in ("days", "avg VIX") else "left")
    for regime, days, first, last, avg_vix in counts:
        t.add_row(regime, f"{days:,}", str(first), str(last), _fmt(avg_vix, 1))
    ctx.console.print(t)

    t = Table(title=f"regime labels through the February 2020 shock ({sym})")
    for col in ("date", "close", "VIX", "5d chg", "rank", "rv_20", "regime", "days"):
        t.add_column(col, justify="left" if col in ("date", "regime") else "right", no_wrap=True)
    for r in episode.itertuples(index=False):
        t.add_row(
            str(r.date.date()),
            _fmt(r.close, 0),
            _fmt(r.vix, 1),
            f"{r.vix_chg_5d:+.0%}",
            _fmt(r.vix_rank_252, 0),
            f"{r.rv_20:.0%}",
            str(r.regime),
            str(r.days_in_regime),
        )
    ctx.console.print(t)
    path = ctx.paths.reports / "regime_feb_2020.csv"
    episode.to_csv(path, index=False)
    ctx.output("regime labels (Feb 2020)", path)

    t = Table(title="features_technical: latest row per symbol")
    for col in ("symbol", "date", "ret 20d", "RSI", "MACD hist", "EMA12/26", "ADX", "%B"):
        t.add_column(col, justify="left" if col in ("symbol", "date") else "right", no_wrap=True)
    for s, d, _close, r20, rsi, mh, er, adx, pctb, _d52 in tech:
        t.add_row(s, str(d), f"{r20:+.1%}", _fmt(rsi, 1), _fmt(mh, 2), f"{er:+.2%}", _fmt(adx, 1), _fmt(pctb))
    ctx.console.print(t)

    if opts:
        t = Table(title=f"features_options: {opts[0][-1]} chain of {opts[0][0]}, nearest the money, ~30 days")
        for col in ("root expiry", "strike", "right", "mid", "IV", "vendor IV", "delta", "theta/day"):
            t.add_column(col, justify="left" if col in ("root expiry", "right") else "right", no_wrap=True)
        for _qd, exp, k, right, mid, iv, viv, delta, theta, _und in opts:
            t.add_row(
                str(exp), _fmt(k, 0), right, _fmt(mid), _fmt(iv, 4), _fmt(viv, 4), _fmt(delta, 3), _fmt(theta)
            )
        ctx.console.print(t)
        ctx.console.print(
            "[dim]IV: features.pricing.implied_vol of the bid/ask mid with the Treasury curve as of the quote "
            "date and no dividend yield (hence a call/put gap on an index that pays one); the vendor's IV uses its "
            "own rate and forward.[/]"
        )
    ctx.console.print(
        "[dim]Query them: quantlake query \"FROM features_regime WHERE symbol = '^GSPC' ORDER BY date DESC LIMIT 5\""
        " · definitions and units: sql/features_*.sql[/]"
    )
