"""Leaderboards of an experiment's runs: a rich table for the terminal and an HTML report (plotly + jinja2)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from quantlake.config import paths
from quantlake.errors import UserInputError
from tracking.run_context import client, store_label
from tracking.runs import experiment_id, experiment_names, runs_frame, search

DEFAULT_METRIC = "sharpe"
MAX_METRIC_COLUMNS = 6
MAX_PARAM_COLUMNS = 8


@dataclass(frozen=True)
class Leaderboard:
    experiment: str
    metric: str
    ascending: bool
    runs: pd.DataFrame  # the ranked runs shown (rank column first), see tracking.runs.runs_frame
    total_runs: int  # runs of the experiment that have the metric
    metric_columns: list[str]  # other metrics worth showing (most common first)
    param_columns: list[str]  # params whose values differ between the shown runs
    lake_columns: list[str]  # tables whose versions the runs read
    hidden_reproductions: int = 0  # runs that re-executed a listed run (`runs reproduce`), left out


def _pick_metric(frame: pd.DataFrame, metric: str | None, experiment: str) -> str:
    available = sorted(c.removeprefix("metrics.") for c in frame.columns if c.startswith("metrics."))
    if not available:
        raise UserInputError(f"experiment {experiment!r} has no finished runs with metrics to compare")
    if metric is None:
        return DEFAULT_METRIC if DEFAULT_METRIC in available else available[0]
    if metric not in available:
        raise UserInputError(
            f"experiment {experiment!r} has no metric {metric!r}; available: {', '.join(available[:30])}"
            + (" ..." if len(available) > 30 else "")
        )
    return metric


def leaderboard(
    experiment: str,
    metric: str | None = None,
    top: int = 20,
    ascending: bool = False,
    include_unfinished: bool = False,
) -> Leaderboard:
    """The ``top`` runs of ``experiment`` by ``metric`` (default ``sharpe`` if any run has it, else the first
    metric alphabetically); runs without the metric are left out."""
    if top < 1:
        raise UserInputError("--top must be at least 1")
    c = client()
    exp_id = experiment_id(c, experiment)
    flt = "" if include_unfinished else "attributes.status = 'FINISHED'"
    frame = runs_frame(search(c, [exp_id], flt), experiment_names(c))
    if frame.empty:
        raise UserInputError(f"experiment {experiment!r} has no finished runs to compare")
    # each run once: a reproduction of a run (same config and data, same metrics) is not another entry
    copies = frame["reproduces"].astype(str).str.len() > 0 if "reproduces" in frame else frame["run_id"] != frame["run_id"]
    hidden = int(copies.sum())
    frame = frame[~copies].drop_duplicates("run_id")
    metric = _pick_metric(frame, metric, experiment)
    col = f"metrics.{metric}"
    ranked = frame[frame[col].notna()].sort_values(
        [col, "start_time"], ascending=[ascending, False], kind="mergesort"
    )
    total = len(ranked)
    shown = ranked.head(top).reset_index(drop=True)
    shown.insert(0, "rank", range(1, len(shown) + 1))

    metric_cols = [c for c in shown.columns if c.startswith("metrics.") and c != col]
    metric_cols.sort(key=lambda c: (-int(shown[c].notna().sum()), c))
    param_cols = [
        c for c in shown.columns if c.startswith("params.") and shown[c].astype(str).nunique(dropna=False) > 1
    ]
    lake_cols = sorted(c for c in shown.columns if c.startswith("lake."))
    return Leaderboard(
        experiment=experiment,
        metric=metric,
        ascending=ascending,
        runs=shown,
        total_runs=total,
        metric_columns=[c.removeprefix("metrics.") for c in metric_cols[:MAX_METRIC_COLUMNS]],
        param_columns=[c.removeprefix("params.") for c in sorted(param_cols)[:MAX_PARAM_COLUMNS]],
        lake_columns=[c.removeprefix("lake.") for c in lake_cols],
        hidden_reproductions=hidden,
    )


def fmt(value: Any) -> str:
    """Numbers to 6 significant digits, missing values as an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _cell(row: pd.Series, col: str) -> Any:
    return row[col] if col in row.index else None


