"""Build the feature tables: run ``sql/<table>.sql`` in DuckDB over the lake and commit the result.

::

    from features.build import build_features
    report = build_features(Lake(), tables=["features_technical"])   # incremental unless full=True

Each table is one SQL family (see the header of its file for definitions and units).  A build reads every
input table once, at its current version (copied into DuckDB, see :func:`features.incremental.materialize`),
computes, and commits each feature table at most once: one new version per build, none when nothing
changed.  Incremental rules, per table:

* ``features_technical`` / ``features_regime``: only symbols whose bars changed since the last build are
  recomputed, from their first changed bar, reading ``warmup_rows`` bars before it; recursions (EMA,
  Wilder RSI/ATR/ADX, MACD) resume from the state stored on the previous row, so the rows are bitwise
  equal to a full rebuild (tested).  A change of the VIX series re-labels every symbol from that date.
* ``features_options`` / ``features_option_flow``: quote dates from the first changed quote (or changed
  Treasury yield, or changed underlying close) on.
* ``features_surface`` (:mod:`features.surface`): the same quote dates, from ``features_options`` and
  ``features_option_flow`` (built first); its rolling columns read the stored rows before them.
* ``features_macro`` / ``features_positioning``: small; recomputed and replaced whole when their input
  changed.

An incremental commit replaces exactly the recomputed rows (a Delta overwrite with a predicate); a full
rebuild (``full=True``, or automatically: first build, changed settings or SQL, removed input rows, an
input version that was vacuumed) replaces the table.  Either way readers see the old or the new version,
never a mix, and the commit carries a build note (:class:`features.incremental.BuildNote`) with the
input versions it was computed from: the lineage of every feature row.

Modules: this one runs the families in order (:data:`BUILDERS`); :mod:`features.build_state` holds a build's
shared state (inputs, plans, the part-wise series pass, commits); the families are in
:mod:`features.symbol_families`, :mod:`features.quote_families` and :mod:`features.surface`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow.compute as pc

from features import incremental
from features.build_state import Build, BuildReport, TableResult
from features.errors import UnknownFeatureTableError
from features.quote_families import build_macro, build_option_flow, build_options, build_positioning
from features.settings import FeatureSettings
from features.surface import build_surface
from features.symbol_families import build_regime, build_technical
from features.tables import (
    FEATURE_TABLES,
    MACRO,
    OPTION_FLOW,
    OPTIONS,
    POSITIONING,
    REGIME,
    SURFACE,
    technical_spec,
)
from quantlake.lake import Lake
from quantlake.migrations import upgrade_if_needed

__all__ = ["BuildReport", "TableResult", "build_features", "resolve_tables", "table_status"]


BUILDERS: dict[str, Callable[[Build, TableResult], None]] = {
    "features_technical": build_technical,
    "features_regime": build_regime,
    "features_macro": build_macro,
    "features_positioning": build_positioning,
    "features_option_flow": build_option_flow,
    "features_options": build_options,
    "features_surface": build_surface,
}
# a table built from other feature tables: they are built first, in the same build (FEATURE_TABLES order)
DEPENDS_ON: dict[str, tuple[str, ...]] = {"features_surface": ("features_options", "features_option_flow")}

if tuple(BUILDERS) != FEATURE_TABLES:  # pragma: no cover - a programming error caught on import
    raise RuntimeError("features.build.BUILDERS and features.tables.FEATURE_TABLES disagree")


def resolve_tables(tables: Sequence[str] | None) -> list[str]:
    """Validate table names (``technical`` is accepted for ``features_technical``)."""
    if not tables:
        return list(FEATURE_TABLES)
    out = []
    for t in tables:
        name = t.strip().lower()
        name = name if name.startswith("features_") else f"features_{name}"
        if name not in BUILDERS:
            raise UnknownFeatureTableError(f"unknown feature table {t!r}; known: {', '.join(FEATURE_TABLES)}")
        if name not in out:
            out.append(name)
    out += [d for name in list(out) for d in DEPENDS_ON.get(name, ()) if d not in out]
    return sorted(out, key=FEATURE_TABLES.index)


def build_features(
    lake: Lake | None = None,
    tables: Sequence[str] | None = None,
    full: bool = False,
    settings: FeatureSettings | None = None,
    on_result: Callable[[TableResult], None] | None = None,
    progress: bool = False,
) -> BuildReport:
    """Build the given feature tables (default all), incrementally unless ``full``.

    Each table commits on its own (one Delta version, or none when it is up to date); if a table fails, it
    stays at its previous version, tables built before it keep their new one, and the error propagates
    (a :class:`~features.errors.FeatureBuildError` for SQL failures, a lake error for a failed commit).
    ``progress`` shows a rich progress bar on stderr, one step per table (and the parts of a table built
    part by part: "features_technical part 3/11")."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    lake = lake or Lake()
    names = resolve_tables(tables)
    settings = settings or FeatureSettings()
    t_all = time.perf_counter()
    upgrade_if_needed(lake)  # a lake written by an earlier version (e.g. option_quotes without a root): once
    build = Build(lake, settings, full)
    report = BuildReport(inputs=dict(build.versions))
    bar = Progress(
        TextColumn("[bold]features[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not progress,
    )
    try:
        with bar:
            task = bar.add_task("", total=len(names))
            current = [""]
            build.on_parts = lambda done, total: bar.update(task, description=f"{current[0]} part {done}/{total}")
            for name in names:
                current[0] = name
                bar.update(task, description=name)
                result = TableResult(name, "skipped")
                t0 = time.perf_counter()
                BUILDERS[name](build, result)
                if result.version is None and lake.exists(name):
                    result.version = lake.version(name)
                result.seconds = time.perf_counter() - t0
                report.results.append(result)
                bar.advance(task)
                if on_result:
                    on_result(result)
    finally:
        build.close()
    report.seconds = time.perf_counter() - t_all
    return report


def table_status(lake: Lake | None = None) -> list[dict[str, Any]]:
    """One row per feature table: description, key, and (when built) version, rows, date range, inputs."""
    lake = lake or Lake()
    specs = {REGIME.name: REGIME, MACRO.name: MACRO, POSITIONING.name: POSITIONING}
    specs |= {OPTION_FLOW.name: OPTION_FLOW, OPTIONS.name: OPTIONS, SURFACE.name: SURFACE}
    out = []
    for name in FEATURE_TABLES:
        spec = specs.get(name) or technical_spec()
        row: dict[str, Any] = {
            "table": name,
            "key": ", ".join(spec.keys),
            "description": spec.description,
            "version": None,
            "rows": None,
            "from": None,
            "to": None,
            "inputs": "",
        }
        if lake.exists(name):
            ds = lake.delta(name).to_pyarrow_dataset()
            row["version"] = lake.version(name)
            row["rows"] = ds.count_rows()
            if spec.date_column and row["rows"]:
                col = ds.to_table(columns=[spec.date_column]).column(0)
                row["from"], row["to"] = pc.min(col).as_py(), pc.max(col).as_py()
            note = incremental.last_note(lake, name)
            if note is not None:
                row["inputs"] = ", ".join(f"{t}@{v}" for t, v in sorted(note.inputs.items()))
        out.append(row)
    return out
