"""Chain files stream: bounded batches, commits by whole quote dates, a SIGKILLed ingest keeps whole days and a
rerun adds nothing twice."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantlake.calendars import sessions
from quantlake.ingest_chains import ingest_option_files
from quantlake.lake import Lake

CHILD = """
import sys
from quantlake.ingest_chains import ingest_option_files
from quantlake.lake import Lake
ingest_option_files(Lake(sys.argv[1]), sys.argv[2], progress=False, commit_rows=int(sys.argv[3]),
                    rows_per_batch=int(sys.argv[4]))
print("finished", flush=True)
"""


def _chain_file(path: Path, days: int, strikes: int) -> int:
    """A date-sorted daily-layout file: per session 4 expiries x ``strikes`` strikes x C/P x SPX/SPXW."""
    qd = [d.date() for d in sessions("2021-01-04", "2021-12-31")][:days]
    rows = []
    for day in qd:
        expiries = [day + dt.timedelta(days=7 * w + (4 - day.weekday()) % 7 + 1) for w in range(4)]
        for exp in expiries:
            for k in 3000.0 + 5.0 * np.arange(strikes):
                for right in ("C", "P"):
                    for root in ("SPX", "SPXW"):
                        rows.append((day, exp, k, right, root))
    df = pd.DataFrame(rows, columns=["qd", "exp", "k", "right", "root"])
    occ = df["root"] + df["exp"].map(lambda e: e.strftime("%y%m%d")) + df["right"] + (df["k"] * 1000).astype(
        int).astype(str).str.zfill(8)  # fmt: skip
    out = pd.DataFrame({
        "underlying": "SPX", "underlying_last": 3700.0, "exchange": "CBOE", "optionroot": occ,
        "type": df["right"].map({"C": "call", "P": "put"}), "expiration": df["exp"].map(lambda e: e.strftime("%m/%d/%Y")),
        "quotedate": df["qd"].map(lambda e: e.strftime("%m/%d/%Y")), "strike": df["k"], "last": 1.0, "net": 0.0,
        "bid": 1.0, "ask": 1.1, "volume": 5, "openinterest": 7, "impliedvol": 0.2, "delta": 0.5, "gamma": 0.01,
    })  # fmt: skip
    out.to_csv(path, index=False)
    return len(out)


def test_commits_are_whole_days_and_memory_batches_bounded(tmp_path: Path, lake: Lake) -> None:
    f = tmp_path / "chains.csv"
    n = _chain_file(f, days=6, strikes=25)  # 400 quotes per day
    rep = ingest_option_files(lake, f, progress=False, commit_rows=1000, rows_per_batch=300)
    assert (rep.rows_read, rep.accepted, rep.inserted) == (n, n, n)
    commits = [h for h in lake.history("option_quotes") if h.get("operation") != "CREATE TABLE"]
    assert len(commits) >= 3  # several commits, not one at the end
    for h in lake.history("option_quotes"):  # every commit holds whole quote dates only
        v = h["version"]
        per_day = lake.query("select quote_date, count(*) n from option_quotes group by 1", as_of={"option_quotes": v})
        assert set(per_day["n"]) <= {400}, (v, per_day)


@pytest.mark.slow
def test_sigkill_keeps_whole_days_and_a_rerun_adds_nothing_twice(tmp_path: Path) -> None:
    f = tmp_path / "chains.csv"
    per_day = 4 * 60 * 2 * 2
    n = _chain_file(f, days=40, strikes=60)
    lake_dir = tmp_path / "lake"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(lake_dir), str(f), str(3 * per_day), str(per_day // 2)],
                            env=env, stdout=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    killed = False
    log = lake_dir / "option_quotes" / "_delta_log"
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(log.glob("*.json"))) >= 2:  # two commits done, more to come
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert killed and proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    lake = Lake(lake_dir)
    counts = lake.query("select quote_date, count(*) n from option_quotes group by 1")
    assert 0 < len(counts) < 40 and set(counts["n"]) == {per_day}  # whole days only
    kept = int(counts["n"].sum())
    rep = ingest_option_files(lake, f, progress=False)
    assert (rep.inserted, rep.updated) == (n - kept, 0)
    final = lake.read("option_quotes")
    assert len(final) == n
    assert not final.duplicated(["quote_date", "underlying", "root", "expiry", "strike", "right"]).any()
    again = ingest_option_files(lake, f, progress=False)
    assert (again.inserted, again.updated) == (0, 0)
