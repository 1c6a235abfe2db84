"""Querying the tracking store: experiments by name, runs as one pandas frame."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tracking import tags
from tracking.errors import ExperimentNotFoundError, TrackingError

MAX_RUNS = 5000
_PAGE = 1000


def experiment_names(c: MlflowClient) -> dict[str, str]:
    """``{experiment_id: name}`` of every active experiment."""
    out: dict[str, str] = {}
    token = None
    while True:
        page = c.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=_PAGE, page_token=token)
        out.update({e.experiment_id: e.name for e in page})
        token = page.token
        if not token:
            return out


def experiment_id(c: MlflowClient, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is None or exp.lifecycle_stage != "active":
        known = ", ".join(sorted(experiment_names(c).values())) or "none yet"
        raise ExperimentNotFoundError(f"no experiment {name!r} (experiments: {known})")
    return str(exp.experiment_id)


def search(
    c: MlflowClient, experiment_ids: Iterable[str], filter_string: str = "", limit: int = MAX_RUNS
) -> list[Run]:
    """Runs of the experiments, newest first, at most ``limit``."""
    ids = list(experiment_ids)
    if not ids:
        return []
    runs: list[Run] = []
    token = None
    try:
        while len(runs) < limit:
            page = c.search_runs(
                ids,
                filter_string=filter_string,
                max_results=min(_PAGE, limit - len(runs)),
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                break
    except MlflowException as exc:
        raise TrackingError(f"searching runs failed: {exc.message}") from None
    return runs


def runs_frame(runs: Iterable[Run], experiments: dict[str, str]) -> pd.DataFrame:
    """One row per run: identity, status, provenance, ``metrics.*``, ``params.*`` and ``lake.*`` columns."""
    rows = []
    for r in runs:
        t = r.data.tags
        start = pd.Timestamp(r.info.start_time, unit="ms", tz="UTC") if r.info.start_time else pd.NaT
        end = pd.Timestamp(r.info.end_time, unit="ms", tz="UTC") if r.info.end_time else pd.NaT
        row: dict[str, object] = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name or "",
            "experiment": experiments.get(r.info.experiment_id, r.info.experiment_id),
            "job": t.get(tags.JOB, ""),
            "status": r.info.status,
            "start_time": start,
            "duration_s": (end - start).total_seconds()
            if end is not pd.NaT and start is not pd.NaT
            else None,
            "code_version": t.get(tags.CODE_VERSION, ""),
            "reproduces": t.get(tags.REPRODUCES, ""),
            "flow_run": t.get(tags.FLOW_RUN, ""),
        }
        row.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in r.data.params.items()})
        row.update({f"lake.{k}": v for k, v in tags.lake_versions(t).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def artifact_files(c: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of a run (paths relative to its artifact root, depth first)."""
    out: list[str] = []
    try:
        entries = c.list_artifacts(run_id, path)
    except MlflowException as exc:
        raise TrackingError(f"cannot list the artifacts of run {run_id}: {exc.message}") from None
    for entry in entries:
        if entry.is_dir:
            out += artifact_files(c, run_id, entry.path)
        else:
            out.append(entry.path)
    return out


def backtest_curve(run_id: str, dst: Path) -> tuple[Path, str | None]:
    """The local copy of a backtest run's daily results and the column holding its curve (None: detect).

    Knows the research packages' layouts: the options backtester's ``daily.parquet`` (``date``, ``equity``,
    ...), the equity research's ``tables/returns.parquet`` (one returns column per parameter combination;
    the selected one is the run's ``equity.selected_combo`` tag), else any ``equity*.parquet`` or
    ``returns*.parquet`` artifact.  Raises :class:`~quantlake.errors.UserInputError` naming what the run has
    when none of them is there.
    """
    from quantlake.errors import UserInputError
    from tracking.reproduce import get_run
    from tracking.run_context import client

    c = client()
    run = get_run(c, run_id)
    files = artifact_files(c, run_id)
    column: str | None = None
    if "daily.parquet" in files:
        chosen = "daily.parquet"
    elif "tables/returns.parquet" in files:
        chosen = "tables/returns.parquet"
        column = run.data.tags.get("equity.selected_combo")
    else:
        named = [
            f for f in files if Path(f).name.startswith(("equity", "returns")) and f.endswith(".parquet")
        ]
        if not named:
            listing = ", ".join(files[:20]) + (" ..." if len(files) > 20 else "") or "no artifacts"
            raise UserInputError(
                f"run {run_id} has no daily equity or returns artifact (daily.parquet, tables/returns.parquet, "
                f"equity*.parquet); it has: {listing}"
            )
        chosen = named[0]
    try:
        local = c.download_artifacts(run_id, chosen, str(dst))
    except MlflowException as exc:
        raise TrackingError(f"cannot download {chosen} of run {run_id}: {exc.message}") from None
    return Path(local), column
