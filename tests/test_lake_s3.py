"""The lake on S3 (issue 14): the lake's own test module, the read-only sessions, concurrent writers from two
processes, vacuum and the DuckDB-views script — against moto's S3 server running on 127.0.0.1 (a real HTTP
server speaking the S3 protocol; delta-rs, DuckDB's httpfs and boto3 all talk to it over the network).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import boto3
import duckdb
import pandas as pd
import pytest
from servers import s3_endpoint, s3_lake_uri  # noqa: F401  (fixtures)
from test_lake import *  # noqa: F403  (every test of the lake module, here with an S3 lake)
from test_lake_races import check_creation_races, check_merge_races

from quantlake.lake import Lake

pytestmark = pytest.mark.integration


@pytest.fixture()
def lake(s3_lake_uri: str) -> Lake:  # noqa: F811  (the S3 lake replaces the local one for this module)
    return Lake(s3_lake_uri)


def _objects(uri: str) -> dict[str, str]:
    """Every object under the lake with its content hash."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3 = boto3.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = hashlib.sha256(body).hexdigest()
    return out


def _bars(n: int, symbol: str = "A") -> pd.DataFrame:
    days = pd.bdate_range("2020-01-02", periods=n)
    return pd.DataFrame({"symbol": symbol, "date": [d.date() for d in days],
                         "close": [float(i + 1) for i in range(n)], "source": "t"})


def test_s3_sessions_are_read_only(lake: Lake, tmp_path: Path) -> None:
    lake.merge("equity_bars", _bars(20))
    part = lake.delta("equity_bars").file_uris()[0]
    assert part.startswith("s3://")
    before = _objects(lake.uri)
    con = lake.connect()
    assert con.execute("SELECT count(*), sum(close) FROM equity_bars").fetchone() == (20, 210.0)
    url = con.execute("SELECT file FROM duckdb_settings() s, unnest(string_split(s.value, ',')) t(file) "
                      "WHERE s.name = 'allowed_paths' LIMIT 1").fetchone()
    attacks = [
        f"COPY (SELECT 42 AS a) TO '{part}' (FORMAT parquet)",  # over a committed part file, by its s3 URL
        f"SELECT * FROM read_parquet('{part}')",  # S3 outside the snapshot's presigned URLs: no credentials
        f"COPY (SELECT 1 AS a) TO '{tmp_path / 'x.csv'}'",
        "SET enable_external_access = true",
    ]
    if url is not None:  # the presigned URL itself cannot be written (httpfs has no HTTP writes)
        attacks.append(f"COPY (SELECT 42 AS a) TO '{url[0].strip(' []')}' (FORMAT parquet, USE_TMP_FILE false)")
    for sql in attacks:
        with pytest.raises(duckdb.Error):
            con.execute(sql).fetchall()
    # a secret made inside the session opens nothing either (external access stays off)
    con.execute("CREATE SECRET s (TYPE s3, KEY_ID 'quantlake-test', SECRET 'quantlake-test-secret')")
    with pytest.raises(duckdb.Error):
        con.execute(f"COPY (SELECT 42 AS a) TO '{part}' (FORMAT parquet)")
    con.close()
    assert _objects(lake.uri) == before
    assert not (tmp_path / "x.csv").exists()


def test_two_processes_creating_one_s3_table(lake: Lake, tmp_path: Path) -> None:
    check_creation_races(lake, tmp_path, rounds=4)


def test_two_processes_merging_into_one_s3_table_lose_no_commit(lake: Lake, tmp_path: Path) -> None:
    check_merge_races(lake, tmp_path, rounds=3)


def test_s3_vacuum_and_history(lake: Lake) -> None:
    lake.merge("equity_bars", _bars(10))
    lake.merge("equity_bars", _bars(10).assign(close=lambda d: d["close"] * 2))  # rewrites the file
    assert [h["version"] for h in lake.history("equity_bars")][:2] == [1, 0]
    files_v0 = set(lake.delta("equity_bars", 0).file_uris())
    removed = lake.vacuum("equity_bars", retention_hours=0)
    assert removed and {f.rsplit("/", 1)[-1] for f in files_v0} >= {r.rsplit("/", 1)[-1] for r in removed}
    assert lake.read("equity_bars")["close"].tolist() == [2.0 * (i + 1) for i in range(10)]


def test_duckdb_views_script_reads_the_s3_lake(lake: Lake, tmp_path: Path) -> None:
    from quantlake.lake_views import apply_script, views_script

    lake.merge("equity_bars", _bars(7))
    db = tmp_path / "lake.duckdb"
    apply_script(views_script(lake.store, lake.snapshots()), str(db), lake.store)
    con = duckdb.connect(str(db))
    from quantlake.lake_sql import load_extension

    load_extension(con, "httpfs")
    load_extension(con, "aws")
    script = views_script(lake.store, lake.snapshots())
    secret = next(line for line in script.splitlines() if line.startswith("CREATE OR REPLACE SECRET"))
    con.execute(secret)  # what a DuckDB CLI session runs first (credentials from the AWS variables)
    assert con.execute("SELECT count(*) FROM equity_bars").fetchone() == (7,)


def test_s3_vacuum_aborts_uploads_killed_writers_left(lake: Lake) -> None:
    import datetime as dt

    lake.merge("equity_bars", _bars(3))
    bucket, _, prefix = lake.uri[len("s3://"):].partition("/")
    s3 = boto3.client("s3")
    key = f"{prefix}/equity_bars/part-00001-dead-writer-c000.snappy.parquet"
    s3.create_multipart_upload(Bucket=bucket, Key=key)  # what a writer killed mid-upload leaves
    removed = lake.vacuum("equity_bars", retention_hours=0, staging_older_than=dt.timedelta(0))
    assert any("part-00001-dead-writer" in r for r in removed), removed
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert len(lake.read("equity_bars")) == 3
