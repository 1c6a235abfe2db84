"""Demo stages of :mod:`tracking` (run by ``quantlake demo``).

* :func:`stage` — train the ML signal models on the sample data, evaluate a rule-based strategy on the same
  out-of-sample span, register all of them and put each through the promotion gate, printing why it was
  or was not promoted.
* :func:`stage_reproduce` (the demo's last stage) — new data arrives: a late batch (new days and a vendor's
  restatement of old closes) is ingested through the CSV source into a copy of the demo's lake, so
  ``equity_bars`` gets a new version there while the demo's own lake stays the sample data.  Then the latest
  run of every job is re-executed against that copy on the table versions it recorded and every metric is
  compared exactly (this stage's model and rule runs always; the other stages' runs while their recorded
  durations fit :data:`REPRODUCE_BUDGET_S`, the rest listed with the command that reproduces them).  As a
  negative control the stage shows which rows of the runs' inputs the new version changed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from rich.table import Table

from quantlake.demo_context import DemoContext
from quantlake.lake import Lake
from tracking.errors import TrackingError

# the sample data's stocks and ETFs over their common span (indexes and ^VIX are not traded); small enough
# for the demo's time budget on 2 busy cores, large enough for a real walk-forward (3 test blocks of ~1 year)
DEMO_SYMBOLS = ["AAPL", "AMZN", "GDX", "GLD", "GOOG", "GS", "MSFT", "SPY"]
DEMO_START, DEMO_END = "2010-01-01", "2017-12-29"
DEMO_TRAIN_CONFIG: dict[str, Any] = {
    "symbols": DEMO_SYMBOLS,
    "start": DEMO_START,
    "end": DEMO_END,
    "horizon": 5,
    "n_splits": 3,
    "inner_splits": 2,
    "optuna_trials": 2,
    "family_trials": {"sequence": 1},
    "importance_rows": 500,
}
DEMO_RULE = {"kind": "threshold", "feature": "ema_ratio", "long_above": 0.0}  # long while EMA12 > EMA26
RULE_MODEL = "rule_ema_trend"
METRIC_COLUMNS = [
    ("oos_sharpe", "OOS Sharpe"),
    ("oos_max_drawdown", "max DD"),
    ("oos_dsr", "deflated SR"),
    ("oos_trades", "trades"),
    ("oos_auc", "AUC"),
]
# the late batch: closes of these symbols restated by this factor over these days (inside the models'
# out-of-sample span), and new bars after the sample's last day
RESTATED_SYMBOLS = ("SPY", "AAPL", "GLD")
RESTATED_DAYS = ("2016-06-01", "2016-06-10")
RESTATE_FACTOR = 1.015
OHLC = ["open", "high", "low", "close", "adj_close", "volume"]
NEW_DAYS = ("2018-01-02", "2018-01-03", "2018-01-04")
# reproductions in the demo: this stage's own jobs always; the other stages' runs shortest first while
# their recorded durations fit this budget (the rest are listed with the command that reproduces them)
OWN_JOBS = ("strategies.evaluate_rule", "models.train")
REPRODUCE_BUDGET_S = 25.0


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "oos_max_drawdown":
        return f"{value:.1%}"
    if key == "oos_trades":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def rule_config() -> dict[str, Any]:
    """The demo's rule strategy over the same symbols, span and feature frame as the ML models."""
    return {"rule": DEMO_RULE, "symbols": DEMO_SYMBOLS, "start": DEMO_START, "end": DEMO_END, "n_trials": 1}


