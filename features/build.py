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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from features import incremental, sql_runner
from features.errors import UnknownFeatureTableError
from features.incremental import BuildNote
from features.series import computed_in_order, regime_series, scope_parts, technical_series
from features.settings import FeatureSettings
from features.surface import build_surface
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
from features.udfs import register_udfs
from quantlake.lake import Lake
from quantlake.lake_sql import register_view
from quantlake.migrations import upgrade_if_needed
from quantlake.tables import CORE_TABLES, TableSpec, register

# bump when features/kernels.py or features/udfs.py change what they compute (forces full rebuilds)
CODE_VERSION = "2"  # 2: the series pass (features/series.py), four-chain window sums
RV_PERIODS: tuple[int, ...] = (5, 10, 20, 60, 120)
# bars each row of the per-symbol tables can look back: 52-week windows (252), SMA200, rv_120 + 1 return
MIN_WARMUP = 253
# threads computing parts of a per-symbol family at once (each runs DuckDB and the numba kernels, which also
# use the cores): two keep both cores of a small machine busy while the writer encodes (measured on 2 cores)
PART_WORKERS = 2
_ALL_DATES = dt.date(1800, 1, 1)


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
class _Plan:
    """How to (re)build one table: full, up to date, or incremental from the registered previous inputs."""

    full: bool
    up_to_date: bool = False
    reason: str = ""
    note: BuildNote | None = None
    prev_inputs: dict[str, int] = field(default_factory=dict)  # changed input -> version at the last build


class _Build:
    """One build: a DuckDB connection, inputs loaded on first use at the versions pinned at the start."""

    def __init__(self, lake: Lake, settings: FeatureSettings, full: bool) -> None:
        self.lake = lake
        self.settings = settings
        self.force_full = full
        self.versions = {t: lake.version(t) for t in CORE_TABLES if lake.exists(t)}
        self.con = register_udfs(self._configured(duckdb.connect()))
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

    def plan(self, table: str, inputs: Iterable[str], fingerprint: str) -> _Plan:
        inputs = [t for t in inputs]
        if self.force_full:
            return _Plan(True, reason="--full")
        if not self.lake.exists(table):
            return _Plan(True, reason="first build")
        note = incremental.last_note(self.lake, table)
        if note is None:
            return _Plan(True, reason="no build note")
        if note.fingerprint != fingerprint:
            return _Plan(True, reason="settings or code changed")
        prev: dict[str, int] = {}
        for t in inputs:
            now, then = self.versions.get(t), note.inputs.get(t)
            if now == then:
                continue
            if now is None:
                return _Plan(True, reason=f"{t} no longer exists")
            if t == "equity_bars" and then is not None:
                if self.bar_changes(then) is None:
                    return _Plan(True, reason=f"{t} version {then} is no longer readable")
            elif then is not None and not self.register_previous(t, then):
                return _Plan(True, reason=f"{t} version {then} is no longer readable")
            prev[t] = -1 if then is None else then
        if not prev:
            return _Plan(False, up_to_date=True, note=note)
        return _Plan(False, note=note, prev_inputs=prev)

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
        return computed_in_order(scope_parts(scope, counts), compute, self.cursor, PART_WORKERS)


