"""Files of a run (trades, fills, daily equity and Greeks, positions, per-regime metrics, plots) and their
MLflow logging."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.options.config import OptionsBacktestConfig
from backtests.options.runner import BacktestResult
from quantlake.config import paths

FRAMES = ("trades", "fills", "daily", "positions", "open_positions", "rejections", "skipped", "regimes")


def output_dir(config: OptionsBacktestConfig, run_id: str | None = None) -> Path:
    """``outputs.directory``, else a folder per run: ``$QUANTLAKE_HOME/reports/options/<name>-<UTC time>[-<run
    id>]`` (one name for every run overwrote the previous run's files)."""
    if config.outputs.directory:
        return Path(config.outputs.directory).expanduser().resolve()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return paths().reports / "options" / (f"{config.name}-{stamp}" + (f"-{run_id[:8]}" if run_id else ""))


def run_output_dir(config: OptionsBacktestConfig, run_id: str) -> Path:
    """The folder :func:`output_dir` gave the tracked run ``run_id`` (its newest, should it have several)."""
    if config.outputs.directory:
        return output_dir(config)
    found = sorted((paths().reports / "options").glob(f"{config.name}-*-{run_id[:8]}"))
    if not found:
        raise FileNotFoundError(f"no output folder of run {run_id[:8]} ({config.name}) under "
                                f"{paths().reports / 'options'}")
    return found[-1]


def _frame(result: BacktestResult, name: str) -> pd.DataFrame:
    df: pd.DataFrame = getattr(result, name)
    return df.reset_index() if name == "daily" else df


def write_outputs(
    result: BacktestResult, directory: Path, plots: bool = True, tearsheet: bool = False
) -> dict[str, Path]:
    """Write every frame as Parquet, metrics as JSON and (optionally) the equity/drawdown and Greeks PNGs and
    quantstats' tearsheet of the daily returns."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in FRAMES:
        p = directory / f"{name}.parquet"
        _frame(result, name).to_parquet(p, index=False)
        out[name] = p
    p = directory / "metrics.json"
    clean = {k: (v if math.isfinite(v) else None) for k, v in result.metrics.items()}
    p.write_text(json.dumps({"metrics": clean, "leg_days": result.leg_days, **result.extra}, indent=2,
                            default=str))
    out["metrics"] = p
    if plots:
        from backtests.options import plots as pl

        initial = result.initial_cash
        for name, fig in (("equity", pl.equity_figure(result.daily, f"{result.name}: equity and drawdown", initial)),
                          ("greeks", pl.greeks_figure(result.daily, f"{result.name}: portfolio Greeks"))):
            p = directory / f"{name}.png"
            fig.savefig(p, dpi=110)  # the figures are laid out already (tight_layout)
            pl.close(fig)
            out[name] = p
    if tearsheet and len(result.daily) > 2:
        from backtests import reports
        from backtests.options.metrics import returns

        daily = returns(result.daily, result.initial_cash)
        daily.index = pd.to_datetime(daily.index)
        out["tearsheet"] = reports.tearsheet(daily.rename(result.name), directory / "tearsheet.html",
                                             title=f"{result.name} (option backtest)")
    result.plots = {k: v for k, v in out.items() if v.suffix == ".png"}
    return out


def log_result(run: Any, result: BacktestResult, files: dict[str, Path]) -> None:
    """Log frames, plots, leg-day counts and per-regime metrics to an open tracked run."""
    for name in FRAMES:
        run.log_frame(name, _frame(result, name))
    for p in files.values():
        if p.suffix == ".png":
            run.log_artifact(p, artifact_path="plots")
    run.log_artifact(files["metrics"])
    if "tearsheet" in files:
        run.log_artifact(files["tearsheet"], artifact_path="reports")
    run.set_tags({
        "options.leg_days_observed": result.leg_days["observed"],
        "options.leg_days_modeled": result.leg_days["modeled"],
        "options.strategy": result.extra.get("strategy", ""),
        "options.underlying": result.extra.get("underlying", ""),
        "options.bars_source": result.extra.get("bars_source", ""),
        "options.seconds": f"{result.seconds:.2f}",  # a tag, not a metric: timing is not reproducible
    })
