"""``quantlake demo`` stage for equity research: a vectorbt sweep of the EMA crossover on the sample data through
the Prefect flow (one MLflow run), with walk-forward, Monte Carlo, overfitting statistics and the independent
check of the selected combination against the plain event-loop backtester."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.table import Table

from quantlake.demo_context import DemoContext

DEMO_CONFIG: dict[str, Any] = {
    "name": "demo-ema-cross",
    "strategy": {
        "kind": "ema_cross",
        "params": {
            "fast": {"range": [5, 15], "step": 2},
            "slow": {"range": [20, 50], "step": 5},
            "rsi_filter": "not_overbought",
            "macd_confirm": True,
        },
    },
    "symbols": ["SPY", "AAPL", "GOOG"],
    "start": "2008-01-01",
    "end": "2017-12-31",
    "costs": {"fees": 0.0005, "slippage": 0.0005},
    "chunk_size": 1,
    "metric": "sharpe",
    "walkforward": {"mode": "rolling", "train_bars": 756, "test_bars": 252},
    "montecarlo": {"n_sims": 2000, "seed": 7},
    # the quantstats tearsheet takes 10-25 s on a busy 2-core machine: `quantlake sweep` writes it by default
    "report": {"heatmap": ["fast", "slow"], "tearsheet": False},
}


def stage(ctx: DemoContext) -> None:
    """Sweep, walk-forward and Monte Carlo of an EMA crossover; DSR/PBO; independent check."""
    import pandas as pd

    from backtests.equity.config import SweepConfig, validate
    from backtests.equity.reference import check_chunk
    from backtests.equity.sweep import prepare
    from flows.equity_sweep import run_equity_flow

    cfg = validate(SweepConfig, DEMO_CONFIG)
    t0 = time.perf_counter()
    from backtests.equity.jit import enable_cache

    enable_cache()  # imports vectorbt (several seconds) so the sweep's own timing is the sweep's
    ctx.console.print(f"[dim]vectorbt loaded in {time.perf_counter() - t0:.1f} s[/]")
    ctx.console.print(
        "[bold]EMA crossover[/] (RSI context, MACD confirmation) on SPY, AAPL, GOOG 2008-2017: "
        "every (fast, slow) pair, one engine call per symbol chunk (vectorbt's order functions in a parallel "
        "numba loop), chunks as Prefect tasks"
    )
    digest = run_equity_flow(cfg.model_dump(mode="json"), job="equity.sweep", runner="thread", workers=2)
    m, timing = digest["metrics"], digest.get("timing", {})

    top = Table(title=f"best of {int(m['n_trials'])} combinations (equal-weight over 3 symbols, after costs)")
    for col in ("fast", "slow", "Sharpe", "ann. return", "max DD", "trades", "win rate"):
        top.add_column(col, justify="right")
    for row in digest["top"]:
        top.add_row(str(row["fast"]), str(row["slow"]), f"{row['sharpe']:.2f}", f"{row['annualized_return']:.1%}",
                    f"{row['max_drawdown']:.1%}", f"{row['trades']:.0f}", f"{row['win_rate']:.0%}")  # fmt: skip
    ctx.console.print(top)

    stats = Table(title="is it real? overfitting, walk-forward, Monte Carlo")
    stats.add_column("statistic")
    stats.add_column("value", justify="right")
    stats.add_column("meaning")
    rows = [
        ("deflated Sharpe ratio", f"{m['dsr.dsr']:.3f}",
         f"P(true Sharpe > best of {int(m['n_trials'])} lucky trials = {m['dsr.sr0_annualized']:.2f}/yr)"),
        ("PBO (CSCV, 16 blocks)", f"{m['pbo.pbo']:.2f}", "share of splits where the in-sample best is below the OOS median"),
        ("walk-forward OOS Sharpe", f"{m['wf.oos.sharpe']:.2f}",
         f"stitched {int(m['wf.windows'])} rolling windows; in-sample mean {m['wf.is_mean.sharpe']:.2f}"),
        ("walk-forward efficiency", f"{m['wf.efficiency']:.2f}", "OOS / IS annualized return"),
        ("Monte Carlo final equity p05-p95", f"{m['mc.bootstrap.final_p05']:.2f}-{m['mc.bootstrap.final_p95']:.2f}",
         "bootstrap of the selected combination's trades (start = 1)"),
        ("risk of ruin (50 % loss)", f"{m['mc.bootstrap.risk_of_ruin']:.2%}", "bootstrap; parametric: "
         f"{m['mc.parametric.risk_of_ruin']:.2%}"),
        ("speed", f"{timing.get('backtests_per_s', float('nan')):,.0f}/s",
         f"{int(m['n_backtests'])} backtests incl. data load, metrics and kernel load (benchmarks/bench_equity.py)"),
    ]  # fmt: skip
    for r in rows:
        stats.add_row(*r)
    ctx.console.print(stats)

    # the independent check: the selected combination re-run bar by bar in a plain Python event loop
    combos, tasks, _, _ = prepare(cfg, ctx.lake)
    best = combos[(combos["fast"] == digest["best_params"]["fast"]) & (combos["slow"] == digest["best_params"]["slow"])]
    check: pd.DataFrame = pd.concat([check_chunk(replace(t, combos=best)) for t in tasks], ignore_index=True)
    ok = bool(check["same_bars"].all())
    ctx.console.print(
        f"independent check (event-loop reference vs vectorbt, selected combination): "
        f"{int(check['trades_vectorbt'].sum())} trades, same entry/exit bars: "
        f"{'[green]yes[/]' if ok else '[red]NO[/]'}, largest price/size difference "
        f"{check['max_rel_diff'].max():.1e}, final values within {check['final_rel_diff'].max():.1e}"
    )
    if not ok:
        raise RuntimeError(f"vectorbt and the reference backtester disagree:\n{check}")
    for label, key in (("equity sweep heatmap (HTML)", "heatmap"), ("equity curve + drawdown (HTML)", "equity"),
                       ("quantstats tearsheet (HTML)", "tearsheet"), ("walk-forward equity (HTML)", "walkforward_equity"),
                       ("Monte Carlo fan chart (HTML)", "montecarlo")):  # fmt: skip
        if key in digest["files"]:
            ctx.output(label, Path(digest["files"][key]))
    ctx.console.print(f"MLflow run {digest['run_id']} (experiment equity_sweep); try "
                      "[bold]quantlake sweep --config configs/equity/ema_cross_sample.yaml[/]")  # fmt: skip
    ctx.results["equity"] = {"run_id": digest["run_id"], "best_params": digest["best_params"],
                             "dsr": m["dsr.dsr"], "pbo": m["pbo.pbo"]}  # fmt: skip
