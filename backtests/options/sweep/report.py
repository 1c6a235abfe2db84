"""Files of an option sweep and their MLflow logging: the trials table, the trials' returns, heatmaps over any
two swept settings, the selected trial's own backtest outputs (equity/drawdown and Greeks charts, trades,
daily book), overfitting statistics, walk-forward and Monte Carlo tables and charts."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from backtests import reports
from backtests.options.report import log_result, write_outputs
from backtests.options.sweep.research import OptionSweepResult, rank_order
from quantlake.config import paths

HEATMAP_METRICS = ("sharpe", "sortino", "cagr", "max_drawdown", "calmar", "win_rate", "positions", "total_return")


def default_output_dir(res: OptionSweepResult) -> Path:
    cfg = res.config
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return cfg.report.output_dir or paths().reports / "options_sweep" / f"{cfg.name}-{stamp}"


def heatmap_params(res: OptionSweepResult) -> tuple[str, str] | None:
    if res.config.report.heatmap is not None:
        return res.config.report.heatmap
    return (res.swept[0], res.swept[1]) if len(res.swept) >= 2 else None


def _table(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet-safe: swept list values (``{values: [[...], ...]}``) as text."""
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, list | tuple)).any():
            out[col] = out[col].map(lambda v: json.dumps(list(v)) if isinstance(v, list | tuple) else v)
    return out


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def write_reports(res: OptionSweepResult, out_dir: Path | None = None) -> dict[str, Path]:
    """Write every file of ``res`` under ``out_dir``; returns label → path."""
    cfg = res.config
    out = Path(out_dir or default_output_dir(res))
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    title = f"{cfg.name}: {cfg.strategy['kind']} on {cfg.underlying}"
    trials = _table(res.trials)
    trials.to_parquet(out / "trials.parquet")
    res.returns.rename(columns=str).to_parquet(out / "trial_returns.parquet")
    files.update({"trials": out / "trials.parquet", "trial_returns": out / "trial_returns.parquet"})

    stats = {
        "selected_trial": res.best, "selected_params": res.best_params, "metric": cfg.metric,
        "selected_metrics": _finite({k: float(v) for k, v in res.trials.loc[res.best].items()
                                     if k not in res.params}),
        "deflated_sharpe": res.dsr.as_dict(), "pbo": res.pbo.as_dict(), "n_trials": len(res.trials),
        "returns": "daily returns in excess of the cash rate", "notes": res.notes,
    }
    (out / "overfitting.json").write_text(json.dumps(stats, indent=2, default=str))
    files["overfitting"] = out / "overfitting.json"

    hm = heatmap_params(res)
    if hm is not None:
        metrics = [m for m in HEATMAP_METRICS if m in trials.columns]
        fig = reports.heatmap_figure(trials, hm[0], hm[1], metrics, title=title, default=cfg.metric)
        files["heatmap"] = reports.write_html(fig, out / "heatmap.html")

    selected = write_outputs(res.selected, out / "selected", plots=cfg.report.plots)
    files.update({f"selected_{k}": v for k, v in selected.items()})

    if res.walkforward is not None:
        wf = res.walkforward
        wf.windows.to_parquet(out / "walkforward.parquet", index=False)
        files["walkforward_table"] = out / "walkforward.parquet"
        bars = reports.bars_figure(wf.windows, "window", ["is_sharpe", "oos_sharpe"],
                                   title=f"{title}: walk-forward IS vs OOS Sharpe (excess returns)")
        files["walkforward_windows"] = reports.write_html(bars, out / "walkforward_windows.html")
        stitched = (1.0 + wf.oos_returns).cumprod().rename("walk-forward OOS (stitched, excess of cash)")
        fig = reports.equity_drawdown_figure(stitched.to_frame(), title=f"{title}: stitched out-of-sample equity")
        files["walkforward_equity"] = reports.write_html(fig, out / "walkforward_equity.html")
    if res.montecarlo is not None:
        mc = res.montecarlo
        mc.summary.to_parquet(out / "montecarlo.parquet")
        files["montecarlo_table"] = out / "montecarlo.parquet"
        fig = reports.fan_chart_figure(mc.bands, title=f"{title}: Monte Carlo of {mc.n_trades} positions")
        files["montecarlo"] = reports.write_html(fig, out / "montecarlo.html")
    res.files = files
    return files


def log_sweep(run: Any, res: OptionSweepResult, lake: Any) -> None:
    """Log the sweep to its (parent) MLflow run, and the top ``report.child_runs`` trials as child runs."""
    cfg = res.config
    run.log_params({f"selected.{k}": (json.dumps(list(v)) if isinstance(v, list | tuple) else v)
                    for k, v in res.best_params.items()})
    run.set_tags({
        "options.strategy": cfg.strategy["kind"], "options.underlying": cfg.underlying,
        "options.selected_trial": res.best, "options.swept": ",".join(res.swept),
        "options.notes": " | ".join(res.notes)[:4000],
        **{f"options.{k}": f"{v:.4g}" for k, v in res.timing().items()},
    })
    run.log_frame("trials", _table(res.trials), artifact_path="tables")
    run.log_dict({"deflated_sharpe": res.dsr.as_dict(), "pbo": res.pbo.as_dict(), "n_trials": len(res.trials)},
                 "overfitting_stats.json")
    for label, path in res.files.items():
        if label.startswith("selected_"):
            continue
        run.log_artifact(path, artifact_path="tables" if path.suffix == ".parquet" else "reports")
    # the selected trial's own outputs at the run's root, as an options backtest run logs them (so `quantlake
    # risk report --run ID` reads its daily book)
    log_result(run, res.selected, {k.removeprefix("selected_"): v for k, v in res.files.items()
                                   if k.startswith("selected_")})
    if cfg.report.child_runs:
        _child_runs(run, res, lake)


def _child_runs(run: Any, res: OptionSweepResult, lake: Any) -> None:
    from backtests.options.sweep.config import expand
    from tracking.run_context import client, tracked_run

    trials = expand(res.config)
    experiment = client().get_experiment(run.experiment_id).name
    top = rank_order(res.trials[res.config.metric], res.config.metric).index[: res.config.report.child_runs]
    for rank, trial in enumerate(top, start=1):
        cfg = trials.configs[int(trial)]
        with tracked_run(experiment, "options.sweep.trial", cfg, lake, run_name=cfg.name,
                         extra_tags={"options.sweep_run": run.run_id, "options.trial": int(trial),
                                     "options.rank": rank}) as child:
            row = res.trials.loc[trial]
            child.log_metrics({k: float(v) for k, v in row.items() if k not in res.params
                               and isinstance(v, int | float) and math.isfinite(float(v))})
