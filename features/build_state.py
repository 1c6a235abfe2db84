"""One feature build's shared state (:class:`Build`): the inputs pinned at the start, the DuckDB database the
families query, each table's plan (full, incremental or up to date, from its last build note), the part-wise
series pass and the commit.  The families themselves are in :mod:`features.symbol_families` and
:mod:`features.quote_families`; :mod:`features.build` runs them in order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from features import incremental, sql_runner
from features.incremental import BuildNote
from features.series import PART_ROWS, computed_in_order, scope_parts
from features.settings import FeatureSettings
from features.udfs import register_udfs
from quantlake.lake import Lake
from quantlake.lake_sql import register_view
from quantlake.tables import CORE_TABLES, TableSpec

# bump when features/kernels.py or features/udfs.py change what they compute (forces full rebuilds)
CODE_VERSION = "2"  # 2: the series pass (features/series.py), four-chain window sums
# threads computing parts of a per-symbol family at once (each runs DuckDB and the numba kernels, which also
# use the cores): two keep both cores of a small machine busy while the writer encodes (measured on 2 cores)
PART_WORKERS = 2


@dataclass
class TableResult:
    """What a build did to one feature table."""

    table: str
    mode: str  # "full" | "incremental" | "up to date" | "skipped"
    rows: int = 0  # rows computed and written (the whole table for a full build)
    written: int = 0
    version: int | None = None  # table version after the build (None: table absent)
    detail: str = ""
    seconds: float = 0.0


@dataclass
class BuildReport:
    results: list[TableResult] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)  # input table -> version read
    seconds: float = 0.0

    def __getitem__(self, table: str) -> TableResult:
        for r in self.results:
            if r.table == table:
                return r
        raise KeyError(table)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [r.__dict__.copy() for r in self.results]


@dataclass
class Plan:
    """How to (re)build one table: full, up to date, or incremental from the registered previous inputs."""

    full: bool
    up_to_date: bool = False
    reason: str = ""
    note: BuildNote | None = None
    prev_inputs: dict[str, int] = field(default_factory=dict)  # changed input -> version at the last build


class Build:
    """One build: a DuckDB connection, inputs loaded on first use at the versions pinned at the start."""

    def __init__(self, lake: Lake, settings: FeatureSettings, full: bool) -> None:
        self.lake = lake
        self.settings = settings
        self.force_full = full
        self.versions = {t: lake.version(t) for t in CORE_TABLES if lake.exists(t)}
        self.con = register_udfs(self._configured(duckdb.connect()))
        # (parts written, parts) of the table being built part by part: the caller's progress display
        self.on_parts: Callable[[int, int], None] | None = None
        self.part_rows = PART_ROWS  # bars per part (tests cut small lakes into many parts with it)
        self._loaded: set[str] = set()
        self._bar_changes: dict[int, incremental.SymbolChanges | None] = {}
        self._previous: dict[tuple[str, int], bool] = {}
        # the last incremental start positions computed, by their (symbol, first changed date) input
        self.positions: tuple[tuple[tuple[str, dt.date], ...], pa.Table] | None = None
        self._previous_loaded: dict[str, int] = {}  # table -> version prev_<table> holds now

    @staticmethod
    def _configured(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        # DuckDB plans an ASOF join as a nested loop when it estimates <= 64 left rows; a registered Arrow
        # table (a part's series) has no statistics, so the estimate can be tiny and the loop quadratic
        con.execute("SET asof_loop_join_threshold = 0")
        return con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Another connection to the build's database for a worker thread (the ``ql_*`` functions are the
        database's: registered once, on the first connection)."""
        return self._configured(self.con.cursor())

    def close(self) -> None:
        self.con.close()

    def load(self, *tables: str, whole: bool = True) -> None:
        """Make input tables queryable under their own names (an absent optional input is an empty table).

        ``whole=False`` (a family that reads the input part by part, or a small part of it): on a local
        lake, a view over the version's Parquet files read by DuckDB's own reader, so each query decodes only
        the columns and row groups it needs (500 symbols x 20 years: a copy held ~750 MB and took 0.6 s; +1
        day: ~1 s CPU less); otherwise one copy of the table into DuckDB, which several passes over the
        whole input read faster."""
        for name in tables:
            if name in self._loaded:
                continue
            # not TEMP: the parts' worker threads query them through their own cursors (series_parts)
            if name in self.versions and not whole and self.lake.is_local:
                table = self.lake.delta(name, self.versions[name])
                self.lake.versions_read[name] = table.version()
                register_view(self.con, name, table, temporary=False)
            elif name in self.versions:
                data = self.lake.dataset(name, self.versions[name])
                incremental.materialize(self.con, name, data, temporary=False)
            else:
                incremental.materialize(self.con, name, CORE_TABLES[name].schema.empty_table(), temporary=False)
            self._loaded.add(name)

    # -------------------------------------------------------------------------------------------- planning
    def has(self, table: str) -> bool:
        return table in self.versions

    def plan(self, table: str, inputs: Iterable[str], fingerprint: str) -> Plan:
        inputs = [t for t in inputs]
        if self.force_full:
            return Plan(True, reason="--full")
        if not self.lake.exists(table):
            return Plan(True, reason="first build")
        note = incremental.last_note(self.lake, table)
        if note is None:
            return Plan(True, reason="no build note")
        if note.fingerprint != fingerprint:
            return Plan(True, reason="settings or code changed")
        prev: dict[str, int] = {}
        for t in inputs:
            now, then = self.versions.get(t), note.inputs.get(t)
            if now == then:
                continue
            if now is None:
                return Plan(True, reason=f"{t} no longer exists")
            if t == "equity_bars" and then is not None:
                if self.bar_changes(then) is None:
                    return Plan(True, reason=f"{t} version {then} is no longer readable")
            elif then is not None and not self.register_previous(t, then):
                return Plan(True, reason=f"{t} version {then} is no longer readable")
            prev[t] = -1 if then is None else then
        if not prev:
            return Plan(False, up_to_date=True, note=note)
        return Plan(False, note=note, prev_inputs=prev)

    def register_previous(self, table: str, version: int) -> bool:
        """``prev_<table>`` as of ``version`` (see :func:`features.incremental.register_previous`), loaded
        once per build: the plans of several tables compare against the same previous version."""
        if self._previous_loaded.get(table) == version:
            return True
        if self._previous.get((table, version)) is False:
            return False
        ok = incremental.register_previous(self.con, self.lake, table, version)
        self._previous[(table, version)] = ok
        if ok:
            self._previous_loaded[table] = version
        return ok

    def bar_changes(self, version: int) -> incremental.SymbolChanges | None:
        """Symbols whose bars changed since equity_bars ``version`` (None: that version is no longer
        readable), from the data files the two versions do not share (memoized per version)."""
        if version not in self._bar_changes:
            now = self.versions["equity_bars"]
            self._bar_changes[version] = incremental.changed_bars_between(self.lake, version, now)
        return self._bar_changes[version]

    def known_bar_changes(self, version: int) -> incremental.SymbolChanges:
        """:meth:`bar_changes` of a version :meth:`plan` found readable (it plans a full build otherwise)."""
        changes = self.bar_changes(version)
        if changes is None:  # pragma: no cover - plan() returned a full plan instead
            raise RuntimeError(f"equity_bars version {version} was planned from but is not readable")
        return changes

    def note(self, inputs: Iterable[str], fingerprint: str) -> BuildNote:
        return BuildNote({t: self.versions[t] for t in inputs if t in self.versions}, fingerprint)

    # -------------------------------------------------------------------------------------------- running
    def run(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        template: dict[str, Any] | None = None,
        register_as: str | None = None,
    ) -> pa.Table:
        out = sql_runner.run(self.con, name, params, template)
        if register_as:
            self.con.register(register_as, out)
        return out

    def commit(
        self,
        spec: TableSpec,
        data: pa.Table | Iterable[pa.Table],
        note: BuildNote,
        result: TableResult,
        predicate: str | None,
    ) -> None:
        """Replace the whole table (``predicate`` None) or exactly the rows matching ``predicate``.

        Always a Delta overwrite, never a merge: delta-rs's merge writes ``string_view`` Parquet columns
        that pyarrow cannot filter on (see :func:`features.incremental.materialize`), which would break
        every reader filtering a feature table by symbol."""
        parts = [data] if isinstance(data, pa.Table) else data  # parts: streamed (see Lake.replace_parts)
        res = self.lake.replace_parts(spec.name, parts, spec, predicate=predicate, note=note.dumps())
        result.rows = result.written = res.inserted
        result.version = res.version

    def series_parts(
        self,
        scope: pa.Table,
        bars_sql: str,
        series: Callable[[pa.Table, pa.Table], pa.Table],
        view: str,
        sql: str,
        params: dict[str, Any] | None,
        template: dict[str, Any] | None,
    ) -> Iterator[pa.Table]:
        """The rows of ``sql`` part by part: the symbols of ``scope`` cut into parts of about
        :data:`~features.series.PART_ROWS` bars (:func:`features.series.scope_parts`); for each, its bars
        (``bars_sql`` over the part's scope, registered as ``scope``) through the series pass
        ``series(bars, part_scope)``, registered as ``view``.  No step holds every symbol's bars at once."""
        counts = self.run("series/symbol_rows") if scope.num_rows else scope

        def compute(part: pa.Table, con: duckdb.DuckDBPyConnection) -> pa.Table:
            con.register("scope", part)
            con.register(view, series(sql_runner.run(con, bars_sql), part))
            try:
                return sql_runner.run(con, sql, params, template)
            finally:
                con.unregister(view)

        # parts on PART_WORKERS threads, each with its own cursor on the build's database (the inputs are
        # tables/views of that database, not of the connection), while the writer encodes the previous part
        parts = list(scope_parts(scope, counts, self.part_rows))
        report = self.on_parts

        def reported() -> Iterator[pa.Table]:
            for i, out in enumerate(computed_in_order(parts, compute, self.cursor, PART_WORKERS)):
                yield out
                if report is not None:  # the writer took part i: it is written
                    report(i + 1, len(parts))

        return reported()


def fingerprint(*parts: str) -> str:
    h = hashlib.sha256(CODE_VERSION.encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()[:16]
