"""``quantlake options-backtest --config FILE``: run one option backtest (tracked in MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _print_result(run_id: str, result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from backtests.options.jobs import result_files
    from backtests.options.runner import BacktestResult

    assert isinstance(result, BacktestResult)
    console = Console()
    t = Table(title=f"options backtest {result.name}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    pct = {"total_return", "cagr", "ann_vol", "max_drawdown", "win_rate"}
    for k, v in result.summary().items():
        t.add_row(k, f"{v:.2%}" if k in pct else f"{v:,.2f}" if abs(v) < 1e6 else f"{v:,.0f}")
    console.print(t)
    if len(result.regimes):
        r = Table(title="per regime (returns attributed to the regime held under)")
        for col in ("regime", "days", "pnl", "ann_return", "sharpe", "positions", "win_rate"):
            r.add_column(col, justify="left" if col == "regime" else "right")
        for row in result.regimes.itertuples(index=False):
            r.add_row(str(row.regime), str(row.days), f"{row.pnl:,.0f}", f"{row.ann_return:.2%}",
                      f"{row.sharpe:.2f}", str(row.positions), f"{row.win_rate:.0%}" if row.win_rate == row.win_rate
                      else "-")
        console.print(r)
    console.print(f"MLflow run: {run_id}")
    for label, path in result_files(result).items():
        if label in ("equity", "greeks", "trades", "daily", "metrics") or (
                label in ("skipped", "rejections") and len(getattr(result, label))):
            console.print(f"  {label}: {path}")


def register(app: typer.Typer) -> None:
    @app.command("options-backtest")
    def options_backtest_cmd(
        config: Annotated[Path, typer.Option("--config", "-c", help="YAML or JSON backtest config")],
        flow: Annotated[bool, typer.Option("--flow/--no-flow", help="Run as a Prefect flow (default) or directly")]
        = True,
        plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Save equity/drawdown/Greeks PNGs")] = True,
    ) -> None:
        """Backtest an option strategy on observed (else modeled) chains; logs one MLflow run with lineage."""
        from backtests.options.config import load_config

        cfg = load_config(config)  # ConfigError (exit 2) before anything starts
        if not plots:
            cfg = cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update={"plots": False})})
        if flow:
            from flows.options_backtest import options_backtest_flow

            out = options_backtest_flow(cfg.model_dump(mode="json"))  # a failed run raises its error here
            assert isinstance(out, dict)
            run_id, result = out["run_id"], out["result"]
        else:
            from backtests.options.jobs import run_tracked

            run_id, result = run_tracked(cfg)
        _print_result(run_id, result)
