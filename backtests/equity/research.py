"""One research run: the sweep, then (when configured) walk-forward and Monte Carlo of its selection, and the
files a person opens afterwards (heatmaps, equity/drawdown, tearsheet, tables as Parquet, statistics as JSON).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtests import reports
from backtests.equity.config import METRICS, SweepConfig
from backtests.equity.sweep import Detail, SweepResult, detail, run_sweep
from backtests.research.montecarlo import MonteCarloResult, monte_carlo
from backtests.research.walkforward import WalkForwardResult, walk_forward
from quantlake import stats as qstats
from quantlake.config import paths
from quantlake.lake import Lake

HEATMAP_METRICS = (*METRICS, "mean_unit_sharpe")


@dataclass
class ResearchResult:
    sweep: SweepResult
    detail: Detail
    walkforward: WalkForwardResult | None = None
    montecarlo: MonteCarloResult | None = None
    files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)  # the charts of the report folder, by file stem
    title: str = ""

    def metrics(self) -> dict[str, float]:
        """Flat finite numbers for MLflow: best combination, overfitting, walk-forward, Monte Carlo.

        Timings are not metrics (a reproduction must give identical metrics): see :meth:`timing`."""
        s = self.sweep
        out: dict[str, float] = {f"best.{k}": v for k, v in s.best_metrics.items()}
        out.update(
            {
                "n_trials": float(len(s.combos)),
                "n_units": float(len(s.table["unit"].unique())),
                "n_backtests": float(s.n_backtests),
            }
        )
        out.update(s.overfitting())
        ppy = s.config.periods_per_year
        out["dsr.sharpe_annualized"] = s.dsr.sharpe * math.sqrt(ppy)
        out["dsr.sr0_annualized"] = s.dsr.sr0 * math.sqrt(ppy)
        if self.walkforward is not None:
            out.update(self.walkforward.metrics())
            out.update(oos_gate_metrics(self))
        if self.montecarlo is not None:
            out.update(self.montecarlo.metrics())
        return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


    def timing(self) -> dict[str, float]:
        return {"sweep_seconds": self.sweep.seconds, "backtests_per_s": self.sweep.backtests_per_second}


def run_research(config: SweepConfig, lake: Lake) -> ResearchResult:
    sweep = run_sweep(config, lake)
    det = detail(sweep)
    out = ResearchResult(sweep, det)
    if config.walkforward is not None:
        out.walkforward = walk_forward(sweep.returns, config.walkforward, config.metric, config.periods_per_year)
        out.walkforward.windows["oos_trades"] = _oos_trades(sweep, out.walkforward, det)
    if config.montecarlo is not None:
        closed = det.trades[det.trades["status"] == "closed"]
        if config.is_pairs:  # one pair trade = both legs; its return on the capital the legs committed
            closed = closed.assign(notional=closed["size"].abs() * closed["entry_price"])
            closed = closed.groupby(["unit", "entry_date", "exit_date"], as_index=False)[
                ["pnl", "notional"]
            ].sum()
            closed["return"] = closed["pnl"] / closed["notional"]
            closed = closed.sort_values("exit_date", kind="stable")
        n_units = max(1, int(det.value.shape[1]))
        fraction = config.montecarlo.fraction or 1.0 / n_units
        out.montecarlo = monte_carlo(closed["return"].to_numpy(), config.montecarlo, fraction)
    return out


def _oos_trades(sweep: SweepResult, wf: WalkForwardResult, best: Detail) -> list[int]:
    """Per window: trades of the chosen combination entered inside its out-of-sample dates."""
    trades = {best.combo: best.trades}
    out = []
    for row in wf.windows.itertuples(index=False):
        if row.combo not in trades:
            trades[row.combo] = detail(sweep, int(row.combo)).trades
        t = trades[row.combo]
        out.append(int(((t["entry_date"] >= row.oos_start) & (t["entry_date"] <= row.oos_end)).sum()))
    return out


def oos_gate_metrics(res: ResearchResult) -> dict[str, float]:
    """The walk-forward's stitched out-of-sample record in the promotion gate's terms (``tracking.stats``):
    annualized Sharpe, max drawdown, trades, deflated Sharpe (trials = combinations swept), observations."""
    wf = res.walkforward
    if wf is None:
        return {}
    r = wf.oos_returns.to_numpy()
    trial = res.sweep.returns.reindex(wf.oos_returns.index).fillna(0.0).to_numpy()
    ppy = res.sweep.config.periods_per_year  # bars a year at the sweep's interval (252 for daily NYSE bars)
    trial_sharpes = qstats.sharpe_ratio(trial, ppy)
    dsr = qstats.deflated_sharpe_ratio(r, len(trial_sharpes), trial_sharpes, ppy)
    return {
        "oos_sharpe": float(qstats.sharpe_ratio(r, res.sweep.config.periods_per_year)),
        "oos_max_drawdown": wf.oos_metrics["max_drawdown"],
        "oos_trades": float(wf.windows["oos_trades"].sum()),
        "oos_dsr": float(dsr),
        "oos_n_obs": float(len(r)),
        "oos_total_return": wf.oos_metrics["total_return"],
        "n_trials": float(len(trial_sharpes)),
    }


def default_output_dir(config: SweepConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return config.report.output_dir or paths().reports / "equity" / f"{config.name}-{stamp}"


def heatmap_params(result: SweepResult) -> tuple[str, str] | None:
    if result.config.report.heatmap is not None:
        return result.config.report.heatmap
    sw = result.swept
    return (sw[0], sw[1]) if len(sw) >= 2 else None


def write_reports(res: ResearchResult, out_dir: Path | None = None) -> dict[str, Path]:
    """Write every report file of ``res`` under ``out_dir``; returns label → path."""
    s, cfg = res.sweep, res.sweep.config
    out = Path(out_dir or default_output_dir(cfg))
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    figures: dict[str, Any] = {}  # every chart: MLflow gets them on one page (jobs.log_research)
    title = f"{cfg.name}: {cfg.strategy.kind}"

    def chart(name: str, figure: Any) -> Path:
        figures[name] = figure
        return reports.write_html(figure, out / f"{name}.html")

    s.table.to_parquet(out / "results.parquet", index=False)
    s.summary.to_parquet(out / "summary.parquet")
    s.returns.rename(columns=str).to_parquet(out / "returns.parquet")
    res.detail.trades.to_parquet(out / "trades.parquet", index=False)
    files.update({k: out / f"{k}.parquet" for k in ("results", "summary", "returns", "trades")})

    stats = {
        "best_combo": s.best,
        "best_params": s.best_params,
        "metric": cfg.metric,
        "best_metrics": s.best_metrics,
        "deflated_sharpe": s.dsr.as_dict(),
        "pbo": s.pbo.as_dict(),
        "n_backtests": s.n_backtests,
        "seconds": s.seconds,
        "notes": s.notes,
    }
    (out / "overfitting.json").write_text(json.dumps(stats, indent=2, default=str))
    files["overfitting"] = out / "overfitting.json"

    hm = heatmap_params(s)
    if hm is not None:
        fig = reports.heatmap_figure(
            s.summary, hm[0], hm[1], HEATMAP_METRICS, title=title, default=cfg.metric
        )
        files["heatmap"] = chart("heatmap", fig)
        per_unit = reports.heatmap_figure(
            s.table,
            hm[0],
            hm[1],
            [m for m in HEATMAP_METRICS if m in s.table],
            agg="mean",
            title=f"{title} (mean over symbols)",
            default=cfg.metric,
        )
        files["heatmap_units"] = chart("heatmap_units", per_unit)

    combined = (1.0 + res.detail.returns.dropna()).cumprod().rename("combined (equal weight)")
    units = res.detail.value / cfg.execution.init_cash
    equity = pd.concat([combined, units], axis=1)
    params = ", ".join(f"{k}={v}" for k, v in s.best_params.items() if k in s.swept) or "fixed parameters"
    fig = reports.equity_drawdown_figure(equity, title=f"{title}: selected {params}", log_y=True)
    files["equity"] = chart("equity", fig)
    if cfg.report.tearsheet:
        files["tearsheet"] = reports.tearsheet(
            res.detail.returns.rename("strategy"), out / "tearsheet.html", title=f"{title} ({params})"
        )

    if res.walkforward is not None:
        wf = res.walkforward
        wf.windows.to_parquet(out / "walkforward.parquet", index=False)
        files["walkforward_table"] = out / "walkforward.parquet"
        bars = reports.bars_figure(
            wf.windows, "window", ["is_sharpe", "oos_sharpe"], title=f"{title}: walk-forward IS vs OOS Sharpe"
        )
        files["walkforward_windows"] = chart("walkforward_windows", bars)
        stitched = (1.0 + wf.oos_returns).cumprod().rename("walk-forward OOS (stitched)")
        fig = reports.equity_drawdown_figure(
            stitched.to_frame(), title=f"{title}: stitched out-of-sample equity"
        )
        files["walkforward_equity"] = chart("walkforward_equity", fig)

    if res.montecarlo is not None:
        mc = res.montecarlo
        mc.summary.to_parquet(out / "montecarlo.parquet")
        files["montecarlo_table"] = out / "montecarlo.parquet"
        fig = reports.fan_chart_figure(
            mc.bands,
            title=f"{title}: Monte Carlo of {mc.n_trades} trades (fraction {mc.fraction:.3g} per trade)",
        )
        files["montecarlo"] = chart("montecarlo", fig)
    res.files = files
    res.figures, res.title = figures, title
    return files


def summary_lines(res: ResearchResult, top: int = 5) -> dict[str, Any]:
    """What a console shows: the top combinations and the headline statistics."""
    s = res.sweep
    from backtests.equity.sweep import rank_order

    order = rank_order(s.summary[s.config.metric], s.config.metric).index[:top]
    cols = [*s.swept, "sharpe", "annualized_return", "max_drawdown", "trades", "win_rate"]
    return {"top": s.summary.loc[order, list(dict.fromkeys(cols))], "stats": res.metrics()}
