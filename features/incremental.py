"""What changed since a feature table was last built.

Every feature commit carries a *build note* (JSON in the commit's ``quantlake.note``): the version of each
input table it was computed from and a fingerprint of the code and settings.  The next build reads the
note, opens each input as of the recorded version next to its current version, and diffs the two in DuckDB
(``sql/incremental/changed_*.sql``) to find the first changed date per symbol (bars), quote date (options)
or rate date (Treasury yields).  Anything it cannot establish — no note, another fingerprint, an input
version that no longer exists (vacuumed), removed rows — makes the caller rebuild the table in full.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from features import sql_runner
from quantlake.errors import QuantlakeError
from quantlake.lake import Lake
from quantlake.lake_sql import register_view
from quantlake.tables import validate_symbol

NOTE_MARK = "quantlake.features"


@dataclass(frozen=True)
class BuildNote:
    """Inputs (table → version) a feature table's rows were computed from, and the code/settings fingerprint."""

    inputs: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""

    def dumps(self) -> str:
        return json.dumps(
            {NOTE_MARK: 1, "inputs": self.inputs, "fingerprint": self.fingerprint}, sort_keys=True
        )

    @classmethod
    def loads(cls, text: str) -> BuildNote | None:
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            return None
        if not isinstance(data, dict) or data.get(NOTE_MARK) != 1:
            return None
        inputs = data.get("inputs")
        if not isinstance(inputs, dict) or not all(isinstance(v, int) for v in inputs.values()):
            return None
        return cls({str(k): int(v) for k, v in inputs.items()}, str(data.get("fingerprint", "")))


def last_note(lake: Lake, table: str) -> BuildNote | None:
    """The build note of the newest commit of ``table`` that has one (None: no table or no note)."""
    if not lake.exists(table):
        return None
    for entry in sorted(lake.history(table), key=lambda h: int(h.get("version", -1)), reverse=True):
        note = BuildNote.loads(str(entry.get("quantlake.note", "")))
        if note is not None:
            return note
    return None


def materialize(
    con: duckdb.DuckDBPyConnection, name: str, dataset: pads.Dataset | pa.Table, temporary: bool = True
) -> None:
    """Copy a lake dataset into the DuckDB temp table ``name`` (one full scan, no filter); ``temporary=False``:
    a table of the connection's database, which its cursors (other threads' connections) see too.

    Why not query the Arrow dataset directly: Delta merges write Parquet files whose Arrow schema says
    ``string_view``; pyarrow (25) has no kernel comparing ``string`` with ``string_view``, so every filter
    DuckDB pushes into the scan on a string column (``symbol = ?``, join filters) fails once a table has
    been merged into.  A plain scan works, and the build then runs on DuckDB's own columnar tables (also
    a pinned snapshot: the build reads each input exactly once).  ``name`` comes from code, never users.
    """
    src = f"__src_{name}"
    con.register(src, dataset)
    try:
        kind = "TEMP TABLE" if temporary else "TABLE"
        con.execute(f'CREATE OR REPLACE {kind} "{name}" AS SELECT * FROM "{src}"')
    finally:
        con.unregister(src)


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether the DuckDB relation ``table`` has ``column`` (an input written under an older contract may not)."""
    names = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
    return column in names


def register_previous(con: duckdb.DuckDBPyConnection, lake: Lake, table: str, version: int) -> bool:
    """Load ``table`` as of ``version`` as ``prev_<table>``; False if that version is gone (vacuumed).

    Opens the Delta log directly so that the lineage of the build (``lake.versions_read``) keeps the
    current version."""
    try:  # the log may still list a version whose files were vacuumed: that shows only when reading
        materialize(con, f"prev_{table}", lake.delta(table, version).to_pyarrow_dataset())
    except (QuantlakeError, OSError, duckdb.Error):
        return False
    return True


@dataclass(frozen=True)
class SymbolChanges:
    first_date: dict[str, dt.date]
    removed: bool


def changed_symbols(con: duckdb.DuckDBPyConnection) -> SymbolChanges:
    """Symbols whose bars differ between ``prev_equity_bars`` and ``equity_bars``."""
    rows = sql_runner.run(con, "incremental/changed_bars").to_pylist()
    return SymbolChanges(
        {r["symbol"]: r["first_date"] for r in rows}, any(bool(r["has_removed"]) for r in rows)
    )


def _files_subset(dataset: pads.Dataset, paths: set[str]) -> pads.Dataset | pa.Table:
    frags = [f for f in dataset.get_fragments() if f.path in paths]
    if not frags:
        return dataset.schema.empty_table()
    return pads.FileSystemDataset(frags, dataset.schema, dataset.format, dataset.filesystem)


def changed_bars_between(lake: Lake, then: int, now: int) -> SymbolChanges | None:
    """:func:`changed_symbols` between ``equity_bars`` versions ``then`` and ``now``, reading only the data
    files one version has and the other does not (None when version ``then`` is no longer readable).

    Equal to the diff of the whole versions: a file in both holds the same rows in both, and keys are unique
    within a version, so rows of shared files cancel out of both EXCEPTs of ``changed_bars.sql``.  A daily
    append or a revision reads the new and the replaced files only, not the table's whole history."""
    try:  # the log may still list a version whose files were vacuumed: that shows only when reading
        con = duckdb.connect()
        try:
            if lake.is_local:  # DuckDB's Parquet reader streams the EXCEPTs (a copy held ~1.4 GB for 2.5M bars)
                old_t, new_t = lake.delta("equity_bars", then), lake.delta("equity_bars", now)
                old_files, new_files = set(old_t.file_uris()), set(new_t.file_uris())
                register_view(con, "equity_bars", new_t, urls=sorted(new_files - old_files))
                register_view(con, "prev_equity_bars", old_t, urls=sorted(old_files - new_files))
            else:
                old = lake.delta("equity_bars", then).to_pyarrow_dataset()
                new = lake.delta("equity_bars", now).to_pyarrow_dataset()
                old_paths = {f.path for f in old.get_fragments()}
                new_paths = {f.path for f in new.get_fragments()}
                materialize(con, "equity_bars", _files_subset(new, new_paths - old_paths))
                materialize(con, "prev_equity_bars", _files_subset(old, old_paths - new_paths))
            return changed_symbols(con)
        finally:
            con.close()
    except (QuantlakeError, OSError, duckdb.Error):
        return None


