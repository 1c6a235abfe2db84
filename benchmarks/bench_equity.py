"""Equity sweep throughput: EMA crossover on 100 symbols x 20 years x every (fast 5-15, slow 15-30) pair with
fast < slow (175 pairs = 17,500 backtests), against the same single backtest in backtrader.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_equity.py                     # 100 symbols, 20 years, chunks of 10
    .venv/bin/python benchmarks/bench_equity.py --symbols 20 --chunk-size 20

Synthetic GBM bars (seeded).  The vectorbt figure is end to end per chunk, exactly what a sweep runs: signals
(EMA seeded like TA-Lib/backtrader), one ``Portfolio.from_signals`` call for all (pair, symbol) columns of the
chunk, value and trade statistics, every metric per column.  The first chunk also loads the numba kernels
(compiled once per machine, then read from numba's cache) and is reported as warm-up.  Peak memory is the
process's peak resident set (``ru_maxrss``) and its growth over the baseline measured after the warm-up.
The backtrader backtest (its own EMA/CrossOver indicators, next-open fills, same costs) is checked against
vectorbt's column for the same symbol and pair: identical trades and final value, or the script exits 1.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console(width=140)


def synthetic_bars(n_symbols: int, years: int, seed: int = 0):  # type: ignore[no-untyped-def]
    from backtests.equity.data import Bars

    rng = np.random.default_rng(seed)
    n = 252 * years
    idx = pd.bdate_range(end="2024-12-31", periods=n)
    close = 20 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, (n, n_symbols)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.005, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, close.shape)))
    vol = rng.integers(100_000, 5_000_000, close.shape).astype(float)
    return Bars(idx, tuple(f"SYM{i:03d}" for i in range(n_symbols)), open_, high, low, close, vol)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--chunk-size", type=int, default=10, help="symbols per vectorized call")
    ap.add_argument("--bt-runs", type=int, default=2, help="backtrader repetitions (best time is used)")
    args = ap.parse_args(argv)

    t_import = time.perf_counter()
    import vectorbt  # noqa: F401

    from backtests.equity.btcheck import run_backtrader
    from backtests.equity.config import SweepConfig, validate
    from backtests.equity.params import combinations
    from backtests.equity.sweep import ChunkTask, run_chunk, simulate_chunk

    t_import = time.perf_counter() - t_import
    cfg = validate(SweepConfig, {
        "strategy": {"kind": "ema_cross", "params": {"fast": {"range": [5, 15]}, "slow": {"range": [15, 30]},
                                                     "rsi_filter": "off", "macd_confirm": False}},
        "costs": {"fees": 0.0005, "slippage": 0.0005}, "chunk_size": args.chunk_size,
    })  # fmt: skip
    combos = combinations(cfg.strategy, cfg.costs, cfg.search)
    bars = synthetic_bars(args.symbols, args.years)
    n_rows = len(bars.index)
    chunks = [np.arange(i, min(i + args.chunk_size, args.symbols)) for i in range(0, args.symbols, args.chunk_size)]
    tasks = [ChunkTask("ema_cross", bars.take(ix), combos, cfg.costs, cfg.execution, chunk_id=i)
             for i, ix in enumerate(chunks)]  # fmt: skip
    console.print(f"{args.symbols} symbols x {n_rows} bars x {len(combos)} (fast, slow) pairs = "
                  f"{args.symbols * len(combos):,} backtests in {len(tasks)} chunks of {args.chunk_size} "
                  f"symbols ({args.chunk_size * len(combos):,} columns per vectorbt call); "
                  f"vectorbt import {t_import:.1f} s")  # fmt: skip

    t0 = time.perf_counter()
    first = run_chunk(tasks[0])
    warm = time.perf_counter() - t0
    base = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    done = [run_chunk(t) for t in tasks[1:]]
    rest, rest_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = rss_mib()
    n_rest = sum(r.n_backtests for r in done)
    vbt_rate = n_rest / rest if rest > 0 else float("nan")
    vbt_cpu_rate = n_rest / rest_cpu if rest_cpu > 0 else float("nan")
    # steady-state rate; the first chunk is timed again now that the kernels are loaded
    t0 = time.perf_counter()
    run_chunk(tasks[0])
    first_again = time.perf_counter() - t0

    # the same single backtest in backtrader: symbol 0, fast 10, slow 30
    one = combos[(combos["fast"] == 10) & (combos["slow"] == 30)]
    sym = bars.take([0])
    frame = pd.DataFrame({f: getattr(sym, f)[:, 0] for f in ("open", "high", "low", "close", "volume")},
                         index=sym.index)  # fmt: skip
    bt_times, bt_cpu = [], []
    for _ in range(max(1, args.bt_runs)):
        t0, c0 = time.perf_counter(), time.process_time()
        ref = run_backtrader(frame, "ema", 10, 30, fees=0.0005, slippage=0.0005)
        bt_times.append(time.perf_counter() - t0)
        bt_cpu.append(time.process_time() - c0)
    bt_s, bt_cpu_s = min(bt_times), min(bt_cpu)
    sim = simulate_chunk(ChunkTask("ema_cross", sym, one, cfg.costs, cfg.execution))
    rec = sim.pf.trades.values
    same = len(rec) == len(ref.trades) and all(
        sym.index[v["entry_idx"]] == t.entry_date and abs(v["entry_price"] / t.entry_price - 1) < 1e-12
        for v, t in zip(rec, ref.trades, strict=False)
    )
    final_diff = abs(sim.value[-1, 0] / ref.final_value - 1)

    per_bt_vbt = 1.0 / vbt_rate
    t = Table(title="EMA crossover sweep: vectorbt vs backtrader")
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        ("vectorbt backtests/s (steady state, end to end per chunk)", f"{vbt_rate:,.0f} wall, {vbt_cpu_rate:,.0f} per CPU-s"),
        ("vectorbt whole sweep incl. warm-up chunk", f"{warm + rest:.1f} s"),
        ("warm-up chunk (kernel load / first compile)", f"{warm:.1f} s (again, warm: {first_again:.2f} s)"),
        ("backtrader, one backtest (best of runs)", f"{bt_s:.2f} s wall, {bt_cpu_s:.2f} CPU-s"),
        ("speed-up per backtest (backtrader / vectorbt)",
         f"{bt_s / per_bt_vbt:,.0f}x wall, {bt_cpu_s * vbt_cpu_rate:,.0f}x CPU time"),
        ("peak RSS", f"{peak:,.0f} MiB (baseline after warm-up {base:,.0f} MiB, +{peak - base:,.0f} MiB)"),
        ("backtrader == vectorbt (trades, prices)", f"{same} ({len(ref.trades)} trades)"),
        ("final value relative difference", f"{final_diff:.1e}"),
    ]
    for r in rows:
        t.add_row(*r)
    console.print(t)
    del first
    return 0 if same and final_diff < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
