"""Storage faults said plainly (issue 19.8): a full disk says "disk full", a read-only lake folder says
"read-only" (and still answers queries), neither shows a Rust panic note or a traceback; `lake vacuum` removes
the `part-*.parquet#N` staging files killed writers leave.

Faults are real: the child process runs in its own mount namespace (`unshare --mount`, plus
`--map-root-user` when not root) on a tmpfs of 1 MiB (disk full) or a tmpfs remounted read-only; nothing
outside the namespace sees the mounts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from quantlake.lake import Lake

CHILD = r"""
import subprocess, sys
import numpy as np, pandas as pd
import pyarrow as pa
from quantlake.errors import QuantlakeError
from quantlake.lake import Lake
from quantlake.tables import TableSpec

mnt, scenario = sys.argv[1], sys.argv[2]
lake = Lake(mnt + "/lake")
n = 200_000
big = pd.DataFrame({
    "symbol": np.repeat([f"S{i:03d}" for i in range(100)], n // 100),
    "date": np.tile(pd.bdate_range("2000-01-03", periods=n // 100).date, 100),
    "close": np.random.default_rng(0).random(n), "source": "x"})
print("created", lake.merge("equity_bars", big.iloc[:1000]).version, flush=True)
if scenario == "read-only":
    subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
    print("rows", lake.query("SELECT count(*) AS n FROM equity_bars")["n"].iloc[0], flush=True)
derived = TableSpec("features_t", ("symbol", "date"), pa.schema([("symbol", pa.string()), ("date", pa.date32()),
                                                                   ("close", pa.float64())]), "date")
parts = (big.iloc[i:i + 50_000].drop(columns="source") for i in range(0, n, 50_000))  # one file per part
for label, write in (("merge", lambda: lake.merge("equity_bars", big)),
                     ("create", lambda: lake.merge("corporate_actions", big.rename(columns={"close": "value"})
                                                   .drop(columns="source").assign(kind="dividend"))),
                     ("replace", lambda: lake.replace_parts("features_t", parts, derived))):
    try:
        write()
        print(label, "committed", flush=True)
    except QuantlakeError as exc:  # what the CLI prints
        print(f"{label} error: {exc}", flush=True)
print("tables", ",".join(lake.tables()), "query", lake.query("SELECT count(*) AS n FROM equity_bars")["n"].iloc[0],
      flush=True)
print("parquet files left", len(list(__import__("pathlib").Path(mnt, "lake").rglob("*.parquet"))) - 1, flush=True)
print("version", lake.version("equity_bars"), "rows", len(lake.read("equity_bars")), flush=True)
"""


def _in_namespace(tmp_path: Path, size: str, scenario: str) -> subprocess.CompletedProcess[str]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    unshare = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    shell = f'mount -t tmpfs -o size={size} tmpfs "{mnt}" && exec "{sys.executable}" "{script}" "{mnt}" {scenario}'
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([*unshare, "sh", "-c", shell], capture_output=True, text=True, env=env, timeout=300)


def _check_plain(res: subprocess.CompletedProcess[str], words: str) -> None:
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    errors = [ln for ln in lines if " error: " in ln]
    assert len(errors) == 3, res.stdout
    for line in errors:
        assert line.split(" error: ")[1].startswith(words), line
        assert "Failed to parse parquet" not in line
    assert any("table 'equity_bars' left at version 0" in ln for ln in errors), errors
    assert any("table 'corporate_actions' not created" in ln for ln in errors), errors
    # a full replacement (feature build) writes its own Parquet files: the failed one deleted what it wrote
    assert any(ln.startswith("replace error: ") and "table 'features_t' not created" in ln for ln in errors), errors
    assert lines[-2] == "parquet files left 0", lines[-2]  # only equity_bars' one file remains
    # no Rust panic note, no traceback
    assert "panicked" not in res.stderr and "RUST_BACKTRACE" not in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    # the table is still at its previous version with its rows
    assert lines[-1] == "version 0 rows 1000", lines[-1]
    assert lines[-3] == "tables equity_bars query 1000", lines[-3]  # the failed creation left no table behind


@pytest.mark.slow
def test_disk_full_is_said_plainly_and_loses_nothing(tmp_path: Path) -> None:
    res = _in_namespace(tmp_path, "1m", "disk-full")
    _check_plain(res, "disk full: cannot write table")


@pytest.mark.slow
def test_read_only_lake_folder_reads_and_refuses_writes_plainly(tmp_path: Path) -> None:
    res = _in_namespace(tmp_path, "32m", "read-only")
    assert "rows 1000" in res.stdout.splitlines(), res.stdout + res.stderr[-2000:]
    _check_plain(res, "read-only: cannot write table")


def _bars(n: int) -> pd.DataFrame:
    return pd.DataFrame({"symbol": "A", "date": [d.date() for d in pd.bdate_range("2020-01-02", periods=n)],
                         "close": [float(i) for i in range(n)], "source": "t"})


def test_vacuum_removes_staging_files_of_killed_writers_only(lake: Lake) -> None:
    lake.merge("equity_bars", _bars(10))
    folder = lake.root / "equity_bars"
    part = next(folder.glob("part-*.parquet"))
    # what object_store leaves when a writer is killed while staging a file: '<part>#<n>'
    stale = folder / "part-00001-7d1e3c55-0c5e-4f55-9b8e-2f0f6b1a9c11-c000.snappy.parquet#1"
    shutil.copy(part, stale)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    live = folder / "part-00002-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-c000.snappy.parquet#1"
    shutil.copy(part, live)  # a writer still staging this one right now (fresh mtime)
    removed = lake.vacuum("equity_bars", retention_hours=0)
    assert stale.name in removed
    assert not stale.exists()
    assert live.exists()
    assert part.exists() and len(lake.read("equity_bars")) == 10


@pytest.mark.parametrize("stray", ["part-00001-x-c000.snappy.parquet#12", "_delta_log/00000000000000000001.json#1"])
def test_vacuum_leaves_the_committed_log_alone(lake: Lake, stray: str) -> None:
    lake.merge("equity_bars", _bars(5))
    folder = lake.root / "equity_bars"
    target = folder / stray
    target.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(target, (old, old))
    lake.vacuum("equity_bars", retention_hours=0)
    assert not target.exists()
    assert (folder / "_delta_log" / "00000000000000000000.json").exists()
    assert len(lake.read("equity_bars")) == 5
