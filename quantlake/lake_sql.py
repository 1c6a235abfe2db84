"""DuckDB sessions over lake snapshots: read-only unless a caller asks for a writable one (issue 19.1).

A **read-only** session can read exactly the Parquet files of the snapshots it exposes, and nothing else:

* local lakes: the files are served through :class:`ReadOnlyFiles`, an fsspec filesystem registered on the
  connection that opens only those paths and only for reading (it has no write, delete, rename or mkdir);
* S3 lakes: the views read presigned GET URLs through DuckDB's httpfs (loaded from the
  ``duckdb-extension-httpfs`` pip package, nothing downloaded); DuckDB holds no credentials, and httpfs
  cannot write to an HTTP URL;
* then ``allowed_paths`` is set to those URLs, ``enable_external_access = false`` (no other file, no
  COPY/EXPORT target, no ATTACH, no INSTALL/LOAD) and ``lock_configuration = true`` (no SET can undo it).

DuckDB's own ``allowed_paths`` alone is not enough: it allows *writing* an allowed path too (``COPY ... TO
'<part file>' (USE_TMP_FILE false)`` overwrote committed data), hence the read-only filesystem in front.
Registered Python objects (pandas/Arrow frames) and in-memory scratch tables still work.

A **writable** session (``writable=True``) is a plain DuckDB connection whose views read the files directly
(S3 through an httpfs secret with the lake's credentials): for exporting with COPY, attaching other databases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
from deltalake import DeltaTable

from quantlake.errors import LakeError, QuantlakeError, QueryError, VersionNotFoundError
from quantlake.lake_storage import LakeStore

PROTOCOL = "quantlake"
_READ_STATEMENTS = {"SELECT", "EXPLAIN"}


def q(ident: str) -> str:
    """Quote an SQL identifier (names come from table specs, never from user input)."""
    return '"' + ident.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


class ReadOnlyFiles(fsspec.AbstractFileSystem):
    """``quantlake:///abs/path`` → that local file, opened read-only, and only if it is in ``allowed``.

    Hand-written because no library offers an allow-listed, read-only view of a few local files to DuckDB;
    it is a thin gate over fsspec's local filesystem.
    """

    protocol = PROTOCOL
    root_marker = "/"
    cachable = False

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__()
        from fsspec.implementations.local import LocalFileSystem

        self._allowed = {str(Path(p)) for p in allowed}
        self._local = LocalFileSystem()

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = str(path)
        if path.startswith(PROTOCOL + "://"):
            path = path[len(PROTOCOL) + 3:]
        return path or "/"

    def _check(self, path: str) -> str:
        p = str(Path(self._strip_protocol(path)))
        if p not in self._allowed:
            raise PermissionError(f"read-only lake session: {p} is not a file of the exposed snapshots")
        return p

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode not in ("r", "rb"):
            raise PermissionError(f"read-only lake session: cannot open {path} for writing")
        return self._local._open(self._check(path), "rb")

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        p = self._check(path)
        out = dict(self._local.info(p))
        out["name"] = p
        return out

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        info = self.info(path)
        return [info] if detail else [info["name"]]

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self._check(path)
        except PermissionError:
            return False
        return bool(self._local.exists(self._strip_protocol(path)))

    def modified(self, path: str) -> Any:
        return self._local.modified(self._check(path))

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise PermissionError("read-only lake session: the lake cannot be changed from a query")

    rm = rm_file = _rm = mv = cp_file = copy = mkdir = makedirs = rmdir = touch = put_file = pipe_file = _refuse


def _extension_path(name: str) -> Path:
    """A DuckDB extension shipped by its pip package (``duckdb-extension-<name>``) for this duckdb."""
    try:
        module = __import__(f"duckdb_extension_{name}")
    except ImportError:
        raise LakeError(
            f"an S3 lake needs DuckDB's {name} extension: pip install duckdb-extension-{name}=={duckdb.__version__}"
        ) from None
    path = Path(str(module.__file__)).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise LakeError(f"duckdb-extension-{name} does not match duckdb {duckdb.__version__} (no {path.name} for it)")
    return path


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load a DuckDB extension from its pip package (never downloaded at run time)."""
    con.execute(f"LOAD {literal(str(_extension_path(name)))}")


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    load_extension(con, "httpfs")


def _s3_secret(con: duckdb.DuckDBPyConnection, store: LakeStore) -> None:
    """Give a *writable* session the lake's S3 identity (an in-memory secret; never printed)."""
    from urllib.parse import urlparse

    opts = store.storage_options() or {}
    parts = [
        "TYPE s3",
        f"REGION {literal(opts.get('AWS_REGION', 'us-east-1'))}",
        f"SCOPE {literal(store.uri)}",
    ]
    if "AWS_ACCESS_KEY_ID" in opts:
        parts += [f"KEY_ID {literal(opts['AWS_ACCESS_KEY_ID'])}", f"SECRET {literal(opts['AWS_SECRET_ACCESS_KEY'])}"]
        if "AWS_SESSION_TOKEN" in opts:
            parts.append(f"SESSION_TOKEN {literal(opts['AWS_SESSION_TOKEN'])}")
    endpoint = opts.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlparse(endpoint)
        parts += [f"ENDPOINT {literal(url.netloc)}", "URL_STYLE 'path'", f"USE_SSL {str(url.scheme == 'https').lower()}"]
    con.execute(f"CREATE OR REPLACE SECRET quantlake_lake ({', '.join(parts)})")


