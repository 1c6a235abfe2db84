"""Demo stages of :mod:`tracking` (run by ``quantlake demo``).

* :func:`stage` — train the ML signal models on the sample data, evaluate a rule-based strategy on the same
  out-of-sample span, register all of them and put each through the promotion gate, printing why it was
  or was not promoted.
* :func:`stage_reproduce` — re-execute the latest run of every registered job on its recorded table
  versions and show that every metric is identical (place it after a stage that ingests new data).
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from quantlake.demo_context import DemoContext
from tracking.errors import TrackingError

# small enough for the demo's time budget (~30 s on 2 cores), large enough to be a real walk-forward
DEMO_TRAIN_CONFIG: dict[str, Any] = {"optuna_trials": 6, "n_splits": 4, "inner_splits": 3, "horizon": 5}
DEMO_RULE = {"kind": "threshold", "feature": "ema_ratio", "long_above": 0.0}  # long while EMA12 > EMA26
RULE_MODEL = "rule_ema_trend"
METRIC_COLUMNS = [
    ("oos_sharpe", "OOS Sharpe"),
    ("oos_max_drawdown", "max DD"),
    ("oos_dsr", "deflated SR"),
    ("oos_trades", "trades"),
    ("oos_auc", "AUC"),
]


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "oos_max_drawdown":
        return f"{value:.1%}"
    if key == "oos_trades":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def stage(ctx: DemoContext) -> None:
    """Train ML signal models and a rule strategy, register them, promote those that pass the gate."""
    from flows.promote import promote_flow
    from flows.train_models import train_models_flow
    from tracking.compare import leaderboard, write_report
    from tracking.jobs import run_job
    from tracking.ml import rules
    from tracking.registry import register_from_run
    from tracking.run_context import client

    ctx.console.print(
        "[bold]Training signal models[/]: purged walk-forward, Optuna inside each training window"
    )
    trained = train_models_flow(config=DEMO_TRAIN_CONFIG)
    if not isinstance(trained, dict):  # a Failed state (Prefect normally re-raises its error)
        raise TrackingError(f"training flow failed: {trained}")
    rule_run = run_job(rules.JOB, {"rule": DEMO_RULE, "feature_table": None, "n_trials": 1})
    versions = {**trained["versions"], RULE_MODEL: register_from_run(rule_run, RULE_MODEL)}

    c = client()
    table = Table(title="registered signal models (out-of-sample, after 5 bps costs)")
    table.add_column("model")
    table.add_column("version", justify="right")
    for _, label in METRIC_COLUMNS:
        table.add_column(label, justify="right")
    for name, version in versions.items():
        mv = c.get_model_version(name, version)
        metrics = c.get_run(mv.run_id).data.metrics if mv.run_id else {}
        table.add_row(name, str(version), *[_fmt(k, metrics.get(k)) for k, _ in METRIC_COLUMNS])
    ctx.console.print(table)

    decisions = promote_flow({name: int(v) for name, v in versions.items()})
    if not isinstance(decisions, list):
        raise TrackingError(f"promotion flow failed: {decisions}")
    for d in decisions:
        colour = {"promoted": "green", "forced": "yellow", "unchanged": "cyan"}.get(d["outcome"], "red")
        ctx.console.print(f"[bold {colour}]{d['model']} v{d['version']}: {d['outcome']}[/]")
        for check in d["checks"]:
            mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
            ctx.console.print(f"    {mark} {check['name']}: {check['detail']}")
    report = write_report(leaderboard("models", metric="oos_sharpe"))
    ctx.output("model comparison (HTML)", report)
    ctx.results["models"] = {"training_run": trained["run_id"], "versions": versions, "decisions": decisions}
    ctx.console.print(
        "Browse runs and models with [bold]quantlake ui mlflow[/]; "
        "[bold]quantlake models list[/] shows each champion."
    )


def stage_reproduce(ctx: DemoContext) -> None:
    """Reproduce the latest run of every job on its recorded table versions; every metric must match."""
    from tracking.reproduce import reproduce
    from tracking.run_context import client
    from tracking.runs import experiment_names, search
    from tracking.tags import JOB, LAKE_VERSION_PREFIX, REPRODUCES

    c = client()
    latest: dict[str, str] = {}
    for run in search(c, list(experiment_names(c)), "attributes.status = 'FINISHED'"):
        t = run.data.tags
        job = t.get(JOB, "")
        if (
            not job
            or "/" in job
            or REPRODUCES in t
            or "mlflow.parentRunId" in t
            or job.startswith("registry.")
        ):
            continue
        if not any(k.startswith(LAKE_VERSION_PREFIX) for k in t):
            continue
        latest.setdefault(job, run.info.run_id)  # runs come newest first
    table = Table(title="reproduced on the recorded table versions")
    for col in ("job", "run", "tables", "metrics", "identical"):
        table.add_column(col)
    failed = []
    for job, run_id in sorted(latest.items()):
        result = reproduce(run_id)
        pins = ", ".join(f"{k}@{v}" for k, v in sorted(result.original.pins.items()))
        table.add_row(
            job, run_id[:8], pins, str(len(result.metrics)), "yes" if result.identical else "[red]NO[/]"
        )
        if not result.identical:
            failed.append(f"{job} ({run_id})")
    ctx.console.print(table)
    if failed:
        raise TrackingError(f"runs not reproduced identically: {', '.join(failed)}")
