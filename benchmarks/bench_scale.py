"""Sweep wall time: the local runner vs an existing Dask cluster of 2 workers on this machine (issue 14).

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_scale.py                    # sample EMA-cross sweep, 3 symbols
    .venv/bin/python benchmarks/bench_scale.py --symbols 8 --repeat 2

A temporary QUANTLAKE_HOME gets the embedded sample data; the same sweep config (one symbol per chunk) runs
through the ``equity-research`` Prefect flow three ways in this one process: the thread runner (2 threads),
``--runner none`` (sequential, no Prefect), and ``--dask-address`` of a ``dask scheduler`` with two
single-threaded ``dask worker`` processes started here.  Each runs ``--repeat`` times after one warm-up run
(the first Prefect flow run pays the ephemeral server start; vectorbt compiles once); the best time counts.
The ratio dask / thread is the cost of fanning the chunks out over a cluster for work this small; the
metrics of every run are checked identical, or the script exits 1.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=120)
SYMBOLS = ["SPY", "AAPL", "GOOG", "MSFT", "AMZN", "GS", "GDX", "GLD", "INTC"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"dask scheduler did not start on {port}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    os.environ["QUANTLAKE_HOME"] = str(home)
    os.environ.pop("QUANTLAKE_LAKE_URI", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from quantlake.config import quiet_environment

    quiet_environment()
    from quantlake.ingest import ingest_equity
    from quantlake.lake import Lake
    from quantlake.sources.sample import SampleSource

    symbols = SYMBOLS[: max(1, min(args.symbols, len(SYMBOLS)))]
    ingest_equity(Lake(), SampleSource(), symbols=symbols, progress=False)
    config = {
        "name": "bench-scale",
        "strategy": {"kind": "ema_cross", "params": {"fast": {"range": [5, 15]}, "slow": {"range": [20, 50], "step": 5}}},
        "symbols": symbols, "start": "2010-01-01", "end": "2017-12-31",
        "costs": {"fees": 0.0005}, "metric": "sharpe", "chunk_size": 1,
    }
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait(port)
        for i in range(2):
            procs.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"bench-{i}",
                 "--local-directory", str(home / f"w{i}")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=120) as c:
            c.wait_for_workers(2, timeout=180)
        from backtests.equity.jobs import summary
        from flows.equity_sweep import run_equity_flow
        from tracking.jobs import run_job

        def local_none() -> dict[str, float]:
            return dict(summary(run_job("equity.sweep", config, Lake()))["metrics"])

        def flow(runner: str, dask_address: str | None = None) -> dict[str, float]:
            out = run_equity_flow(config, runner=runner, workers=2, dask_address=dask_address)
            return dict(out["metrics"])

        ways = {
            "sequential (--runner none)": local_none,
            "threads (--runner thread, 2)": lambda: flow("thread"),
            "dask cluster (2 workers, --dask-address)": lambda: flow("dask", address),
        }
        times: dict[str, float] = {}
        metrics: dict[str, dict[str, float]] = {}
        for name, fn in ways.items():
            metrics[name] = fn()  # warm-up: Prefect server, numba cache, worker imports
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                metrics[name] = fn()
                best = min(best, time.perf_counter() - t0)
            times[name] = best
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    ref = next(iter(metrics.values()))
    same = all(m == ref for m in metrics.values())
    n_combos = 11 * 7
    t = Table(title=f"sweep: {n_combos} combinations x {len(symbols)} symbols, chunk = 1 symbol "
                    f"(load {os.getloadavg()[0]:.1f})")
    t.add_column("runner")
    t.add_column("wall s", justify="right")
    t.add_column("vs threads", justify="right")
    base = times["threads (--runner thread, 2)"]
    for name, sec in times.items():
        t.add_row(name, f"{sec:.2f}", f"{sec / base:.2f}x")
    console.print(t)
    console.print(f"ratio dask cluster / local threads: {times['dask cluster (2 workers, --dask-address)'] / base:.2f}; "
                  f"metrics identical across runners: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
