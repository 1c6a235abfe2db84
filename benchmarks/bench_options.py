"""Option backtest speed: a 100-trial sweep's time per trial next to one standalone backtest of the same
configuration; seconds per simulated year for a monthly strategy (CBOE-style put-write) and a daily-managed
iron condor on ^GSPC, and where the time goes.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_options.py                    # everything
    .venv/bin/python benchmarks/bench_options.py --part sweep       # only the sweep vs standalone comparison
    .venv/bin/python benchmarks/bench_options.py --part years --years 3 --no-profile

**Sweep vs standalone** (``--part sweep``): the put-credit-spread sweep of
``configs/options_sweep/put_credit_spread_sweep_gspc.yaml`` (100 trials: short-put delta × width × profit target,
^GSPC 2008-2018, modeled chains) runs on a local Dask cluster of ``--workers`` processes (one thread each: the
flow's ``--runner dask``), without MLflow; then, in this process, one standalone backtest of the trial with the
base settings (delta 0.20, width 2 %, profit target 0.5) exactly as ``quantlake options-backtest`` runs it (its
own ``ChainProvider``).  Printed side by side: the sweep's wall time, wall time per trial, the mean time a
trial took inside its worker (one core; the trial that first needed a day's chain paid for building it), the
standalone run's time, and the ratios (goal: a trial ≤ 1/5 of a standalone run, the sweep ≤ 5 minutes on 2
cores).  The selected trial's final equity is checked against its standalone run in the same process.

The sample data is ingested into a temporary ``QUANTLAKE_HOME`` (deleted afterwards).  Each strategy runs on
modeled chains (``features.chains.ChainProvider``, the production path: ^GSPC has no observed chain history in
the sample data, so every bar builds a modeled chain), with the chain source wrapped in a stopwatch so the
time spent building chains is split from the backtester's own (backtrader, normalisation, Greeks, selection,
fills, margin, records).  It runs twice: with the modeled chain limited to the expiries the strategy can hold
(:func:`backtests.options.runner.chain_months`, the default) and with the chain's full 12 months.  Then once
under ``cProfile`` over ``--profile-years`` to split the time further.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console(width=150)

STRATEGIES: dict[str, dict[str, Any]] = {
    "put_write (monthly)": {"kind": "put_write"},
    "iron_condor (daily-managed)": {"kind": "iron_condor", "exits": {"exit_regimes": []}},
}
# (label, file suffix, function name): cumulative time of these entry points in the profile
AREAS = [
    ("chain model: ChainProvider.chain (features.chains)", "features/chains.py", "chain"),
    ("chain -> numpy columns (quotes._columns)", "backtests/options/quotes.py", "_columns"),
    ("normalise rows, solve missing IVs (quotes._Arrays)", "backtests/options/quotes.py", "__init__"),
    ("Black-Scholes Greeks of marked/selected legs (quotes.greeks)", "backtests/options/quotes.py", "greeks"),
    ("strategy decisions incl. contract selection", "backtests/options/strategies/spreads.py", "on_bar"),
    ("strategy decisions incl. contract selection", "backtests/options/strategies/income.py", "on_bar"),
    ("margin requirement (engine.excess)", "backtests/options/engine.py", "excess"),
    ("engine per bar (everything above, fills, records)", "backtests/options/engine.py", "on_bar"),
]


def _config(strategy: dict[str, Any], start: dt.date, end: dt.date) -> Any:
    from backtests.options.config import parse_config

    return parse_config({"name": "bench", "underlying": "^GSPC", "start": start.isoformat(), "end": end.isoformat(),
                         "strategy": strategy, "outputs": {"plots": False}})


class TimedChains:
    """A chain source that keeps the time spent in its ``chain`` calls."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.cpu, self.calls = inner, 0.0, 0

    def chain(self, underlying: str, date: dt.date, mode: str = "auto") -> Any:
        t0 = time.process_time()
        try:
            return self.inner.chain(underlying, date, mode)
        finally:
            self.cpu += time.process_time() - t0
            self.calls += 1


