"""A whole new table version from Parquet files this process writes: the streaming half of
:meth:`quantlake.lake.Lake.replace_parts` without a predicate (feature tables' full builds, migrations).

Why not ``write_deltalake`` here: delta-rs 1.6 keeps most of what it was given in memory until its commit
(measured on a 500-symbol x 20-year ``features_technical`` build: ~1 GB for 900 MB of parts, whatever the
row-group and target file sizes), so the peak of a full build grew with the table.  Here each part is encoded
to its own Parquet file as it arrives (pyarrow, the same settings as :func:`derived_writer_properties`: snappy,
dictionaries only on strings), the part is dropped, and one Delta commit adds every file (and removes every
file of the previous version) through deltalake's transaction API.  Memory stays at about one part.

Atomicity is the same as delta-rs': files first, one log entry last.  A failure before the commit deletes the
files already written; a killed process leaves unreferenced files that ``quantlake lake vacuum`` removes.
The add actions carry the Delta statistics readers prune files with (row count, per-column null counts, and
min/max of numbers, dates and short strings), taken from the Parquet footers just written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from quantlake.lake_storage import LakeStore

ROW_GROUP_ROWS = 131_072  # small enough that a reader asking for a few symbols skips most of a file
MAX_STAT_STRING = 32  # longer strings get no min/max (delta-rs truncates them; a truncated max is wrong)


def filesystem(store: LakeStore) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem for the lake and the lake's root path on it (``bucket/prefix`` on S3).

    S3 settings are the ones delta-rs gets (:meth:`LakeStore.storage_options`): endpoint, region and
    credentials from the standard chain, held in memory only."""
    if not store.is_s3:
        return pafs.LocalFileSystem(), store.uri
    opts = store.storage_options() or {}
    kwargs: dict[str, Any] = {"region": opts.get("AWS_REGION")}
    if "AWS_ACCESS_KEY_ID" in opts:
        kwargs |= {"access_key": opts["AWS_ACCESS_KEY_ID"], "secret_key": opts["AWS_SECRET_ACCESS_KEY"]}
        kwargs["session_token"] = opts.get("AWS_SESSION_TOKEN")
    endpoint = opts.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlparse(endpoint)
        kwargs |= {"endpoint_override": url.netloc or url.path, "scheme": url.scheme or "https"}
    return pafs.S3FileSystem(**kwargs), f"{store.bucket}/{store.prefix}".rstrip("/")


def _stat_value(value: Any, typ: pa.DataType) -> Any:
    """A Parquet min/max as Delta stats JSON wants it, or None where none is safe to give."""
    if value is None:
        return None
    if pa.types.is_floating(typ):
        return float(value) if math.isfinite(value) else None
    if pa.types.is_integer(typ):
        return int(value)
    if pa.types.is_date32(typ):
        return value.isoformat() if isinstance(value, dt.date) else None
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return value if isinstance(value, str) and len(value) <= MAX_STAT_STRING else None
    return None  # booleans, timestamps, nested: null counts only


def file_stats(meta: pq.FileMetaData, schema: pa.Schema) -> str:
    """Delta ``stats`` JSON of one Parquet file (top-level columns; the footer's row-group statistics)."""
    nulls: dict[str, int] = {}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    for field in schema:
        i = index.get(field.name)
        if i is None:
            continue
        n_null, lo, hi, complete, counted = 0, None, None, True, True
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(i).statistics
            if st is None or not st.has_null_count:
                counted = complete = False
                break
            n_null += st.null_count
            if not st.has_min_max:  # every value of the row group is NULL
                continue
            a, b = _stat_value(st.min, field.type), _stat_value(st.max, field.type)
            if a is None or b is None:
                complete = False
                continue
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
        if counted:
            nulls[field.name] = n_null
        if complete and lo is not None:
            mins[field.name], maxs[field.name] = lo, hi
    return json.dumps({"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls})


class PartFiles:
    """Parquet files written into a table folder, one per part, to be committed as one version."""

    def __init__(self, store: LakeStore, table: str, schema: pa.Schema) -> None:
        self.store = store
        self.fs, root = filesystem(store)
        self.folder = f"{root}/{table}"
        self.schema = schema
        self.actions: list[AddAction] = []
        self.paths: list[str] = []  # every file started, committed or not
        self.rows = 0
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        self._options: dict[str, Any] = {
            "compression": "snappy",
            "use_dictionary": strings,
            "write_statistics": True,
            "coerce_timestamps": "us",
            "allow_truncated_timestamps": False,
        }
        if not store.is_s3:
            self.fs.create_dir(self.folder, recursive=True)

    def write(self, part: pa.Table) -> None:
        """Encode ``part`` (already of :attr:`schema`) to a new file; nothing for an empty part."""
        if part.num_rows == 0:
            return
        name = f"part-{len(self.actions):05d}-{uuid.uuid4()}-c000.snappy.parquet"
        path = f"{self.folder}/{name}"
        self.paths.append(path)  # before writing: a file that fails half-way is deleted too
        with self.fs.open_output_stream(path) as sink:
            writer = pq.ParquetWriter(sink, self.schema, **self._options)
            try:
                writer.write_table(part, row_group_size=ROW_GROUP_ROWS)
            finally:
                writer.close()
            meta = writer.writer.metadata
        size = self.fs.get_file_info(path).size
        self.actions.append(
            AddAction(name, int(size or 0), {}, int(time.time() * 1000), True, file_stats(meta, self.schema))
        )
        self.rows += part.num_rows

    def discard(self) -> None:
        """Delete every file written (a failed build leaves nothing behind).  On S3 through boto3: pyarrow's
        delete would leave a directory marker object behind (an empty key a full vacuum then reports)."""
        paths, self.paths = self.paths, []
        self.actions.clear()
        if not paths:
            return
        if self.store.is_s3:
            bucket = self.store.bucket
            keys = [{"Key": p.removeprefix(f"{bucket}/")} for p in paths]
            try:
                for i in range(0, len(keys), 1000):
                    self.store.client().delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})
            except Exception:
                pass
            return
        for path in paths:
            with contextlib.suppress(OSError):
                self.fs.delete_file(path)


def write_version(
    store: LakeStore,
    table: str,
    parts: Iterable[pa.Table],
    schema: pa.Schema,
    existing: DeltaTable | None,
    commit_properties: CommitProperties,
    description: str,
    on_part: Callable[[pa.Table], None] | None = None,
) -> None:
    """Write ``parts`` (each conformed to ``schema``) as the new whole content of ``table`` in one commit:
    an overwrite of ``existing`` (its files are removed from the new version, its schema replaced), or
    version 0 of a new table.  Any exception, from a part or the commit, deletes the files written and
    propagates: the table stays at its previous version."""
    files = PartFiles(store, table, schema)
    try:
        for part in parts:
            if on_part is not None:
                on_part(part)
            files.write(part)
        delta_schema = DeltaSchema.from_arrow(schema)
        if existing is not None:
            existing.create_write_transaction(
                list[AddAction | RemoveAction](files.actions),
                mode="overwrite",
                schema=delta_schema,
                commit_properties=commit_properties,
            )
        else:
            create_table_with_add_actions(
                store.table_uri(table),
                delta_schema,
                files.actions,
                mode="error",
                description=description,
                storage_options=store.storage_options(),
                commit_properties=commit_properties,
            )
    except BaseException:
        files.discard()
        raise
