"""A SIGKILLed ingest leaves every table at its previous version; a rerun completes without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantlake.ingest import ingest_equity
from quantlake.lake import Lake
from quantlake.sources.csvdir import CsvSource

CHILD = """
import sys
from quantlake.ingest import ingest_equity
from quantlake.lake import Lake
from quantlake.sources.csvdir import CsvSource
ingest_equity(Lake(sys.argv[1]), CsvSource(sys.argv[2]), progress=False)
print("finished", flush=True)
"""


def _committed_files(table_dir: Path) -> set[str]:
    files: set[str] = set()
    for log in sorted((table_dir / "_delta_log").glob("*.json")):
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files.add(action["add"]["path"])
    return files


def _vendor_file(path: Path, n_symbols: int, n_days: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2000-01-03", periods=n_days)
    sym = np.repeat([f"S{i:03d}" for i in range(n_symbols)], n_days)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_symbols, n_days)), axis=1)).ravel()
    pd.DataFrame(
        {
            "symbol": sym,
            "date": np.tile(days, n_symbols),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1000.0,
        }
    ).to_parquet(path)


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_commit(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    _vendor_file(small / "bars.parquet", n_symbols=3, n_days=50, seed=1)
    _vendor_file(big / "bars.parquet", n_symbols=300, n_days=2500, seed=1)  # superset of small
    lake = Lake(lake_dir)
    ingest_equity(lake, CsvSource(small), progress=False)
    assert lake.version("equity_bars") == 0
    table_dir = lake_dir / "equity_bars"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    killed_mid_commit = 0
    for _attempt in range(8):
        v_before = Lake(lake_dir).version("equity_bars")
        before_files = set(p.name for p in table_dir.glob("*.parquet*"))
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(lake_dir), str(big)], env=env, stdout=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        orphan = False
        while proc.poll() is None and time.monotonic() < deadline:
            # data files of the commit being staged (object_store writes '<name>#<n>' and renames it) or written,
            # the log entry not there yet: the staging window is the wide one (a busy machine missed the other)
            new = set(p.name for p in table_dir.glob("*.parquet*")) - before_files
            if new - _committed_files(table_dir):
                os.kill(proc.pid, signal.SIGKILL)
                orphan = True
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
        reopened = Lake(lake_dir)
        if orphan and proc.returncode == -signal.SIGKILL and reopened.version("equity_bars") == v_before:
            killed_mid_commit += 1
            # the table opens at its previous version with exactly its previous rows
            df = reopened.read("equity_bars")
            assert len(df) == 150
            assert not df.duplicated(["symbol", "date"]).any()
            break
        # the writer won the race (committed before we saw its files): put the 150 rows back and retry
        reopened.replace("equity_bars", reopened.read("equity_bars", version=0), reopened.spec("equity_bars"))
    assert killed_mid_commit == 1, "never managed to kill the writer between its data files and its commit"

    # a rerun completes, with no duplicate keys and every row exactly once
    (rep,) = ingest_equity(Lake(lake_dir), CsvSource(big), progress=False)
    final = Lake(lake_dir).read("equity_bars")
    assert len(final) == 300 * 2500
    assert not final.duplicated(["symbol", "date"]).any()
    assert rep.inserted == 300 * 2500 - 150
    # the killed writer's orphan files are never read, and vacuum can remove them
    Lake(lake_dir).vacuum("equity_bars", retention_hours=0)
    assert len(Lake(lake_dir).read("equity_bars")) == 300 * 2500