@dataclass(frozen=True)
class DateChange:
    first_date: dt.date | None
    removed: bool = False


def changed_quotes(con: duckdb.DuckDBPyConnection) -> DateChange:
    row = sql_runner.run(con, "incremental/changed_quotes").to_pylist()[0]
    return DateChange(row["first_date"], bool(row["has_removed"]))


def changed_rates(con: duckdb.DuckDBPyConnection) -> DateChange:
    row = sql_runner.run(con, "incremental/changed_rates").to_pylist()[0]
    return DateChange(row["first_date"])


def affected_table(first_dates: dict[str, dt.date]) -> pa.Table:
    """The ``affected`` relation (symbol, first_date) the scope SQL reads."""
    symbols = sorted(first_dates)
    return pa.table(
        {
            "symbol": pa.array(symbols, type=pa.string()),
            "first_date": pa.array([first_dates[s] for s in symbols], type=pa.date32()),
        }
    )


# ----------------------------------------------------------------------------------------------- predicates
def _sql_date(d: dt.date) -> str:
    if not isinstance(d, dt.date):
        raise TypeError(f"expected a date, got {d!r}")
    return f"'{d.isoformat()}'"


def _sql_symbol(s: str) -> str:
    # validate_symbol's alphabet (A-Z 0-9 . ^ = -) has no quote: the literal cannot escape
    if validate_symbol(s) != s:
        raise ValueError(f"symbol {s!r} is not in canonical form")
    return f"'{s}'"


def rows_predicate(scope: pa.Table, symbol_col: str = "symbol", date_col: str = "date") -> str:
    """Delta predicate matching exactly the rows an incremental build recomputed.

    ``scope`` has one row per recomputed symbol with ``write_from`` (NULL: the whole symbol).  Delta's
    writer takes the predicate as SQL text (it has no bound parameters), so it is assembled here from
    validated symbols and ISO dates only."""
    by_start: dict[dt.date | None, list[str]] = {}
    for row in scope.select(["symbol", "write_from"]).to_pylist():
        by_start.setdefault(row["write_from"], []).append(_sql_symbol(row["symbol"]))
    parts = []
    for start, syms in sorted(by_start.items(), key=lambda kv: (kv[0] is not None, kv[0] or dt.date.min)):
        cond = f"{symbol_col} IN ({', '.join(sorted(syms))})"
        parts.append(cond if start is None else f"({cond} AND {date_col} >= {_sql_date(start)})")
    if not parts:
        raise ValueError("empty scope: nothing to replace")
    return " OR ".join(parts)


def since_predicate(date_col: str, start: dt.date) -> str:
    """Delta predicate: every row from ``start`` on."""
    return f"{date_col} >= {_sql_date(start)}"
