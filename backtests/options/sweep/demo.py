"""``quantlake demo`` stage for option research: a small put-credit-spread sweep on ^GSPC (short-put delta ×
profit target) through the ``options-sweep`` flow — trials on shared modeled chains, heatmap, deflated
Sharpe and PBO, walk-forward and Monte Carlo — as one MLflow parent run."""

from __future__ import annotations

from typing import Any

from quantlake.demo_context import DemoContext

CONFIG: dict[str, Any] = {
    "name": "demo_pcs_sweep", "underlying": "^GSPC", "start": "2017-01-03", "end": "2018-12-31",
    "initial_cash": 1_000_000,
    "strategy": {"kind": "put_credit_spread", "short_put": {"by": "delta", "value": [0.15, 0.25, 0.35]},
                 "width": {"pct": 0.02}, "dte": {"min": 30, "max": 50, "target": 45},
                 "exits": {"profit_target": [0.5, None], "stop_loss": 2.0, "time_exit": 0.8, "exit_regimes": []},
                 "sizing": {"method": "risk", "risk_fraction": 0.02}},
    "market": {"rate": {"series": "DGS2"}, "dividend_yield": 0.018},
    "chunks": 2, "overfitting": {"cscv_splits": 8},
    "walkforward": {"mode": "rolling", "train_bars": 252, "test_bars": 63},
    "montecarlo": {"n_sims": 1000},
    "report": {"heatmap": ["short_put.value", "exits.profit_target"], "plots": True},
}


def stage(ctx: DemoContext) -> None:
    """Six put-credit-spread trials on shared chains, with overfitting statistics, walk-forward, Monte Carlo."""
    from backtests.options.cli import _print_sweep
    from flows.options_backtest import options_sweep_flow

    out = options_sweep_flow(CONFIG)
    assert isinstance(out, dict)  # a failed flow raises its error instead of returning
    _print_sweep(out, ctx.console)
    for label in ("heatmap", "trials", "selected_equity", "walkforward_equity", "montecarlo"):
        if label in out["files"]:
            ctx.output(f"option sweep {label}", out["files"][label])
    ctx.results["options_sweep"] = out
