"""A SQL script of persistent DuckDB views over the lake, for the DuckDB CLI and other tools (issue 18).

Reading a table's folder directly (``read_parquet('lake/equity_bars/*.parquet')``) returns stale and
duplicated rows: the folder holds every version's files, and only the Delta log says which belong to the
current snapshot.  The script pins each view to the exact files of one version, so a DuckDB database file
built from it answers like ``quantlake query`` did when the script was written, derived views included
(``all_bars``: bars of every interval, as :meth:`quantlake.lake.Lake.connect` registers it)::

    quantlake lake duckdb-views --db lake.duckdb        # (re)build the views in lake.duckdb
    duckdb lake.duckdb "from equity_bars limit 5"

Re-run it after new commits to move the views forward; ``quantlake_snapshot`` (a table in the same database)
records which version of each table the views show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from quantlake.bars import ALL_BARS_VIEW, all_bars_select
from quantlake.lake_sql import literal, q
from quantlake.lake_storage import LakeStore


def _duckdb_types(schema: pa.Schema) -> list[tuple[str, str]]:
    """DuckDB's type name for each column of an Arrow schema (as DuckDB reads it)."""
    con = duckdb.connect()
    try:
        con.register("t", schema.empty_table())
        return [(str(r[0]), str(r[1])) for r in con.execute("DESCRIBE SELECT * FROM t").fetchall()]
    finally:
        con.close()


def _view(name: str, table: DeltaTable) -> str:
    schema = pa.schema(table.schema())
    files = table.file_uris()
    if not files:  # an empty snapshot: a typed view with no rows
        cols = ", ".join(f"CAST(NULL AS {typ}) AS {q(col)}" for col, typ in _duckdb_types(schema))
        return f"CREATE OR REPLACE VIEW {q(name)} AS SELECT {cols} WHERE false;"
    cols = ", ".join(q(c) for c in schema.names)
    paths = ",\n    ".join(literal(f) for f in files)
    return (
        f"CREATE OR REPLACE VIEW {q(name)} AS SELECT {cols}\n"
        f"  FROM read_parquet([\n    {paths}\n  ], union_by_name = true);"
    )


def _s3_preamble(store: LakeStore) -> list[str]:
    from quantlake.lake_storage import _endpoint, _region

    endpoint = _endpoint()
    opts = [f"REGION {literal(_region())}", f"SCOPE {literal(store.uri)}"]
    if endpoint:
        host = endpoint.split("://", 1)[-1].rstrip("/")
        opts += [f"ENDPOINT {literal(host)}", "URL_STYLE 'path'",
                 f"USE_SSL {str(endpoint.startswith('https://')).lower()}"]
    return [
        "-- The lake is on S3: a session reading these views needs httpfs and the lake's credentials (from the",
        "-- standard AWS chain: environment, profile, instance role). Secrets are not stored in the database",
        "-- file: run the next three lines at the start of every DuckDB session that queries the views.",
        "LOAD httpfs;",
        "LOAD aws;",
        f"CREATE OR REPLACE SECRET quantlake_lake (TYPE s3, PROVIDER credential_chain, {', '.join(opts)});",
    ]


def views_script(store: LakeStore, snapshots: Mapping[str, DeltaTable], now: dt.datetime | None = None) -> str:
    """The script: one ``CREATE OR REPLACE VIEW`` per table pinned to its snapshot's files, plus the
    ``quantlake_snapshot`` table naming each view's version."""
    now = now or dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    pinned = ", ".join(f"{n}@{t.version()}" for n, t in snapshots.items()) or "(no tables)"
    lines = [
        f"-- quantlake lake views, written {stamp}",
        f"-- lake: {store.uri}",
        f"-- versions: {pinned}",
        "-- Each view reads exactly the Parquet files of that version (reading a table's folder directly returns",
        "-- rows of older versions too). Re-run `quantlake lake duckdb-views` after new commits.",
        "-- Use: duckdb lake.duckdb < this.sql   (or: quantlake lake duckdb-views --db lake.duckdb)",
        "",
    ]
    if store.is_s3:
        lines += [*_s3_preamble(store), ""]
    lines.append("BEGIN TRANSACTION;")
    for name, table in snapshots.items():
        lines.append(_view(name, table))
    derived = all_bars_select(
        {n: pa.schema(t.schema()).names for n, t in snapshots.items() if n in ("equity_bars", "bars")}
    )
    if derived:  # the same all_bars view as Lake.connect(): every interval in one relation
        lines.append(f"CREATE OR REPLACE VIEW {q(ALL_BARS_VIEW)} AS {derived};")
    rows = ",\n  ".join(
        f"({literal(n)}, {t.version()}, {len(t.file_uris())}, TIMESTAMPTZ {literal(now.isoformat())}, "
        f"{literal(store.uri)})"
        for n, t in snapshots.items()
    )
    lines.append(
        "CREATE OR REPLACE TABLE quantlake_snapshot (table_name VARCHAR, version BIGINT, files BIGINT, "
        "written_at TIMESTAMPTZ, lake VARCHAR);"
    )
    if rows:
        lines.append(f"INSERT INTO quantlake_snapshot VALUES\n  {rows};")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def apply_script(script: str, database: str, store: LakeStore) -> None:
    """Run ``script`` in the DuckDB database file ``database`` (created if missing).  For an S3 lake the
    extensions come from their pip packages (nothing downloaded)."""
    from quantlake.lake_sql import load_extension

    con = duckdb.connect(database, config={"autoinstall_known_extensions": False})
    try:
        if store.is_s3:
            load_extension(con, "httpfs")
            load_extension(con, "aws")
        con.execute(script)
    finally:
        con.close()