def stage(ctx: DemoContext) -> None:
    """Train ML signal models and a rule strategy, register them, promote those that pass the gate."""
    from flows.promote import promote_flow
    from flows.train_models import train_models_flow
    from tracking.compare import leaderboard, write_report
    from tracking.jobs import run_job
    from tracking.ml import jobs as _ml_jobs  # noqa: F401  (registers the model jobs)
    from tracking.ml import rules
    from tracking.registry import register_from_run
    from tracking.run_context import client

    features = "the feature registry" if ctx.lake.exists("features_technical") else "built-in features"
    ctx.console.print(
        f"[bold]Training signal models[/] (logistic, LightGBM, XGBoost, LSTM and their OOS-weighted ensemble) on "
        f"{len(DEMO_SYMBOLS)} symbols ({features}): purged walk-forward, Optuna inside each training window"
    )
    trained = train_models_flow(config=DEMO_TRAIN_CONFIG)
    if not isinstance(trained, dict):  # a Failed state (Prefect normally re-raises its error)
        raise TrackingError(f"training flow failed: {trained}")
    parent = client().get_run(trained["run_id"]).data.metrics
    ctx.console.print(
        f"Features: {parent.get('n_features', 0):.0f} used of the registry's {parent.get('n_features_registry', 0):.0f} "
        "(the rest have no data in the sample: no COT file, no US option chains, no DGS3MO); per-model "
        "permutation importance on the out-of-sample folds is in each model's run "
        "(`quantlake models features` lists the registry)."
    )
    rule_run = run_job(rules.JOB, rule_config())
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


# ------------------------------------------------------------------------------------------ reproduce
def latest_runs() -> list[tuple[str, str, float]]:
    """``(job, run id, seconds)`` of the newest finished top-level run of every job that read the lake
    (reproductions, nested model runs and promotion records excluded), shortest first."""
    from tracking.run_context import client
    from tracking.runs import experiment_names, search
    from tracking.tags import JOB, LAKE_VERSION_PREFIX, REPRODUCES

    c = client()
    latest: dict[str, tuple[str, float]] = {}
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
        seconds = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000
        latest.setdefault(job, (run.info.run_id, seconds))  # runs come newest first
    return sorted(((j, r, s) for j, (r, s) in latest.items()), key=lambda x: (x[2], x[0]))


def late_batch(lake: Lake) -> dict[str, pd.DataFrame]:
    """The late data as CSV-shaped frames (file name → rows): closes of :data:`RESTATED_SYMBOLS` restated by
    :data:`RESTATE_FACTOR` over :data:`RESTATED_DAYS`, and bars for :data:`NEW_DAYS` after each one's last
    bar (flat at its last close).  Bars with open/high/low and close-only series go to separate files (a
    file's columns are required in every row)."""
    syms = list(RESTATED_SYMBOLS)
    marks = ", ".join("?" for _ in syms)
    old = lake.read(
        "equity_bars",
        columns=["symbol", "date", *OHLC],
        where=f"symbol IN ({marks}) AND date BETWEEN ? AND ?",
        params=[*syms, *map(dt.date.fromisoformat, RESTATED_DAYS)],
    )
    restated = old.copy()
    for col in ("open", "high", "low", "close", "adj_close"):
        restated[col] = restated[col] * RESTATE_FACTOR
    last = old.sort_values("date").groupby("symbol").tail(1)  # only for the column layout of each symbol
    last_bar = lake.query(
        f"SELECT symbol, max(date) AS date, arg_max(close, date) AS close FROM equity_bars "
        f"WHERE symbol IN ({marks}) GROUP BY symbol",
        syms,
    )
    new = pd.DataFrame(
        [
            {"symbol": r.symbol, "date": dt.date.fromisoformat(day), "open": r.close, "high": r.close,
             "low": r.close, "close": r.close, "adj_close": r.close, "volume": 1_000_000.0}
            for r in last_bar.itertuples(index=False)
            for day in NEW_DAYS
            if pd.Timestamp(r.date).date() < dt.date.fromisoformat(day)
        ],
        columns=["symbol", "date", *OHLC],
    )  # fmt: skip
    full_symbols = set(last.loc[last["open"].notna(), "symbol"])
    rows = pd.concat([restated, new], ignore_index=True)
    has_ohlc = rows["symbol"].isin(full_symbols) | rows["open"].notna()
    return {
        "late_bars.csv": rows[has_ohlc].reset_index(drop=True),
        "late_closes.csv": rows.loc[~has_ohlc, ["symbol", "date", "close"]].reset_index(drop=True),
    }


def changed_rows(lake: Lake, before: int, after: int) -> pd.DataFrame:
    """Rows of ``equity_bars`` whose close differs between two versions, or that only one of them has,
    restricted to the demo's symbols and span (full-version reads, compared in DuckDB)."""
    con = duckdb.connect()
    try:
        con.register("a", lake.dataset("equity_bars", before))
        con.register("b", lake.dataset("equity_bars", after))
        return con.execute(
            "SELECT coalesce(a.symbol, b.symbol) AS symbol, coalesce(a.date, b.date) AS date, "
            "a.close AS close_before, b.close AS close_after "
            "FROM a FULL OUTER JOIN b ON a.symbol = b.symbol AND a.date = b.date "
            "WHERE a.close IS DISTINCT FROM b.close ORDER BY 1, 2"
        ).df()
    finally:
        con.close()


