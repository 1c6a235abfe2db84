"""Reproducible jobs (``quantlake runs reproduce RUN_ID`` re-runs them on the pinned table versions).

``equity.sweep``, ``equity.walkforward`` and ``equity.montecarlo`` run :func:`run_research` with their config
model (the latter two require their section), write the reports and, inside a tracked run, log everything
to it: the selected parameters, the reports and tables as artifacts, and the metrics returned here (best
combination, deflated Sharpe, PBO, walk-forward and Monte Carlo figures).  Config, provenance and lake
lineage are logged by :func:`tracking.run_context.tracked_run`.
"""

from __future__ import annotations

from typing import Any

from backtests.equity.config import MonteCarloConfig, SweepConfig, WalkForwardConfig
from backtests.equity.research import ResearchResult, default_output_dir, run_research, write_reports
from quantlake.lake import Lake
from tracking.jobs import register_job
from tracking.run_context import RunHandle, current_run

# run id -> result of a research job run in this process (the flow and CLI read it back to print it)
RESULTS: dict[str, ResearchResult] = {}


def log_research(run: RunHandle, res: ResearchResult) -> None:
    s = res.sweep
    run.log_params({f"selected.{k}": v for k, v in s.best_params.items()})
    run.set_tags(
        {
            "equity.strategy": s.config.strategy.kind,
            "equity.selected_combo": s.best,
            "equity.swept": ",".join(s.swept),
            "equity.units": ",".join(map(str, s.table["unit"].unique())),
            "equity.notes": " | ".join(s.notes)[:4000],
            **{f"equity.{k}": f"{v:.4g}" for k, v in res.timing().items()},
        }
    )
    run.log_dict(
        {"deflated_sharpe": s.dsr.as_dict(), "pbo": s.pbo.as_dict(), "n_trials": len(s.combos)},
        "overfitting_stats.json",
    )
    for path in res.files.values():
        if path.suffix == ".html" and path.name != "tearsheet.html":
            continue  # the charts go in once, on report.html below (plotly.js embedded once per run)
        run.log_artifact(path, artifact_path="tables" if path.suffix == ".parquet" else "reports")
    if res.figures:  # one self-contained page for MLflow's viewer: plotly.js embedded once per run
        from backtests.reports import bundle_html

        run.log_text(bundle_html(res.figures, res.title), "reports/report.html")


def research_job(config: SweepConfig, lake: Lake) -> dict[str, float]:
    res = run_research(config, lake)
    write_reports(res, default_output_dir(config))
    run = current_run()
    if run is not None:
        log_research(run, res)
        RESULTS[run.run_id] = res
    return res.metrics()


@register_job("equity.sweep", SweepConfig, experiment="equity_sweep")
def equity_sweep(config: SweepConfig, lake: Lake) -> dict[str, float]:
    """Equity parameter sweep (vectorbt) with overfitting statistics, reports and optional WF/MC."""
    return research_job(config, lake)


@register_job("equity.walkforward", WalkForwardConfig, experiment="equity_walkforward")
def equity_walkforward(config: WalkForwardConfig, lake: Lake) -> dict[str, float]:
    """Walk-forward optimization of an equity sweep."""
    return research_job(config, lake)


@register_job("equity.montecarlo", MonteCarloConfig, experiment="equity_montecarlo")
def equity_montecarlo(config: MonteCarloConfig, lake: Lake) -> dict[str, float]:
    """Monte Carlo (bootstrap, shuffle, parametric) of an equity sweep's selected combination."""
    return research_job(config, lake)


JOB_FOR_COMMAND = {
    "sweep": "equity.sweep",
    "walkforward": "equity.walkforward",
    "montecarlo": "equity.montecarlo",
}
CONFIG_FOR_JOB: dict[str, Any] = {
    "equity.sweep": SweepConfig,
    "equity.walkforward": WalkForwardConfig,
    "equity.montecarlo": MonteCarloConfig,
}


def summary(run_id: str) -> dict[str, Any]:
    """JSON-able digest of a research run finished in this process (for the flow's return value)."""
    res = RESULTS.pop(run_id, None)
    if res is None:
        return {"run_id": run_id}
    from backtests.equity.research import summary_lines

    lines = summary_lines(res)
    return {
        "run_id": run_id,
        "best_params": res.sweep.best_params,
        "metrics": lines["stats"],
        "timing": res.timing(),
        "top": lines["top"].reset_index().to_dict("records"),
        "files": {k: str(v) for k, v in res.files.items()},
        "notes": res.sweep.notes,
    }