def table_rows(board: Leaderboard) -> list[dict[str, Any]]:
    """Display strings for each shown run (shared by the terminal table and the HTML report)."""
    out = []
    for _, row in board.runs.iterrows():
        lake_values = [_cell(row, f"lake.{t}") for t in board.lake_columns]
        out.append(
            {
                "rank": int(row["rank"]),
                "run_id": row["run_id"],
                "run_name": row["run_name"],
                "job": row["job"],
                "start": fmt(row["start_time"]),
                "metric": fmt(row[f"metrics.{board.metric}"]),
                "metrics": [fmt(_cell(row, f"metrics.{m}")) for m in board.metric_columns],
                "params": [fmt(_cell(row, f"params.{p}")) for p in board.param_columns],
                "lake": [fmt(int(v)) if v is not None and not pd.isna(v) else "" for v in lake_values],
                "code": str(row["code_version"]).removeprefix("git:")[:12],
                "reproduces": str(row["reproduces"])[:8],
            }
        )
    return out


def print_board(board: Leaderboard, out: Any = None) -> None:
    """The leaderboard in the terminal, fitted to its width (:func:`quantlake.display.print_table`):
    rank, run, id and the ranking metric always; other metrics, parameters and lake versions as room allows."""
    from quantlake.display import Col, kind_of, print_table

    rows = []
    for _, r in board.runs.iterrows():
        lake = " ".join(
            f"{t}@{int(r[f'lake.{t}'])}" for t in board.lake_columns
            if f"lake.{t}" in r.index and not pd.isna(r[f"lake.{t}"])
        )
        rows.append({**{k: r[k] for k in r.index}, "lake": lake})
    cols = [
        Col("rank", "#", "int"), Col("run_name", "run"), Col("run_id", "run id", "id"),
        Col(f"metrics.{board.metric}", board.metric, kind_of(board.metric)),
    ]
    cols += [Col(f"metrics.{m}", m, kind_of(m), optional=True) for m in board.metric_columns]
    cols += [Col(f"params.{p}", p, optional=True) for p in board.param_columns]
    cols.append(Col("lake", optional=True))
    title = f"{board.experiment}: top {len(board.runs)} of {board.total_runs} runs by {board.metric}"
    if board.ascending:
        title += " (ascending)"
    if board.hidden_reproductions:
        title += f"; {board.hidden_reproductions} reproduction run(s) not listed"
    print_table(rows, cols, title=title, out=out)


def _figures(board: Leaderboard) -> tuple[str, str]:
    import plotly.graph_objects as go

    runs = board.runs
    col = f"metrics.{board.metric}"
    labels = [f"{r['rank']}. {r['run_name']} ({r['run_id'][:8]})" for _, r in runs.iterrows()]
    bar = go.Figure(go.Bar(x=labels, y=runs[col], marker_color="#4c78a8"))
    bar.update_layout(title=f"{board.metric} by run", xaxis_tickangle=-30, height=420, margin={"b": 140})
    bar_html = bar.to_html(full_html=False, include_plotlyjs=False)

    dims = []
    for p in board.param_columns:
        values = pd.to_numeric(runs[f"params.{p}"], errors="coerce")
        if values.notna().all():
            dims.append({"label": p, "values": values.tolist()})
    if not dims:
        return bar_html, ""
    dims.append({"label": board.metric, "values": runs[col].tolist()})
    par = go.Figure(
        go.Parcoords(
            line={"color": runs[col].tolist(), "colorscale": "Viridis", "showscale": True}, dimensions=dims
        )
    )
    par.update_layout(title=f"parameters vs {board.metric}", height=420)
    return bar_html, par.to_html(full_html=False, include_plotlyjs=False)


def write_report(board: Leaderboard, path: Path | None = None) -> Path:
    """Write the HTML comparison report (self-contained, works offline); default
    ``$QUANTLAKE_HOME/reports/compare_<experiment>_<metric>_<UTC time>.html``."""
    import jinja2
    from plotly.offline import get_plotlyjs

    now = dt.datetime.now(dt.UTC)
    if path is None:
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        path = paths().reports / f"compare_{board.experiment}_{board.metric}_{stamp}.html".replace("/", "_")
    path.parent.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(resources.files("tracking").joinpath("templates/compare.html.j2").read_text())
    bar, parallel = _figures(board)
    html = template.render(
        board=board,
        rows=table_rows(board),
        bar=bar,
        parallel=parallel,
        plotlyjs=get_plotlyjs(),
        generated=now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        store=store_label(),
    )
    path.write_text(html, encoding="utf-8")
    return path