def stage_reproduce(ctx: DemoContext) -> None:
    """New data lands (in a copy of the lake), then every job's latest run is reproduced on its pinned
    table versions: every metric must be identical; unpinned, the rule's metrics change."""
    from quantlake.ingest import ingest_equity
    from quantlake.sources.csvdir import CsvSource
    from tracking.reproduce import reproduce

    runs = latest_runs()
    if not runs:
        ctx.console.print("No tracked runs to reproduce (run the research stages first).")
        return
    with tempfile.TemporaryDirectory(prefix="ql-reproduce-") as tmp:
        lake_copy = Lake(Path(tmp) / "lake")
        shutil.copytree(ctx.lake.root, lake_copy.root)
        before = lake_copy.version("equity_bars")
        late = Path(tmp) / "late"
        late.mkdir()
        for name, frame in late_batch(lake_copy).items():
            if len(frame):
                frame.to_csv(late / name, index=False)
        report = ingest_equity(lake_copy, CsvSource(late), progress=False)[0]
        after = lake_copy.version("equity_bars")
        if after == before:
            raise TrackingError("the late batch changed nothing in equity_bars (demo data changed?)")
        ctx.console.print(
            f"[bold]New data arrived[/]: {report.inserted} new bar(s) and {report.updated} restated close(s) of "
            f"{', '.join(RESTATED_SYMBOLS)} ingested (CSV source) into a copy of the lake: equity_bars "
            f"v{before} → v{after}.  Now every job's latest run is re-executed against it."
        )

        table = Table(title="reproduced on the recorded table versions (exact comparison of every metric)")
        for col in ("job", "run", "tables pinned", "metrics", "identical", "s"):
            table.add_column(col, justify="right" if col in ("metrics", "s") else "left")
        failed, skipped, spent = [], [], 0.0
        ordered = [r for r in runs if r[0] in OWN_JOBS] + [r for r in runs if r[0] not in OWN_JOBS]
        for job, run_id, seconds in ordered:
            if job not in OWN_JOBS:
                if spent + seconds > REPRODUCE_BUDGET_S:
                    skipped.append((job, run_id, seconds))
                    continue
                spent += seconds
            t0 = time.perf_counter()
            result = reproduce(run_id, lake_copy.root)
            pins = ", ".join(f"{k}@{v}" for k, v in sorted(result.original.pins.items()))
            table.add_row(
                job,
                run_id[:8],
                pins,
                str(len(result.metrics)),
                "[green]yes[/]" if result.identical else "[bold red]NO[/]",
                f"{time.perf_counter() - t0:.1f}",
            )
            if not result.identical:
                failed.append(f"{job} ({run_id})")
        ctx.console.print(table)
        for job, run_id, seconds in skipped:
            ctx.console.print(
                f"[dim]not re-run here ({job} took {seconds:.0f} s): quantlake runs reproduce {run_id}[/]"
            )

        # negative control: what the runs would have read without their pins
        diff = changed_rows(lake_copy, before, after)
        in_span = diff[
            diff["symbol"].isin(DEMO_SYMBOLS)
            & (pd.to_datetime(diff["date"]) >= pd.Timestamp(DEMO_START))
            & (pd.to_datetime(diff["date"]) <= pd.Timestamp(DEMO_END))
        ]
        ctx.console.print(
            f"Negative control: equity_bars v{after} differs from v{before} in {len(diff)} row(s), {len(in_span)} "
            f"of them inside the models' and the rule's inputs ({', '.join(sorted(set(in_span['symbol'])))} "
            f"{RESTATED_DAYS[0]}..{RESTATED_DAYS[1]}, closes ×{RESTATE_FACTOR}); the runs above read "
            f"v{before} because it is pinned, so their metrics are unchanged."
        )
    if failed:
        raise TrackingError(f"runs not reproduced identically: {', '.join(failed)}")
