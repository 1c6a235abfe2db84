"""The versioned lakehouse: Delta Lake tables under ``$QUANTLAKE_HOME/lake`` (DESIGN §4).

Every write is one atomic Delta commit (Parquet files first, then one log entry), so a killed writer leaves
the table at its previous version.  Writes merge by key: rows whose key exists with identical values are
skipped, changed rows are updated, new rows inserted; a batch with nothing new does not commit at all.

Readers can open any table as of a version; :meth:`Lake.connect` returns a DuckDB connection with one view
per table (optionally pinned to versions), **read-only** unless asked otherwise (:mod:`quantlake.lake_sql`),
and remembers which versions it exposed, for lineage.

The lake is a local folder or ``s3://bucket/prefix`` (:mod:`quantlake.lake_storage`); the same code serves
both.  Concurrency: the first commit of a table is put-if-absent (two creators: one wins, the other merges
into what it created), and a merge that loses a race to another writer is re-planned on the new version,
so no commit is lost and each writer reports the version *it* committed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any,
    TypeAlias,
)

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from quantlake.errors import LakeError, TableNotFoundError, UserInputError, VersionNotFoundError
from quantlake.lake_errors import native_stderr, plain_error, write_error
from quantlake.lake_files import write_version
from quantlake.lake_sql import check_read_only, open_session, query_error, vacuumed_error
from quantlake.lake_sql import q as _q
from quantlake.lake_storage import LakeStore, configured_lake_uri
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


MERGE_ATTEMPTS = 20  # a merge that loses a race is re-planned on the new version this many times


class Lake:
    """A lake of Delta tables (a local folder or ``s3://bucket/prefix``).  Cheap to construct; holds no
    open handles, pickles (Dask workers open the same lake from its URI)."""

    def __init__(self, root: Path | str | None = None, pins: Mapping[str, int] | None = None) -> None:
        self.store = LakeStore.parse(root if root is not None else configured_lake_uri())
        # table -> version every read through this Lake uses unless a version is given (reproducing a run)
        self.pins: dict[str, int] = dict(pins or {})
        # table -> version exposed to a reader through this Lake (lineage for tracking)
        self.versions_read: dict[str, int] = {}

    # ------------------------------------------------------------------ discovery
    @property
    def uri(self) -> str:
        """Where the lake is: an absolute folder path or ``s3://bucket/prefix`` (named in lineage tags)."""
        return self.store.uri

    @property
    def root(self) -> Path:
        """The lake's folder (local lakes only; an S3 lake raises :class:`LakeError` — use :attr:`uri`)."""
        return self.store.local_root

    @property
    def is_local(self) -> bool:
        return not self.store.is_s3

    def path(self, name: str) -> Path:
        return self.root / self._checked(name)

    @staticmethod
    def _checked(name: str) -> str:
        if not TABLE_NAME_RE.fullmatch(name):
            raise UserInputError(f"invalid table name {name!r}")
        return name

    def table_uri(self, name: str) -> str:
        return self.store.table_uri(self._checked(name))

    def exists(self, name: str) -> bool:
        uri = self.table_uri(name)
        if self.is_local:
            return Path(uri).is_dir() and DeltaTable.is_deltatable(uri)
        try:
            return bool(DeltaTable.is_deltatable(uri, storage_options=self.store.storage_options()))
        except Exception as exc:  # unreachable endpoint, bad credentials
            raise write_error(exc, self.uri, what=f"cannot reach the lake at {self.uri}") from None

    def tables(self) -> list[str]:
        return self.store.table_names()

    def _open(self, name: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(self.table_uri(name), version=version, storage_options=self.store.storage_options())

    def delta(self, name: str, version: int | None = None) -> DeltaTable:
        if version is None:
            version = self.pins.get(name)
        if not self.exists(name):
            raise TableNotFoundError(
                f"table {name!r} does not exist in {self.uri} (ingest data first, e.g. `quantlake ingest equity`)"
            )
        try:
            return self._open(name, version)
        except DeltaTableNotFound as exc:  # pragma: no cover - raced deletion
            raise TableNotFoundError(f"table {name!r} does not exist: {exc}") from None
        except Exception as exc:
            if version is not None:
                latest = self._open(name).version()
                raise VersionNotFoundError(
                    f"table {name!r} has no version {version} (versions 0..{latest})"
                ) from None
            raise LakeError(f"cannot open table {name!r}: {exc}") from exc

    def version(self, name: str) -> int:
        """Latest committed version (ignores pins)."""
        return self._open(name).version() if self.exists(name) else self.delta(name).version()

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
        table = self.delta(name, version)
        self.versions_read[name] = table.version()
        cols = ", ".join(_q(c) for c in columns) if columns else "*"
        present = set(pa.schema(table.schema()).names)  # a version older than a key column lacks it
        order = ", ".join(_q(k) for k in spec.keys if k in present)
        sql = f"SELECT {cols} FROM t" + (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
        try:
            with open_session({"t": table}, self.store) as con:
                return con.execute(sql, params or []).df()
        except duckdb.IOException as exc:  # the version's files are gone: a vacuum removed them
            raise vacuumed_error(exc, name, table.version(), self.version(name)) from None

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

    def snapshots(self, as_of: Mapping[str, int] | None = None) -> dict[str, DeltaTable]:
        """Every table at its latest version (or pin, or ``as_of[name]``), recorded in ``versions_read``."""
        as_of = dict(as_of or {})
        names = self.tables()
        unknown = set(as_of) - set(names)
        if unknown:
            raise TableNotFoundError(f"--as-of names unknown table(s): {', '.join(sorted(unknown))}")
        out = {}
        for name in names:
            table = self.delta(name, as_of.get(name))
            self.versions_read[name] = table.version()
            out[name] = table
        return out

    def connect(
        self,
        as_of: Mapping[str, int] | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
        *,
        writable: bool = False,
    ) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per lake table, each at its latest version or ``as_of[name]``.

        Read-only (the session can read those snapshots' files and nothing else; see
        :mod:`quantlake.lake_sql`) unless ``writable=True`` is asked for explicitly.
        """
        snaps = self.snapshots(as_of)
        con = open_session(snaps, self.store, writable=writable, con=con)
        from quantlake.bars import register_views  # derived views over the tables (all_bars)

        register_views(con, snaps)
        return con

    def query(
        self, sql: str, params: list[Any] | None = None, as_of: Mapping[str, int] | None = None
    ) -> pd.DataFrame:
        """Run read-only SQL (queries only; anything else is refused with one line) over the lake's views."""
        check_read_only(sql)
        con = self.connect(as_of)
        try:
            return con.execute(sql, params or []).df()
        except duckdb.Error as exc:
            raise query_error(exc) from None
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

    def _check_unique(self, src: pa.Table, spec: TableSpec) -> None:
        if _strictly_sorted(src, spec.keys):  # sorted by the keys without repeats: unique (O(n), no hashing)
            return
        con = duckdb.connect()
        try:
            con.register("src", src)
            keys = ", ".join(_q(k) for k in spec.keys)
            dup = con.execute(f"SELECT {keys}, count(*) AS n FROM src GROUP BY ALL HAVING n > 1 LIMIT 3").fetchall()
        finally:
            con.close()
        if dup:
            raise LakeError(f"{spec.name}: batch has duplicate keys {spec.keys}, e.g. {dup[0][:-1]}")

    @staticmethod
    def _description(spec: TableSpec) -> str:
        return json.dumps({"keys": list(spec.keys), "date_column": spec.date_column, "volatile": list(spec.volatile)})

    def _prepare_folder(self, name: str) -> None:
        if self.is_local:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise write_error(exc, self.uri, table=name) from None

    def _create(self, name: str, src: pa.Table, spec: TableSpec, props: dict[str, str]) -> CommitResult | None:
        """Create ``name`` holding ``src`` as version 0, or return None when another writer created it first.

        The first commit is put-if-absent with no retry: of two creators exactly one writes version 0 (the
        other's commit fails instead of being rebased into a second copy of every row, issue 19.2)."""
        self._prepare_folder(name)
        with native_stderr() as native:
            try:
                write_deltalake(
                    self.table_uri(name),
                    src,
                    mode="error",
                    description=self._description(spec),
                    commit_properties=CommitProperties(custom_metadata=props, max_commit_retries=0),
                    storage_options=self.store.storage_options(),
                )
            except Exception as exc:
                if self.exists(name):
                    return None  # lost the creation race: merge into what the winner created
                raise plain_error(exc, native, self.uri, table=name, before=None) from None
        return CommitResult(name, None, 0, src.num_rows, 0, 0)

    def merge(self, name: str, data: DataLike, spec: TableSpec | None = None, note: str = "") -> CommitResult:
        """Merge ``data`` into ``name`` by key in one atomic commit (no commit if nothing changed).

        Safe against concurrent writers: a creation race leaves one table (the loser merges into it) and a
        merge that loses a commit race is re-planned against the new version; the result names the version
        this call committed."""
        spec = spec or self.spec(name)
        src = self._conform(data, spec)
        self._check_unique(src, spec)
        props = {"quantlake.operation": "merge", "quantlake.note": note[:500]}
        if not self.exists(name):
            if src.num_rows == 0:
                return CommitResult(name, None, None, 0, 0, 0)
            created = self._create(name, src, spec, props)
            if created is not None:
                return created
        for _attempt in range(MERGE_ATTEMPTS):
            try:
                return self._merge_once(name, src, spec, props)
            except CommitFailedError:
                continue  # another writer committed first: re-plan against its version
        raise LakeError(f"merge into {name!r} failed: {MERGE_ATTEMPTS} commit races lost in a row; nothing written")

    def _merge_once(self, name: str, src: pa.Table, spec: TableSpec, props: dict[str, str]) -> CommitResult:
        target = self._open(name)  # always the latest, whatever the pins
        before = target.version()
        con = open_session({"tgt": target}, self.store)
        try:
            con.register("src", src)
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
        finally:
            con.close()
        n_new = int(pa.compute.sum(delta_rows.column("__is_new")).as_py() or 0)
        n_upd = delta_rows.num_rows - n_new
        if delta_rows.num_rows == 0:
            return CommitResult(name, before, before, 0, 0, src.num_rows)
        changes = delta_rows.drop_columns(["__is_new"])
        predicate = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in spec.keys)
        with native_stderr() as native:
            try:
                (
                    target.merge(
                        changes,
                        predicate=predicate,
                        source_alias="s",
                        target_alias="t",
                        merge_schema=bool(new_cols),
                        commit_properties=CommitProperties(custom_metadata=props, max_commit_retries=0),
                    )
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                )
            except CommitFailedError:
                raise
            except Exception as exc:
                raise plain_error(exc, native, self.uri, table=name, before=before) from None
        # the version this merge committed (not the latest: another writer may have committed since)
        return CommitResult(name, before, target.version(), n_new, n_upd, src.num_rows - delta_rows.num_rows)

    def replace(
        self, name: str, data: DataLike, spec: TableSpec, predicate: str | None = None, note: str = ""
    ) -> CommitResult:
        """Overwrite the table (or only the rows matching ``predicate``) in one atomic commit.

        Used by derived (feature) tables that are recomputed wholesale; the old rows stay readable as of the
        previous version.
        """
        return self.replace_parts(name, [data], spec, predicate, note)

    def replace_parts(
        self,
        name: str,
        parts: Iterable[DataLike],
        spec: TableSpec,
        predicate: str | None = None,
        note: str = "",
    ) -> CommitResult:
        """:meth:`replace` with the new rows given as consecutive parts, streamed one at a time (the producer
        never holds the whole table).  Each part is conformed and checked for duplicate keys; across parts,
        the first key column's values must be disjoint (e.g. chunks of symbols), which keeps the keys unique
        without holding every key.  Any failure, in a check or in producing a part, aborts the write before
        its commit: the table stays at its previous version.

        Without a predicate each part becomes its own Parquet file as it arrives and one commit adds them all
        (:mod:`quantlake.lake_files`: memory stays at about one part); with one, delta-rs rewrites the
        matching rows (incremental feature builds: small)."""
        failure: list[BaseException] = []
        rows = [0]
        first_key = spec.keys[0] if spec.keys else None

        def checked() -> Iterator[pa.Table]:
            seen: set[Any] = set()
            try:
                for part in parts:
                    src = self._conform(part, spec)
                    self._check_unique(src, spec)
                    if first_key is not None and src.num_rows:
                        values = set(pc.unique(src.column(first_key)).to_pylist())
                        if values & seen:
                            raise LakeError(f"{spec.name}: parts share {first_key} values, e.g. {min(values & seen)!r}")
                        seen |= values
                    rows[0] += src.num_rows
                    yield src
            except BaseException as exc:  # re-raised as itself below, not as the writer's wrapped error
                failure.append(exc)
                raise

        props = CommitProperties(custom_metadata={"quantlake.operation": "replace", "quantlake.note": note[:500]})
        target: DeltaTable | str
        if self.exists(name):
            target = self._open(name)
            before: int | None = target.version()
        else:
            self._prepare_folder(name)
            target, before = self.table_uri(name), None
        with native_stderr() as native:
            try:
                if predicate is None:
                    existing = target if isinstance(target, DeltaTable) else None
                    write_version(self.store, name, checked(), spec.schema, existing, props, self._description(spec))
                else:
                    write_deltalake(
                        target,
                        pa.RecordBatchReader.from_batches(spec.schema, (b for t in checked() for b in t.to_batches())),
                        mode="overwrite",
                        predicate=predicate,
                        description=self._description(spec),
                        commit_properties=props,
                        writer_properties=derived_writer_properties(spec.schema),
                        storage_options=None if isinstance(target, DeltaTable) else self.store.storage_options(),
                    )
            except Exception as exc:
                if failure:
                    raise failure[0] from None
                raise plain_error(exc, native, self.uri, table=name, before=before) from None
        if failure:  # pragma: no cover - the writer swallowed the stream's error: never commit silently
            raise failure[0]
        version = self.version(name)
        return CommitResult(name, before, version, rows[0], 0, 0)

    def vacuum(
        self, name: str, retention_hours: int = 168, staging_older_than: dt.timedelta = dt.timedelta(minutes=30)
    ) -> list[str]:
        """Delete files no version within ``retention_hours`` needs, orphans of killed writes (a full vacuum:
        unreferenced files older than the retention), and the ``part-*.parquet#N`` staging files killed
        writers left (untouched for ``staging_older_than``)."""
        try:
            removed = list(
                self.delta(name).vacuum(
                    retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False, full=True
                )
            )
            return removed + self.store.remove_staging_leftovers(name, staging_older_than)
        except (LakeError, UserInputError):
            raise
        except Exception as exc:
            raise write_error(exc, self.uri, table=name, what=f"vacuum of {name!r} failed") from None

    def optimize(self, name: str) -> dict[str, Any]:
        """Compact small files into larger ones (a new version; data unchanged)."""
        return dict(self.delta(name).optimize.compact())


def _strictly_sorted(table: pa.Table, keys: Sequence[str]) -> bool:
    """Whether the rows are in strictly increasing order of ``keys`` (lexicographic; keys hold no NULLs)."""
    n = table.num_rows
    if n < 2 or not keys:
        return bool(keys)
    less: Any = None
    equal: Any = None
    for k in keys:
        col = table.column(k)
        a, b = col.slice(0, n - 1), col.slice(1)
        k_less, k_equal = pc.less(a, b), pc.equal(a, b)
        less = k_less if less is None else pc.or_(less, pc.and_(equal, k_less))
        equal = k_equal if equal is None else pc.and_(equal, k_equal)
    return pc.all(less).as_py() is True


def derived_writer_properties(schema: pa.Schema) -> WriterProperties:
    """Parquet settings of a derived (feature) table: dictionary encoding only for string columns.

    By default the writer tries a dictionary for every column and falls back once it overflows: on float
    features (nearly all values distinct) that cost ~4x the CPU of the whole write and made larger files
    (measured on 509k rows x 45 columns of features_technical: 2.0 s -> 0.5 s CPU, 185 -> 165 MB)."""
    strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return WriterProperties(
        compression="SNAPPY",
        default_column_properties=ColumnProperties(dictionary_enabled=False),
        column_properties={name: ColumnProperties(dictionary_enabled=True) for name in strings},
    )


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


def connect(
    as_of: Mapping[str, int] | None = None, root: Path | str | None = None, *, writable: bool = False
) -> duckdb.DuckDBPyConnection:
    """DuckDB connection with a view per lake table: ``quantlake.lake.connect().sql("from equity_bars")``.

    Read-only: the session reads the tables' current files and nothing else (no COPY/ATTACH/INSTALL/LOAD,
    no other file).  ``writable=True`` gives a plain DuckDB session over the same views (e.g. to COPY results
    out); ask for it only when you need it."""
    return Lake(root).connect(as_of, writable=writable)


def parse_as_of(items: Iterable[str]) -> dict[str, int]:
    """Parse ``table=version`` pairs from the CLI."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, ver = item.partition("=")
        if not sep or not ver.strip().isdigit():
            raise UserInputError(f"--as-of expects TABLE=VERSION (e.g. equity_bars=3), got {item!r}")
        out[name.strip()] = int(ver)
    return out
