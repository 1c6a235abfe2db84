"""``quantlake portfolio``: registered without importing the portfolio engine (every command's start-up
would pay for it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML or JSON portfolio config", show_default=False)]


def register(app: typer.Typer) -> None:
    @app.command("portfolio")
    def portfolio_command(config: ConfigOpt) -> None:
        """Backtest a portfolio of symbols or strategy sleeves sharing one cash account, rebalanced on a
        calendar or a band to min-variance / max-Sharpe / risk-parity / HRP weights on trailing returns."""
        from rich.console import Console

        from backtests.portfolio.config import load_portfolio_config
        from backtests.portfolio.jobs import JOB, RESULTS, metrics, output_dir
        from quantlake.config import quiet_environment
        from quantlake.lake import Lake
        from tracking.jobs import run_job

        quiet_environment()
        cfg = load_portfolio_config(config)  # a bad config exits 2 before anything heavy runs
        console = Console()
        run_id = run_job(JOB, cfg, Lake(), run_name=cfg.name)
        result = RESULTS.pop(run_id)
        m = metrics(result, cfg)
        console.print(f"[bold]portfolio {cfg.name}[/] ({cfg.weights.method}, {cfg.rebalance.mode}): run {run_id}")
        for key in ("final_value", "annual_return", "annual_volatility", "sharpe", "max_drawdown", "rebalances", "fees"):
            console.print(f"  {key:18s} {m[key]:,.4f}")
        for note in result.notes:
            console.print(f"  [yellow]note:[/] {note}")
        console.print(f"  outputs: {output_dir(cfg)}")
