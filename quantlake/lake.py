"""The versioned lakehouse: Delta Lake tables under ``$QUANTLAKE_HOME/lake`` (DESIGN §4).

Every write is one atomic Delta commit (Parquet files first, then one log entry), so a killed writer leaves
the table at its previous version.  Writes merge by key: rows whose key exists with identical values are
skipped, changed rows are updated, new rows inserted; a batch with nothing new does not commit at all.

Readers can open any table as of a version; :meth:`Lake.connect` returns a DuckDB connection with one view
per table (optionally pinned to versions) and remembers which versions it exposed, for lineage.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any,
    TypeAlias,
)

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from quantlake.config import paths
from quantlake.errors import LakeError, QueryError, TableNotFoundError, UserInputError, VersionNotFoundError
from quantlake.tables import TABLE_NAME_RE, TableSpec, get_spec, known_specs

DataLike: TypeAlias = pd.DataFrame | pa.Table


@dataclass(frozen=True)
class CommitResult:
    """What one write did.  ``version`` is the table version after the write (unchanged if no commit)."""

    table: str
    version_before: int | None
    version: int | None
    inserted: int
    updated: int
    unchanged: int

    @property
    def committed(self) -> bool:
        return self.version != self.version_before

    @property
    def written(self) -> int:
        return self.inserted + self.updated


@dataclass(frozen=True)
class TableInfo:
    name: str
    version: int
    rows: int
    min_date: dt.date | None
    max_date: dt.date | None
    keys: tuple[str, ...]


def _q(ident: str) -> str:
    """Quote an SQL identifier (names come from table specs, never from user input)."""
    return '"' + ident.replace('"', '""') + '"'


class Lake:
    """A directory of Delta tables.  Cheap to construct; holds no open handles."""

    def __init__(self, root: Path | str | None = None, pins: Mapping[str, int] | None = None) -> None:
        self.root = Path(root) if root is not None else paths().lake
        # table -> version every read through this Lake uses unless a version is given (reproducing a run)
        self.pins: dict[str, int] = dict(pins or {})
        # table -> version exposed to a reader through this Lake (lineage for tracking)
        self.versions_read: dict[str, int] = {}

    # ------------------------------------------------------------------ discovery
    def path(self, name: str) -> Path:
        if not TABLE_NAME_RE.fullmatch(name):
            raise UserInputError(f"invalid table name {name!r}")
        return self.root / name

    def exists(self, name: str) -> bool:
        p = self.path(name)
        return p.is_dir() and DeltaTable.is_deltatable(str(p))

    def tables(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and DeltaTable.is_deltatable(str(p)))

    def delta(self, name: str, version: int | None = None) -> DeltaTable:
        p = self.path(name)
        if version is None:
            version = self.pins.get(name)
        if not self.exists(name):
            raise TableNotFoundError(
                f"table {name!r} does not exist in {self.root} (ingest data first, e.g. `quantlake ingest equity`)"
            )
        try:
            return DeltaTable(str(p), version=version)
        except DeltaTableNotFound as exc:  # pragma: no cover - raced deletion
            raise TableNotFoundError(f"table {name!r} does not exist: {exc}") from None
        except Exception as exc:
            if version is not None:
                latest = DeltaTable(str(p)).version()
                raise VersionNotFoundError(
                    f"table {name!r} has no version {version} (versions 0..{latest})"
                ) from None
            raise LakeError(f"cannot open table {name!r}: {exc}") from exc

    def version(self, name: str) -> int:
        """Latest committed version (ignores pins)."""
        return DeltaTable(str(self.path(name))).version() if self.exists(name) else self.delta(name).version()

    def spec(self, name: str) -> TableSpec:
        """The table's contract: from the code registry, else from the key stored with the table."""
        specs = known_specs()
        if name in specs:
            return specs[name]
        meta = self.delta(name).metadata()
        try:
            info = json.loads(meta.description or "{}")
        except json.JSONDecodeError:
            info = {}
        if "keys" not in info:
            return get_spec(name)  # raises a clear error
        schema = pa.schema(self.delta(name).schema())
        return TableSpec(
            name=name,
            keys=tuple(info["keys"]),
            schema=schema,
            date_column=info.get("date_column"),
            volatile=tuple(info.get("volatile", ())),
        )

    # ------------------------------------------------------------------ reading
    def dataset(self, name: str, version: int | None = None) -> pads.Dataset:
        table = self.delta(name, version)
        self.versions_read[name] = table.version()
        return table.to_pyarrow_dataset()

    def arrow(self, name: str, version: int | None = None, columns: list[str] | None = None) -> pa.Table:
        return self.dataset(name, version).to_table(columns=columns)

    def read(
        self,
        name: str,
        version: int | None = None,
        columns: list[str] | None = None,
        where: str | None = None,
        params: list[Any] | None = None,
    ) -> pd.DataFrame:
        """Read a table (optionally as of ``version``) into pandas, sorted by key.

        ``where`` is an SQL predicate over the table's columns with ``?`` placeholders bound to ``params``.
        """
        spec = self.spec(name)
        con = duckdb.connect()
        try:
            table = self.delta(name, version)
            self.versions_read[name] = table.version()
            _register_view(con, "t", table)
            cols = ", ".join(_q(c) for c in columns) if columns else "*"
            order = ", ".join(_q(k) for k in spec.keys)
            sql = f"SELECT {cols} FROM t" + (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
            return con.execute(sql, params or []).df()
        finally:
            con.close()

    def history(self, name: str) -> list[dict[str, Any]]:
        return list(self.delta(name).history())

    def info(self) -> list[TableInfo]:
        out = []
        for name in self.tables():
            spec = self.spec(name)
            ds = self.dataset(name)
            rows = ds.count_rows()
            lo = hi = None
            if spec.date_column and rows:
                col = ds.to_table(columns=[spec.date_column]).column(0)
                lo = pa.compute.min(col).as_py()
                hi = pa.compute.max(col).as_py()
            out.append(TableInfo(name, self.versions_read[name], rows, lo, hi, spec.keys))
        return out

    def connect(
        self, as_of: Mapping[str, int] | None = None, con: duckdb.DuckDBPyConnection | None = None
    ) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per lake table, each at its latest version or ``as_of[name]``."""
        as_of = dict(as_of or {})
        unknown = set(as_of) - set(self.tables())
        if unknown:
            raise TableNotFoundError(f"--as-of names unknown table(s): {', '.join(sorted(unknown))}")
        con = con or duckdb.connect()
        for name in self.tables():
            table = self.delta(name, as_of.get(name))
            self.versions_read[name] = table.version()
            _register_view(con, name, table)
        return con

    def query(
        self, sql: str, params: list[Any] | None = None, as_of: Mapping[str, int] | None = None
    ) -> pd.DataFrame:
        con = self.connect(as_of)
        try:
            return con.execute(sql, params or []).df()
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()

    # ------------------------------------------------------------------ writing
    def _conform(self, data: DataLike, spec: TableSpec) -> pa.Table:
        table = pa.Table.from_pandas(data, preserve_index=False) if isinstance(data, pd.DataFrame) else data
        extra = set(table.column_names) - set(spec.schema.names)
        if extra:
            raise LakeError(f"{spec.name}: unexpected column(s) {sorted(extra)}")
        missing_keys = [k for k in spec.keys if k not in table.column_names]
        if missing_keys:
            raise LakeError(f"{spec.name}: key column(s) missing: {missing_keys}")
        now = pa.scalar(dt.datetime.now(dt.UTC), type=pa.timestamp("us", tz="UTC"))
        arrays = []
        for field in spec.schema:
            if field.name in table.column_names:
                col = table.column(field.name)
                try:
                    arrays.append(col.cast(field.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise LakeError(f"{spec.name}.{field.name}: cannot store as {field.type}: {exc}") from None
            elif field.name in spec.volatile and pa.types.is_timestamp(field.type):
                arrays.append(pa.array([now.as_py()] * table.num_rows, type=field.type))
            else:
                arrays.append(pa.nulls(table.num_rows, type=field.type))
        out = pa.Table.from_arrays(arrays, schema=spec.schema)
        for k in spec.keys:
            if out.column(k).null_count:
                raise LakeError(f"{spec.name}: key column {k!r} has null values")
        return out

    def _check_unique(self, con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
        keys = ", ".join(_q(k) for k in spec.keys)
        dup = con.execute(f"SELECT {keys}, count(*) AS n FROM src GROUP BY ALL HAVING n > 1 LIMIT 3").fetchall()
        if dup:
            raise LakeError(f"{spec.name}: batch has duplicate keys {spec.keys}, e.g. {dup[0][:-1]}")

    def merge(self, name: str, data: DataLike, spec: TableSpec | None = None, note: str = "") -> CommitResult:
        """Merge ``data`` into ``name`` by key in one atomic commit (no commit if nothing changed)."""
        spec = spec or self.spec(name)
        src = self._conform(data, spec)
        props = CommitProperties(custom_metadata={"quantlake.operation": "merge", "quantlake.note": note[:500]})
        con = duckdb.connect()
        try:
            con.register("src", src)
            self._check_unique(con, spec)
            if not self.exists(name):
                if src.num_rows == 0:
                    return CommitResult(name, None, None, 0, 0, 0)
                self.path(name).parent.mkdir(parents=True, exist_ok=True)
                write_deltalake(
                    str(self.path(name)),
                    src,
                    mode="error",
                    description=json.dumps(
                        {"keys": list(spec.keys), "date_column": spec.date_column, "volatile": list(spec.volatile)}
                    ),
                    commit_properties=props,
                )
                return CommitResult(name, None, 0, src.num_rows, 0, 0)

            target = DeltaTable(str(self.path(name)))  # always the latest, whatever the pins
            before = target.version()
            _register_view(con, "tgt", target)
            tgt_cols = set(pa.schema(target.schema()).names)
            on = " AND ".join(f"s.{_q(k)} = t.{_q(k)}" for k in spec.keys)
            cmp_cols = [c for c in spec.value_columns if c in tgt_cols]
            new_cols = [c for c in spec.value_columns if c not in tgt_cols]
            changed = " OR ".join(f"s.{_q(c)} IS DISTINCT FROM t.{_q(c)}" for c in cmp_cols) or "FALSE"
            if new_cols:  # schema evolved: a row whose new column has a value counts as changed
                changed += " OR " + " OR ".join(f"s.{_q(c)} IS NOT NULL" for c in new_cols)
            k0 = _q(spec.keys[0])
            delta_rows = con.execute(
                f"SELECT s.*, t.{k0} IS NULL AS __is_new FROM src s LEFT JOIN tgt t ON {on} "
                f"WHERE t.{k0} IS NULL OR {changed}"
            ).arrow()
            if isinstance(delta_rows, pa.RecordBatchReader):  # duckdb>=1.5 may return a reader
                delta_rows = delta_rows.read_all()
            n_new = int(pa.compute.sum(delta_rows.column("__is_new")).as_py() or 0)
            n_upd = delta_rows.num_rows - n_new
            if delta_rows.num_rows == 0:
                return CommitResult(name, before, before, 0, 0, src.num_rows)
            changes = delta_rows.drop_columns(["__is_new"])
            predicate = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in spec.keys)
            try:
                (
                    target.merge(
                        changes,
                        predicate=predicate,
                        source_alias="s",
                        target_alias="t",
                        merge_schema=bool(new_cols),
                        commit_properties=props,
                    )
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                )
            except Exception as exc:
                raise LakeError(f"merge into {name!r} failed; table left at version {before}: {exc}") from exc
            return CommitResult(name, before, self.version(name), n_new, n_upd, src.num_rows - delta_rows.num_rows)
        finally:
            con.close()

    def replace(
        self, name: str, data: DataLike, spec: TableSpec, predicate: str | None = None, note: str = ""
    ) -> CommitResult:
        """Overwrite the table (or only the rows matching ``predicate``) in one atomic commit.

        Used by derived (feature) tables that are recomputed wholesale; the old rows stay readable as of the
        previous version.
        """
        src = self._conform(data, spec)
        props = CommitProperties(custom_metadata={"quantlake.operation": "replace", "quantlake.note": note[:500]})
        before = self.version(name) if self.exists(name) else None
        self.path(name).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        try:
            con.register("src", src)
            self._check_unique(con, spec)
        finally:
            con.close()
        try:
            write_deltalake(
                str(self.path(name)),
                src,
                mode="overwrite",
                predicate=predicate,
                schema_mode="overwrite" if predicate is None else None,
                description=json.dumps(
                    {"keys": list(spec.keys), "date_column": spec.date_column, "volatile": list(spec.volatile)}
                ),
                commit_properties=props,
            )
        except Exception as exc:
            raise LakeError(f"replace of {name!r} failed; table left at version {before}: {exc}") from exc
        return CommitResult(name, before, self.version(name), src.num_rows, 0, 0)

    def vacuum(self, name: str, retention_hours: int = 168) -> list[str]:
        """Delete files no version within ``retention_hours`` needs (and orphans of killed writes)."""
        return list(
            self.delta(name).vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
        )

    def optimize(self, name: str) -> dict[str, Any]:
        """Compact small files into larger ones (a new version; data unchanged)."""
        return dict(self.delta(name).optimize.compact())


def symbol_date_filter(
    symbols: Sequence[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *extra: str,
) -> tuple[str | None, list[Any]]:
    """``(where, params)`` for :meth:`Lake.read` / :meth:`Lake.query`: rows of ``symbols`` (None or empty: every
    symbol) with ``start <= date <= end`` (either bound optional), AND-ed with the ``extra`` SQL predicates.
    Values are bound as parameters, never formatted into the SQL; ``where`` is None when nothing filters."""
    clauses = list(extra)
    params: list[Any] = []
    if symbols:
        clauses.append("symbol IN (" + ", ".join("?" for _ in symbols) + ")")
        params += list(symbols)
    if start is not None:
        clauses.append("date >= ?")
        params.append(start)
    if end is not None:
        clauses.append("date <= ?")
        params.append(end)
    return " AND ".join(clauses) or None, params


def _register_view(con: duckdb.DuckDBPyConnection, view: str, table: DeltaTable) -> None:
    """Make ``view`` in ``con`` read the Parquet files of ``table``'s snapshot with DuckDB's own reader.

    Not through pyarrow datasets: deltalake >= 1.4 writes a merge's files with ``string_view`` columns while
    ``write_deltalake`` writes ``string`` (delta-io/delta-rs#4579), and pyarrow fails filters that DuckDB
    pushes into such a mixed dataset ("no kernel matching input types (string, string_view)").  DuckDB's
    Parquet reader sees both as VARCHAR, prunes row groups by statistics itself, and ``union_by_name`` reads
    files written before a column was added (schema evolution) with NULLs.  Columns come in the table's
    order; a snapshot with no files is an empty relation of the table's schema.
    """
    schema = pa.schema(table.schema())
    files = table.file_uris()
    if not files:
        con.register(f"{view}__empty", schema.empty_table())
        con.execute(f"CREATE OR REPLACE TEMP VIEW {_q(view)} AS SELECT * FROM {_q(view + '__empty')}")
        return
    paths = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    cols = ", ".join(_q(c) for c in schema.names)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {_q(view)} AS SELECT {cols} FROM read_parquet([{paths}], union_by_name = true)"
    )


def connect(as_of: Mapping[str, int] | None = None, root: Path | str | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB connection with a view per lake table: ``quantlake.lake.connect().sql("from equity_bars")``."""
    return Lake(root).connect(as_of)


def parse_as_of(items: Iterable[str]) -> dict[str, int]:
    """Parse ``table=version`` pairs from the CLI."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, ver = item.partition("=")
        if not sep or not ver.strip().isdigit():
            raise UserInputError(f"--as-of expects TABLE=VERSION (e.g. equity_bars=3), got {item!r}")
        out[name.strip()] = int(ver)
    return out