def register_view(
    con: duckdb.DuckDBPyConnection,
    view: str,
    table: DeltaTable,
    urls: list[str] | None = None,
    temporary: bool = True,
    union_by_name: bool = True,
) -> None:
    """Make ``view`` in ``con`` read the Parquet files of ``table``'s snapshot with DuckDB's own reader.

    ``urls`` are what DuckDB opens for the snapshot's files (default: the files themselves).  Not through
    pyarrow datasets: deltalake >= 1.4 writes a merge's files with ``string_view`` columns while
    ``write_deltalake`` writes ``string`` (delta-io/delta-rs#4579), and pyarrow fails filters that DuckDB
    pushes into such a mixed dataset ("no kernel matching input types (string, string_view)").  DuckDB's
    Parquet reader sees both as VARCHAR, prunes row groups by statistics itself, and ``union_by_name`` reads
    files written before a column was added (schema evolution) with NULLs.  Columns come in the table's
    order; a snapshot with no files is an empty relation of the table's schema.  ``temporary=False``: a view
    of the connection's database, which its cursors (other threads' connections) see too.
    ``union_by_name=False`` when every file has the same columns (see :func:`same_columns`).
    """
    kind = "TEMP VIEW" if temporary else "VIEW"
    schema = pa.schema(table.schema())
    files = urls if urls is not None else table.file_uris()
    if not files:
        con.register(f"{view}__empty", schema.empty_table())
        # a registered Arrow table is the connection's own: a table the database's other connections see
        made = "TEMP VIEW" if temporary else "TABLE"
        con.execute(f"CREATE OR REPLACE {made} {q(view)} AS SELECT * FROM {q(view + '__empty')}")
        return
    paths = ", ".join(literal(f) for f in files)
    cols = ", ".join(q(c) for c in schema.names)
    con.execute(
        f"CREATE OR REPLACE {kind} {q(view)} AS SELECT {cols} FROM read_parquet([{paths}]"
        + (", union_by_name = true)" if union_by_name else ")")
    )


def open_session(
    views: Mapping[str, DeltaTable],
    store: LakeStore,
    *,
    writable: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per entry of ``views`` (read-only unless ``writable``)."""
    if con is None:
        config: dict[str, str | bool | int | float | list[str]] = (
            {} if writable else {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        con = duckdb.connect(config=config)
    try:
        if writable:
            if store.is_s3:
                load_httpfs(con)
                _s3_secret(con, store)
            for name, table in views.items():
                register_view(con, name, table)
            return con
        urls = {name: store.read_urls(table.file_uris()) for name, table in views.items()}
        union = {name: True for name in views}
        if store.is_s3:
            load_httpfs(con)
        else:
            con.register_filesystem(ReadOnlyFiles([u for us in urls.values() for u in us]))
            # through a Python filesystem, union_by_name's bind-time scan of every file runs on DuckDB's worker
            # threads while con.sql() holds the GIL: it deadlocked about 1 in 10 times (duckdb 1.5, 2 cores)
            union = {name: not same_columns(us) for name, us in urls.items()}
            urls = {name: [f"{PROTOCOL}://{u}" for u in us] for name, us in urls.items()}
        for name, table in views.items():
            register_view(con, name, table, urls[name], union_by_name=union[name])
        lock_down(con, [u for us in urls.values() for u in us])
    except BaseException:
        con.close()
        raise
    return con


def same_columns(paths: list[str]) -> bool:
    """Whether the local Parquet files ``paths`` all have the same columns in the same order (their footers
    read with pyarrow): then a view needs no ``union_by_name`` (only files written before a column was added
    need it)."""
    import pyarrow.parquet as pq

    try:
        names = {tuple(pq.read_schema(p).names) for p in paths}
    except (OSError, ValueError):
        return False
    return len(names) <= 1


def lock_down(con: duckdb.DuckDBPyConnection, allowed: list[str]) -> None:
    """No file but ``allowed`` (read through the gates above), no extensions, and no way back."""
    if allowed:
        con.execute(f"SET allowed_paths = [{', '.join(literal(a) for a in allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_read_only(sql: str) -> None:
    """Refuse (one line) any statement of ``sql`` that is not a query: quantlake query never changes anything."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {str(exc).splitlines()[0]}") from None
    for i, stmt in enumerate(statements, 1):
        kind = stmt.type.name
        if kind not in _READ_STATEMENTS:
            where = f" (statement {i})" if len(statements) > 1 else ""
            raise QueryError(
                f"the lake is read-only here: {kind.replace('_', ' ')} statements are not allowed{where}; "
                "queries only (save results with --format csv|json > FILE)"
            )


_SIGNED = re.compile(r"\?[^\s'\"]*X-Amz-[^\s'\"]*")


def scrub_signed_urls(text: str) -> str:
    """Drop the query string of presigned S3 URLs (their signature grants access) from a message."""
    return _SIGNED.sub("?<signed>", text)


def query_error(exc: duckdb.Error) -> QueryError:
    """One line for a failed query; refusals by the read-only session say so.  Presigned URLs are cut."""
    first = scrub_signed_urls(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if isinstance(exc, duckdb.PermissionException) or "disabled by configuration" in first \
            or "configuration has been locked" in first or "read-only lake session" in first:
        return QueryError(f"the lake is read-only here: {first}")
    return QueryError(f"query failed: {first}")


def vacuumed_error(exc: duckdb.Error, table: str, version: int, latest: int) -> QuantlakeError:
    """A read of ``table`` as of ``version`` whose data files are gone (a vacuum removed them: the version is
    older than the retention) says so; any other I/O failure is a plain query error."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    if "No files found" in first or "No such file" in first or "NoSuchKey" in first or "404" in first:
        return VersionNotFoundError(
            f"table {table!r} version {version} can no longer be read: its data files were removed by a vacuum "
            f"(`quantlake lake maintain`/`vacuum` keep only the versions younger than the retention; latest is {latest})")
    return query_error(exc)
