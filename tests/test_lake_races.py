"""Concurrent writers (issue 19.2 and the lake parts of 19.8): two processes creating the same table leave one
table with every key once; two processes merging at once both land, each reporting the version it committed.

The writers are real processes meeting at a file barrier before every round, so each round is a true race.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantlake.lake import Lake

WRITER = r"""
import json, os, sys, time
import pyarrow as pa
from quantlake.lake import Lake
from quantlake.tables import TableSpec

root, me, rounds, barrier, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
other = "B" if me == "A" else "A"
lake = Lake(root)
out = []
for r in range(rounds):
    name = f"race_{r:02d}" if mode == "create" else "race_merge"
    spec = TableSpec(name=name, keys=("k",), schema=pa.schema([("k", pa.int64()), ("v", pa.string())]))
    if mode == "create":  # A writes keys 0..999, B 500..1499: 500 shared keys with different values
        lo = 0 if me == "A" else 500
        keys = list(range(lo, lo + 1000))
    else:  # disjoint new keys every round
        base = 10_000 * r + (0 if me == "A" else 5_000)
        keys = list(range(base, base + 200))
    data = pa.table({"k": keys, "v": [me] * len(keys)})
    open(os.path.join(barrier, f"{r}-{me}"), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(barrier, f"{r}-{other}")):
        if time.monotonic() > deadline:
            raise SystemExit("the other writer never arrived")
        time.sleep(0.0005)
    try:
        res = lake.merge(name, data, spec=spec, note=f"writer {me} round {r}")
    except Exception as exc:  # reported to the test, which fails naming it
        out.append({"round": r, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        continue
    out.append({"round": r, "before": res.version_before, "version": res.version,
                "inserted": res.inserted, "updated": res.updated})
print(json.dumps(out))
"""


def _race(root: str, tmp_path: Path, rounds: int, mode: str) -> dict[str, list[dict[str, int]]]:
    barrier = tmp_path / f"barrier-{mode}"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = {
        me: subprocess.Popen([sys.executable, "-c", WRITER, root, me, str(rounds), str(barrier), mode],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for me in ("A", "B")
    }
    outputs = {me: proc.communicate(timeout=600) for me, proc in procs.items()}
    for me, proc in procs.items():
        assert proc.returncode == 0, f"writer {me}: {outputs[me][1][-3000:]}"
    results = {me: json.loads(out.strip().splitlines()[-1]) for me, (out, _err) in outputs.items()}
    errors = [(me, res) for me, rs in results.items() for res in rs if "error" in res]
    assert not errors, errors[:4]
    return results


def check_creation_races(lake: Lake, tmp_path: Path, rounds: int) -> None:
    results = _race(lake.uri, tmp_path, rounds, "create")
    for r in range(rounds):
        a, b = results["A"][r], results["B"][r]
        table = lake.read(f"race_{r:02d}")
        # one table, every key exactly once (no duplicated rows, whoever won)
        assert len(table) == 1500 and table["k"].is_unique, f"round {r}: {len(table)} rows"
        assert sorted(table["k"]) == list(range(1500))
        assert set(table.loc[table["k"] < 500, "v"]) == {"A"}
        assert set(table.loc[table["k"] >= 1000, "v"]) == {"B"}
        # exactly one creator; the other merged into what it created, at the next version
        creator, merger = (a, b) if a["before"] is None else (b, a)
        assert creator["before"] is None and creator["version"] == 0 and creator["inserted"] == 1000, (a, b)
        assert merger["before"] == 0 and merger["version"] == 1, (a, b)
        assert merger["inserted"] == 500 and merger["updated"] == 500, (a, b)
        assert lake.version(f"race_{r:02d}") == 1


def check_merge_races(lake: Lake, tmp_path: Path, rounds: int) -> None:
    import pyarrow as pa

    from quantlake.tables import TableSpec

    spec = TableSpec(name="race_merge", keys=("k",), schema=pa.schema([("k", pa.int64()), ("v", pa.string())]))
    lake.merge("race_merge", pa.table({"k": [-1], "v": ["seed"]}), spec=spec)
    results = _race(lake.uri, tmp_path, rounds, "merge")
    reported = [res["version"] for who in ("A", "B") for res in results[who]]
    # no commit lost: 2 x rounds commits after the seed, each writer's rows all there
    assert lake.version("race_merge") == 2 * rounds
    assert len(lake.read("race_merge")) == 1 + 2 * rounds * 200
    # each writer reports the version it committed: all distinct, and that version's note is its own
    assert sorted(reported) == list(range(1, 2 * rounds + 1))
    notes = {h["version"]: h.get("quantlake.note", "") for h in lake.history("race_merge")}
    for who in ("A", "B"):
        for res in results[who]:
            assert notes[res["version"]] == f"writer {who} round {res['round']}"


@pytest.mark.slow
def test_two_processes_creating_the_same_table_20_times(lake: Lake, tmp_path: Path) -> None:
    check_creation_races(lake, tmp_path, rounds=20)


@pytest.mark.slow
def test_two_processes_merging_at_once_lose_no_commit_and_report_their_own_version(
    lake: Lake, tmp_path: Path
) -> None:
    check_merge_races(lake, tmp_path, rounds=6)
