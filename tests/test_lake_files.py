"""The full-replacement writer (quantlake.lake_files): Parquet files this process writes, committed through
deltalake's transaction API.  Its Delta statistics are checked against the ones delta-rs writes itself for
the same rows (a second implementation), since readers prune files by them."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from quantlake.lake_files import ROW_GROUP_ROWS, write_version
from quantlake.lake_storage import LakeStore

SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("date", pa.date32()),
        ("x", pa.float64()),
        ("n", pa.int64()),
        ("k", pa.int32()),
        ("flag", pa.bool_()),
        ("label", pa.string()),
    ]
)


def _rows(n: int, start: int = 0) -> pa.Table:
    day = dt.date(2020, 1, 1)
    return pa.table(
        {
            "symbol": [f"S{(start + i) // 7:03d}" for i in range(n)],
            "date": [day + dt.timedelta(days=(start + i) % 7) for i in range(n)],
            "x": [None if i % 5 == 0 else math.sin(start + i) * 100 for i in range(n)],
            "n": [(start + i) * 3 - 50 for i in range(n)],
            "k": [None] * n,  # all NULL: a null count, no min/max
            "flag": [i % 2 == 0 for i in range(n)],
            "label": ["a long label that is well over thirty-two characters " + str(i) for i in range(n)],
        },
        schema=SCHEMA,
    )


def _stats(path: Path) -> dict[str, list[object]]:
    actions = DeltaTable(str(path)).get_add_actions(flatten=True)
    table = pa.table(actions) if not isinstance(actions, pa.Table) else actions
    return {name: table.column(name).to_pylist() for name in table.column_names}


def test_file_statistics_equal_delta_rs_own(tmp_path: Path) -> None:
    data = _rows(300)
    write_deltalake(str(tmp_path / "ref"), data)  # one file, delta-rs's statistics
    store = LakeStore.parse(tmp_path)
    write_version(store, "ours", [data], SCHEMA, None, CommitProperties(), "test")
    ref, ours = _stats(tmp_path / "ref"), _stats(tmp_path / "ours")
    assert ours["num_records"] == ref["num_records"] == [300]
    for col in SCHEMA.names:
        assert ours[f"null_count.{col}"] == ref[f"null_count.{col}"], col
    for col in ("symbol", "date", "x", "n"):  # numbers, dates and short strings: the same min/max
        assert ours[f"min.{col}"] == ref[f"min.{col}"], col
        assert ours[f"max.{col}"] == ref[f"max.{col}"], col
    # long strings, booleans and all-NULL columns get no min/max (a truncated max would be wrong)
    for col in ("label", "flag", "k"):
        assert f"min.{col}" not in ours or ours[f"min.{col}"] == [None], col
    assert DeltaTable(str(tmp_path / "ours")).to_pyarrow_table().equals(data)


def test_parts_become_files_of_one_version_and_an_overwrite_removes_the_old(tmp_path: Path) -> None:
    store = LakeStore.parse(tmp_path)
    parts = [_rows(ROW_GROUP_ROWS + 10), _rows(0), _rows(40, start=ROW_GROUP_ROWS + 10)]
    write_version(store, "t", parts, SCHEMA, None, CommitProperties(custom_metadata={"m": "1"}), "described")
    table = DeltaTable(str(tmp_path / "t"))
    assert table.version() == 0 and len(table.file_uris()) == 2  # the empty part wrote no file
    assert table.metadata().description == "described"
    assert table.history()[0].get("m") == "1"
    got = table.to_pyarrow_table()
    assert got.num_rows == ROW_GROUP_ROWS + 50
    assert pc.max(got.column("n")).as_py() == (ROW_GROUP_ROWS + 49) * 3 - 50
    write_version(store, "t", [_rows(5)], SCHEMA, table, CommitProperties(), "described")
    table = DeltaTable(str(tmp_path / "t"))
    assert table.version() == 1 and table.to_pyarrow_table().equals(_rows(5))
    assert DeltaTable(str(tmp_path / "t"), version=0).to_pyarrow_table().num_rows == ROW_GROUP_ROWS + 50


def test_a_failing_part_deletes_the_files_already_written(tmp_path: Path) -> None:
    store = LakeStore.parse(tmp_path)

    def parts() -> object:
        yield _rows(20)
        raise RuntimeError("part 2 failed")

    with pytest.raises(RuntimeError, match="part 2 failed"):
        write_version(store, "t", parts(), SCHEMA, None, CommitProperties(), "")  # type: ignore[arg-type]
    assert not DeltaTable.is_deltatable(str(tmp_path / "t"))
    assert not list((tmp_path / "t").glob("*.parquet"))


KILLED_CHILD = r"""
import sys, time
import pyarrow as pa
from quantlake.lake import Lake
from quantlake.tables import TableSpec
schema = pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("x", pa.float64())])
spec = TableSpec("features_k", ("symbol", "date"), schema, "date")
def parts():
    for i in range(3):
        yield pa.table({"symbol": [f"S{i}"] * 1000, "date": pa.array(range(1000), pa.int32()).cast(pa.date32()),
                        "x": [float(i)] * 1000}, schema=schema)
    print("parts written", flush=True)
    time.sleep(600)  # killed here: files on disk, no commit
    yield pa.table({"symbol": ["Z"], "date": pa.array([0], pa.int32()).cast(pa.date32()), "x": [0.0]}, schema=schema)
Lake(sys.argv[1]).replace_parts("features_k", parts(), spec)
"""


def test_a_killed_replacement_leaves_the_version_and_vacuum_removes_its_files(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from quantlake.lake import Lake
    from quantlake.tables import TableSpec

    lake = Lake(tmp_path / "lake")
    schema = pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("x", pa.float64())])
    spec = TableSpec("features_k", ("symbol", "date"), schema, "date")
    lake.replace("features_k", pa.table({"symbol": ["A"], "date": [dt.date(2020, 1, 1)], "x": [1.0]}), spec)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, lake.uri], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "parts written"
    finally:
        child.kill()
        child.wait(timeout=30)
    folder = tmp_path / "lake" / "features_k"
    assert len(list(folder.glob("*.parquet"))) == 1 + 3  # the committed file and the killed write's three
    assert lake.version("features_k") == 0 and lake.read("features_k")["x"].tolist() == [1.0]
    removed = lake.vacuum("features_k", retention_hours=0)
    assert len(removed) == 3
    assert len(list(folder.glob("*.parquet"))) == 1 and lake.read("features_k")["x"].tolist() == [1.0]
