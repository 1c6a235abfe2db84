"""Wall time of an ordinary command: ``quantlake ingest equity`` of a 5-row CSV file, warm, per way of
running its Prefect flow.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_cli.py            # 3 timed runs per mode after one warm-up
    .venv/bin/python benchmarks/bench_cli.py --runs 5 --modes no-flow,in-process

Modes (each a fresh ``quantlake`` process, as a user types it; the lake and ``$QUANTLAKE_HOME/prefect``
database are warm after the warm-up run):

* ``no-flow``: ``--no-flow``, Prefect is never imported;
* ``background``: the default: the warm-up command starts this home's background Prefect server
  (:mod:`quantlake.prefect_server`), the timed commands report to it (stopped after);
* ``in-process``: Prefect's API in a thread of each command (``QUANTLAKE_PREFECT_SERVER=in-process``);
* ``subprocess``: Prefect's own default, a temporary server subprocess per command
  (``QUANTLAKE_PREFECT_SERVER=subprocess``), what every command did before;
* ``home-server``: ``quantlake ui prefect`` running for this home (started here, stopped after).

Prints the median per mode, its ratio to ``subprocess`` and the machine load (``os.getloadavg``): on the
shared 2-core machine the absolute figures move with the load, the ratios much less.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QL = [sys.executable, "-m", "quantlake.cli"]
MODES = ("no-flow", "background", "in-process", "subprocess", "home-server")
CSV = (
    "date,open,high,low,close,volume\n2024-01-02,10,11,9,10.5,1000\n2024-01-03,10.5,11,10,10.8,1200\n"
    "2024-01-04,10.8,11.2,10.1,11,900\n2024-01-05,11,11.5,10.7,11.2,1100\n2024-01-08,11.2,11.9,11,11.8,1500\n"
)


def _env(home: Path, mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "QUANTLAKE_PREFECT_SERVER"}
    env.update({"QUANTLAKE_HOME": str(home), "COLUMNS": "100", "QUANTLAKE_USER_PREFECT_HOME": str(home / "none")})
    if mode in ("subprocess", "in-process"):
        env["QUANTLAKE_PREFECT_SERVER"] = mode
    return env


def _ingest(home: Path, data: Path, mode: str) -> float:
    args = [*QL, "ingest", "equity", "--source", "csv", "--path", str(data), "--no-progress"]
    if mode == "no-flow":
        args.append("--no-flow")
    t0 = time.perf_counter()
    res = subprocess.run(args, env=_env(home, mode), capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{mode}: exit {res.returncode}\n{res.stderr[-2000:]}")
    return elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_ui(home: Path) -> subprocess.Popen[bytes]:
    port = _free_port()
    proc = subprocess.Popen([*QL, "ui", "prefect", "--port", str(port)], env=_env(home, "home-server"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    raise SystemExit("quantlake ui prefect did not start within 300 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = set(modes) - set(MODES)
    if bad:
        raise SystemExit(f"unknown mode(s) {sorted(bad)}; choose from {', '.join(MODES)}")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        data = Path(tmp) / "csv"
        data.mkdir()
        (data / "ABC.csv").write_text(CSV)
        for mode in modes:
            home = Path(tmp) / f"home-{mode}"
            ui = _start_ui(home) if mode == "home-server" else None
            try:
                _ingest(home, data, mode)  # warm-up: creates the lake table and the Prefect database
                results[mode] = [_ingest(home, data, mode) for _ in range(args.runs)]
            finally:
                if mode == "background":
                    subprocess.run([*QL, "ui", "prefect", "--stop"], env=_env(home, mode), cwd=ROOT,
                                   capture_output=True, timeout=120)
                if ui is not None:
                    ui.send_signal(signal.SIGTERM)
                    ui.wait(timeout=60)
            print(f"{mode:12s} runs: " + ", ".join(f"{t:.1f}" for t in results[mode]) + " s", flush=True)
    load = os.getloadavg()
    print(f"\n5-row CSV ingest, warm, median of {args.runs} (load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}):")
    base = statistics.median(results["subprocess"]) if "subprocess" in results else None
    for mode, times in results.items():
        med = statistics.median(times)
        ratio = f"  {med / base:.2f}x of subprocess" if base else ""
        print(f"  {mode:12s} {med:7.1f} s{ratio}")


if __name__ == "__main__":
    main()