def _run(cfg: Any, lake: Any, chains: Any = None) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result): on a shared machine the CPU time is the steadier
    figure (numpy/numba may use a second thread; this backtester is single-threaded Python)."""
    from backtests.options.runner import run_backtest

    t0, c0 = time.perf_counter(), time.process_time()
    res = run_backtest(cfg, lake, chains=chains)
    return time.perf_counter() - t0, time.process_time() - c0, res


def _areas(stats: pstats.Stats) -> dict[str, float]:
    out: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in raw.items():
        for label, suffix, name in AREAS:
            if func == name and file.endswith(suffix):
                out[label] = out.get(label, 0.0) + ct
    return out


SWEEP_CONFIG = Path(__file__).resolve().parent.parent / "configs/options_sweep/put_credit_spread_sweep_gspc.yaml"
BASE_TRIAL = {"short_put.value": 0.20, "width.pct": 0.02, "exits.profit_target": 0.5}


def sweep_vs_standalone(lake: Any, workers: int) -> None:
    """The sweep/standalone comparison (see the module docstring)."""
    from distributed import Client, LocalCluster

    from backtests.options.sweep.config import expand, load_sweep_config
    from backtests.options.sweep.research import run_option_sweep
    from backtests.research.runner import use_runner

    cfg = load_sweep_config(SWEEP_CONFIG)
    cfg = cfg.model_copy(update={"walkforward": None, "montecarlo": None})
    trials = expand(cfg)
    base = trials.params.index[(trials.params[list(BASE_TRIAL)] == pd.Series(BASE_TRIAL)).all(axis=1)][0]
    load0 = os.getloadavg()[0]
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        def dask_runner(fn: Any, items: Any) -> list[Any]:
            return list(client.gather(client.map(fn, items, pure=False)))

        t0 = time.perf_counter()
        with use_runner(dask_runner):
            res = run_option_sweep(cfg, lake)
        sweep_wall = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    wall, cpu, alone = _run(trials.configs[base], lake)  # its own ChainProvider: the standalone run
    load2 = os.getloadavg()[0]
    n = len(res.trials)
    inside, inside_cpu = float(np.mean(res.trial_seconds)), float(np.mean(res.trial_cpu_seconds))
    t = Table(title=f"{n}-trial put-credit-spread sweep vs one standalone backtest, ^GSPC {cfg.start}..{cfg.end}, "
                    f"{workers} Dask worker processes")
    for col in ("", "wall s", "CPU s", "ratio (wall)", "ratio (CPU)", "goal"):
        t.add_column(col, justify="left" if not col else "right")
    t.add_row("standalone options-backtest (1 process)", f"{wall:.2f}", f"{cpu:.2f}", "1", "1", "")
    t.add_row("a trial inside the sweep (mean, 1 core)", f"{inside:.2f}", f"{inside_cpu:.2f}",
              f"{inside / wall:.3f}", f"{inside_cpu / cpu:.3f}", "<= 0.2")
    t.add_row(f"sweep wall / {n} trials ({workers} cores)", f"{sweep_wall / n:.2f}", "", f"{sweep_wall / n / wall:.3f}",
              "", "")
    t.add_row("whole sweep", f"{sweep_wall:.1f}", f"{sum(res.trial_cpu_seconds):.1f}", "", "", "<= 300 s")
    console.print(t)
    swept, own = float(res.trials.loc[base, "final_equity"]), float(alone.metrics["final_equity"])
    same = abs(swept - own) <= 1e-9 * max(1.0, abs(own))
    console.print(f"chunks {len(res.chunk_seconds)} (longest {max(res.chunk_seconds):.1f} s); "
                  f"trial {base} final equity in the sweep {res.trials.loc[base, 'final_equity']:,.2f} vs standalone "
                  f"{alone.metrics['final_equity']:,.2f} ({'equal' if same else 'DIFFERENT'}); load average "
                  f"{load0:.1f} / {load1:.1f} / {load2:.1f} (start / after the sweep / after the standalone run) on "
                  f"{os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("all", "sweep", "years"), default="all")
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes of the sweep")
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2019, 12, 31))
    ap.add_argument("--profile-years", type=int, default=2)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_options_"))
    os.environ["QUANTLAKE_HOME"] = str(tmp)
    try:
        from quantlake.config import quiet_environment

        quiet_environment()
        from quantlake.ingest import ingest_sample_all
        from quantlake.lake import Lake

        t0 = time.perf_counter()
        lake = Lake(tmp / "lake")
        ingest_sample_all(lake, progress=False)
        console.print(f"sample data ingested in {time.perf_counter() - t0:.1f} s")
        start = dt.date(args.end.year - args.years + 1, 1, 1)
        _run(_config({"kind": "put_write"}, dt.date(2019, 1, 1), dt.date(2019, 2, 28)), lake)  # imports, JIT
        if args.part in ("all", "sweep"):
            sweep_vs_standalone(lake, args.workers)
        if args.part == "sweep":
            return

        t = Table(title=f"^GSPC {start}..{args.end} ({args.years} years of daily bars), one process, 1 core")
        for col in ("strategy", "modeled chain", "bars", "wall s", "CPU s", "CPU s / sim. year", "of which chains",
                    "backtester", "CPU ms / bar", "positions", "leg-days modeled"):
            t.add_column(col, justify="left" if col in ("strategy", "modeled chain") else "right")
        from backtests.options.runner import chain_months, default_chain_source
        from backtests.options.strategies import build_strategy

        for label, strat in STRATEGIES.items():
            cfg = _config(strat, start, args.end)
            horizon = getattr(build_strategy(cfg.strategy), "horizon_days", None)
            for months in sorted({chain_months(horizon), 12}):
                chains = TimedChains(default_chain_source(lake, None if months == 12 else horizon))
                wall, cpu, res = _run(cfg, lake, chains)
                years, bars = res.metrics["years"], int(res.metrics["bars"])
                t.add_row(label, f"{months} months", f"{bars:,}", f"{wall:.1f}", f"{cpu:.1f}", f"{cpu / years:.2f}",
                          f"{chains.cpu / years:.2f}", f"{(cpu - chains.cpu) / years:.2f}",
                          f"{1000 * cpu / bars:.1f}", f"{int(res.metrics['positions'])}",
                          f"{res.leg_days['modeled']:,}")
        console.print(t)
        console.print("CPU s / simulated year = of which chains (ChainProvider.chain) + backtester (the rest); "
                      f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

        if args.no_profile:
            return
        pstart = dt.date(args.end.year - args.profile_years + 1, 1, 1)
        for label, strat in STRATEGIES.items():
            cfg = _config(strat, pstart, args.end)
            prof = cProfile.Profile()
            prof.enable()
            secs, _, _ = _run(cfg, lake)
            prof.disable()
            areas = _areas(pstats.Stats(prof))
            p = Table(title=f"where the time goes: {label}, {pstart}..{args.end} under cProfile ({secs:.1f} s)")
            p.add_column("area (cumulative, nested areas overlap)")
            p.add_column("seconds", justify="right")
            p.add_column("share of the run", justify="right")
            for area, ct in sorted(areas.items(), key=lambda kv: -kv[1]):
                p.add_row(area, f"{ct:.2f}", f"{ct / secs:.0%}")
            console.print(p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