def fingerprint(*parts: str) -> str:
    h = hashlib.sha256(CODE_VERSION.encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()[:16]


def _template(settings: FeatureSettings) -> dict[str, Any]:
    return {"sma_periods": settings.technical.sma_periods, "ema_periods": settings.technical.ema_periods}


def _warmup(settings: FeatureSettings) -> int:
    return max(settings.warmup_rows, MIN_WARMUP, max(settings.technical.sma_periods) + 1)


# ------------------------------------------------------------------------------------------------ families
def _stored_state(b: _Build, table: str, positions: pa.Table) -> pa.Table:
    """Rows of the stored ``table`` on the dates incremental recursions resume from (the bar before each
    affected symbol's first changed bar).  Filtered on the date column only (see ``materialize``)."""
    schema = technical_spec(b.settings.technical).schema
    ema = [f"ema_{n}" for n in b.settings.technical.ema_periods]
    columns = ["symbol", "date", *ema, "macd_signal", "atr_14", "adx_14"]
    columns += [c for c in schema.names if c.startswith("st_")]  # only what technical_scope.sql reads
    dates = pc.unique(positions.column("prev_date").drop_null())
    if len(dates) == 0:
        return schema.empty_table().select(columns)
    dataset = b.lake.delta(table).to_pyarrow_dataset()
    return dataset.to_table(columns=columns, filter=pc.field("date").isin(dates))


def _per_symbol_scope(
    b: _Build, first_dates: dict[str, dt.date], scope_sql: str, template: dict[str, Any] | None
) -> pa.Table:
    key = tuple(sorted(first_dates.items()))
    if b.positions is None or b.positions[0] != key:  # the regime family often asks for the technical one's
        b.con.register("affected", incremental.affected_table(first_dates))
        b.positions = (key, b.run("incremental/symbol_positions", {"warmup": _warmup(b.settings)}))
    positions = b.positions[1]
    b.con.register("positions", positions)
    if scope_sql == "incremental/technical_scope":
        b.con.register("features_technical", _stored_state(b, "features_technical", positions))
    return b.run(scope_sql, {"warmup": _warmup(b.settings)}, template, register_as="scope")


def _scope_detail(scope: pa.Table) -> str:
    resumed = scope.num_rows - scope.column("write_from").null_count
    return f"{scope.num_rows} symbol(s), {resumed} resumed from stored state/warm-up"


def build_technical(b: _Build, result: TableResult) -> None:
    spec = register(technical_spec(b.settings.technical))
    tmpl = _template(b.settings)
    fp = fingerprint(
        b.settings.fingerprint("technical"),
        sql_runner.render("features_technical", tmpl),
        sql_runner.render("series/technical_bars"),
        sql_runner.render("incremental/technical_scope", tmpl),
    )
    inputs = ("equity_bars",)
    if not b.has("equity_bars"):
        result.mode, result.detail = "skipped", "no equity_bars in the lake"
        return
    plan = b.plan(spec.name, inputs, fp)
    if plan.up_to_date:
        result.mode = "up to date"
        return
    b.load("equity_bars", whole=False)
    if not plan.full:
        changes = b.known_bar_changes(plan.prev_inputs["equity_bars"])
        if changes.removed:
            plan = _Plan(True, reason="bars were removed")
        elif not changes.first_date:
            result.mode, result.detail = "up to date", "no bar values changed"
            return
    if plan.full:
        scope = b.run(
            "incremental/full_scope", template={"ema_periods": tmpl["ema_periods"]}, register_as="scope"
        )
        result.detail = f"{scope.num_rows} symbol(s); {plan.reason}"
    else:
        scope = _per_symbol_scope(b, changes.first_date, "incremental/technical_scope", tmpl)
        result.detail = _scope_detail(scope)
    settings = b.settings.technical
    parts = b.series_parts(
        scope,
        "series/technical_bars",
        lambda bars, part: technical_series(bars, part, settings.sma_periods, settings.ema_periods),
        "technical_series",
        "features_technical",
        None,
        tmpl,
    )
    result.mode = "full" if plan.full else "incremental"
    b.commit(spec, parts, b.note(inputs, fp), result, None if plan.full else incremental.rows_predicate(scope))


def _regime_params(settings: FeatureSettings) -> dict[str, Any]:
    rules = settings.regime
    return {
        "vix_symbol": rules.vix_symbol,
        "vix_max_stale_days": rules.vix_max_stale_days,
        "high_rank": rules.high_rank,
        "high_level": rules.high_level,
        "low_rank": rules.low_rank,
        "low_level": rules.low_level,
        "expansion_change": rules.expansion_change,
        "contraction_change": rules.contraction_change,
        "elevated_rank": rules.elevated_rank,
        "elevated_level": rules.elevated_level,
    }


def build_regime(b: _Build, result: TableResult) -> None:
    tmpl = {"rv_periods": RV_PERIODS}
    fp = fingerprint(
        b.settings.fingerprint("regime"),
        sql_runner.render("features_regime", tmpl),
        sql_runner.render("series/regime_bars"),
        sql_runner.render("incremental/regime_scope"),
    )
    inputs = ("equity_bars",)
    if not b.has("equity_bars"):
        result.mode, result.detail = "skipped", "no equity_bars in the lake"
        return
    plan = b.plan(REGIME.name, inputs, fp)
    if plan.up_to_date:
        result.mode = "up to date"
        return
    b.load("equity_bars", whole=False)
    first: dict[str, dt.date] = {}
    if not plan.full:
        changes = b.known_bar_changes(plan.prev_inputs["equity_bars"])
        first = dict(changes.first_date)
        vix_from = first.get(b.settings.regime.vix_symbol)
        if changes.removed:
            plan = _Plan(True, reason="bars were removed")
        elif vix_from is not None:  # the VIX labels every symbol: all symbols trading since then change
            rows = b.con.execute(
                "SELECT symbol FROM equity_bars GROUP BY symbol HAVING max(date) >= ?", [vix_from]
            ).fetchall()
            for (sym,) in rows:
                first[sym] = min(first.get(sym, vix_from), vix_from)
        if not plan.full and not first:
            result.mode, result.detail = "up to date", "no bar values changed"
            return
    if plan.full:
        scope = b.run("incremental/full_scope", template={"ema_periods": ()}, register_as="scope")
        result.detail = f"{scope.num_rows} symbol(s); {plan.reason}"
    else:
        scope = _per_symbol_scope(b, first, "incremental/regime_scope", None)
        result.detail = _scope_detail(scope)
    parts = b.series_parts(
        scope,
        "series/regime_bars",
        lambda bars, _part: regime_series(bars, RV_PERIODS),
        "regime_series",
        "features_regime",
        _regime_params(b.settings),
        tmpl,
    )
    result.mode = "full" if plan.full else "incremental"
    b.commit(
        REGIME, parts, b.note(inputs, fp), result, None if plan.full else incremental.rows_predicate(scope)
    )


def _build_whole(b: _Build, result: TableResult, spec: TableSpec, input_table: str) -> None:
    """Families small enough to recompute and replace whole whenever their input changed."""
    fp = fingerprint(sql_runner.render(spec.name))
    if not b.has(input_table):
        result.mode, result.detail = "skipped", f"no {input_table} in the lake"
        return
    plan = b.plan(spec.name, (input_table,), fp)
    if plan.up_to_date:
        result.mode = "up to date"
        return
    b.load(input_table)
    data = b.run(spec.name)
    result.mode = "full"
    result.detail = plan.reason or f"{input_table} changed: recomputed whole"
    b.commit(spec, data, b.note((input_table,), fp), result, None)


def build_macro(b: _Build, result: TableResult) -> None:
    _build_whole(b, result, MACRO, "macro_series")


def build_positioning(b: _Build, result: TableResult) -> None:
    _build_whole(b, result, POSITIONING, "cot_positions")


def _quote_plan(b: _Build, spec: TableSpec, inputs: tuple[str, ...], fp: str) -> tuple[_Plan, dt.date | None]:
    """Plan of a per-quote-date table: (plan, first quote date to recompute; None = nothing to do)."""
    plan = b.plan(spec.name, inputs, fp)
    if plan.full:
        return plan, _ALL_DATES
    if plan.up_to_date:
        return plan, None
    starts: list[dt.date] = []
    prev = plan.prev_inputs
    if prev.get("option_quotes", 0) < 0:
        starts.append(_ALL_DATES)
    elif "option_quotes" in prev:
        if not incremental.has_column(b.con, "prev_option_quotes", "root"):
            return _Plan(True, reason="option_quotes was upgraded (root joined the key)"), _ALL_DATES
        ch = incremental.changed_quotes(b.con)
        if ch.removed:
            return _Plan(True, reason="quotes were removed"), _ALL_DATES
        starts += [ch.first_date] if ch.first_date else []
    if "macro_series" in prev:
        if prev["macro_series"] < 0:
            starts.append(_ALL_DATES)
        else:
            rc = incremental.changed_rates(b.con)
            starts += [rc.first_date] if rc.first_date else []
    if "equity_bars" in prev:
        if prev["equity_bars"] < 0:
            starts.append(_ALL_DATES)
        else:
            underlyings = {
                r[0] for r in b.con.execute("SELECT DISTINCT underlying FROM option_quotes").fetchall()
            }
            changes = b.known_bar_changes(prev["equity_bars"]).first_date
            starts += [d for s, d in changes.items() if s in underlyings]
    return plan, (min(starts) if starts else None)


def build_option_flow(b: _Build, result: TableResult) -> None:
    _build_quotes(b, result, OPTION_FLOW, ("option_quotes",), {})


def build_options(b: _Build, result: TableResult) -> None:
    opts = b.settings.options
    _build_quotes(
        b,
        result,
        OPTIONS,
        ("option_quotes", "macro_series", "equity_bars"),
        {"risk_free": opts.risk_free, "div_yield": opts.dividend_yield},
        b.settings.fingerprint("options"),
    )


def _build_quotes(
    b: _Build,
    result: TableResult,
    spec: TableSpec,
    inputs: tuple[str, ...],
    params: dict[str, Any],
    settings_fp: str = "",
) -> None:
    if not b.has("option_quotes"):
        result.mode, result.detail = "skipped", "no option_quotes in the lake"
        return
    fp = fingerprint(settings_fp, sql_runner.render(spec.name))
    b.load(*inputs)
    plan, start = _quote_plan(b, spec, inputs, fp)
    if start is None:
        result.mode = "up to date"
        return
    data = b.run(spec.name, {**params, "from_date": start})
    result.mode = "full" if plan.full else "incremental"
    result.detail = plan.reason if plan.full else f"quote dates from {start}"
    predicate = None if plan.full else incremental.since_predicate("quote_date", start)
    b.commit(spec, data, b.note(inputs, fp), result, predicate)


BUILDERS: dict[str, Callable[[_Build, TableResult], None]] = {
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
    ``progress`` shows a rich progress bar on stderr, one step per table."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    lake = lake or Lake()
    names = resolve_tables(tables)
    settings = settings or FeatureSettings()
    t_all = time.perf_counter()
    upgrade_if_needed(lake)  # a lake written by an earlier version (e.g. option_quotes without a root): once
    build = _Build(lake, settings, full)
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
            for name in names:
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
