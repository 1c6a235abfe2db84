"""Files of a run (trades, fills, daily equity and Greeks, positions, per-regime metrics, plots) and their
MLflow logging."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.options.config import OptionsBacktestConfig
from backtests.options.runner import BacktestResult
from quantlake.config import paths

FRAMES = ("trades", "fills", "daily", "positions", "open_positions", "rejections", "skipped", "regimes")


def output_dir(config: OptionsBacktestConfig) -> Path:
    if config.outputs.directory:
        return Path(config.outputs.directory).expanduser().resolve()
    return paths().reports / "options" / config.name


def _frame(result: BacktestResult, name: str) -> pd.DataFrame:
    df: pd.DataFrame = getattr(result, name)
    return df.reset_index() if name == "daily" else df


def write_outputs(result: BacktestResult, directory: Path, plots: bool = True) -> dict[str, Path]:
    """Write every frame as Parquet, metrics as JSON and (optionally) the equity/drawdown and Greeks PNGs."""
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
    run.set_tags({
        "options.leg_days_observed": result.leg_days["observed"],
        "options.leg_days_modeled": result.leg_days["modeled"],
        "options.strategy": result.extra.get("strategy", ""),
        "options.underlying": result.extra.get("underlying", ""),
        "options.bars_source": result.extra.get("bars_source", ""),
        "options.seconds": f"{result.seconds:.2f}",  # a tag, not a metric: timing is not reproducible
    })
