"""Option backtest speed: seconds per simulated year for a monthly strategy (CBOE-style put-write) and a
daily-managed iron condor on ^GSPC, and where the time goes.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_options.py                    # 10 years (2010-2019), profile 2 years
    .venv/bin/python benchmarks/bench_options.py --years 3 --no-profile

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
