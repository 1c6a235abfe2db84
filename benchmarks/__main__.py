"""Run every benchmark script in this folder (``make bench`` / ``python -m benchmarks [NAME ...]``).

Benchmarks print figures (throughput, errors against references, peak memory); they are run on demand and
never fail because a machine is slow.  Each ``bench_*.py`` runs in its own process with its default
arguments, so one benchmark's memory peak does not inflate the next one's.  Pass names (``pricing``,
``features`` ...) to run only those; run a script directly to see its own options (``--help``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        wanted = {a.removeprefix("bench_").removesuffix(".py") for a in argv}
        unknown = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            names = ", ".join(s.stem.removeprefix("bench_") for s in scripts)
            print(f"error: unknown benchmark(s) {sorted(unknown)}; available: {names}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    failed: list[str] = []
    for script in scripts:
        print(f"\n=== {script.name} " + "=" * max(0, 70 - len(script.name)), flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.name}: exit {rc}, {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        print(f"benchmarks that crashed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
