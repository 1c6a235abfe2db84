"""Equity sweep throughput and memory: ``quantlake sweep`` (EMA crossover, every (fast 5-15, slow 15-30) pair
with fast < slow = 175 combinations, 20 years = 5,040 bars) next to its peers, in one process.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_equity.py                  # 100 symbols; sizes 10/50/100/200; 1,000
    .venv/bin/python benchmarks/bench_equity.py --symbols 20 --sizes 5,10,20,40 --big 0   # quick

What it prints (synthetic GBM bars, seeded, written to a temporary lake):

* **Throughput, one process.**  ``run_sweep`` end to end exactly as ``quantlake sweep --runner none`` runs
  it (bars read from the lake, signals, simulation, every metric per (combination, symbol), the combined
  returns, the summary, deflated Sharpe and PBO) on ``--symbols`` symbols; plain vectorbt
  ``Portfolio.from_signals`` over the same grid on ``--vbt-symbols`` of them, both in one call and one call
  per symbol, with the same signals (the EMAs seeded like TA-Lib/backtrader) and the same metrics through
  vectorbt's accessors; backtrader on a sample of the combinations (its own EMA/CrossOver indicators).
  Each figure is seconds per backtest; the ratios are what count on a busy machine.
* **Identical results, same run.**  backtrader's trades (dates, prices, sizes) and final values, the plain
  event loop's (:mod:`backtests.equity.reference`) and plain vectorbt's final values must equal the sweep's,
  or the script exits 1.
* **Scaling and memory.**  The sweep at four sizes, each in a fresh process (time, peak RSS of that process,
  and its RSS after imports), the fitted exponent of time against symbols, and a ``--big``-symbol sweep
  (its own lake, built in another process first).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console(width=150)
ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"fast": {"range": [5, 15]}, "slow": {"range": [15, 30]}, "rsi_filter": "off", "macd_confirm": False}
FEES, SLIPPAGE = 0.0005, 0.0005


def rss_mib() -> float:
    """This process's peak RSS (``VmHWM``).  Not ``getrusage().ru_maxrss``: Linux carries that over from the
    parent across fork + exec, so a child sweep reported the parent's peak (3.6 GiB for 5 symbols after the
    parent had run plain vectorbt)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = float("nan")
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def load() -> str:
    return "load {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def synthetic_frame(first: int, count: int, years: int, seed: int = 0) -> pd.DataFrame:
    """Long OHLCV rows of symbols ``first .. first + count - 1``: GBM closes, opens near them, highs/lows
    around both.  Each symbol has its own seeded stream, so a symbol is the same in every lake."""
    n = 252 * years
    idx = pd.bdate_range(end="2024-12-31", periods=n)
    frames = []
    for i in range(first, first + count):
        rng = np.random.default_rng([seed, i])
        close = 20 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n)))
        open_ = close * np.exp(rng.normal(0, 0.005, n))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
        frames.append(pd.DataFrame({"symbol": f"SYM{i:04d}", "date": idx.date, "open": open_, "high": high,
                                    "low": low, "close": close, "adj_close": close,
                                    "volume": rng.integers(100_000, 5_000_000, n).astype(float)}))  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    out["source"] = "synthetic"
    return out


def build_lake(path: Path, n_symbols: int, years: int) -> None:
    from quantlake.lake import Lake

    lake = Lake(path)
    for lo in range(0, n_symbols, 100):  # commits of 100 symbols keep the writer's memory small
        lake.merge("equity_bars", synthetic_frame(lo, min(100, n_symbols - lo), years))


def sweep_config(symbols: list[str], chunk_size: int = 10) -> Any:
    from backtests.equity.config import SweepConfig, validate

    return validate(SweepConfig, {"strategy": {"kind": "ema_cross", "params": PARAMS}, "symbols": symbols,
                                  "costs": {"fees": FEES, "slippage": SLIPPAGE}, "chunk_size": chunk_size})  # fmt: skip


def symbols(n: int) -> list[str]:
    return [f"SYM{i:04d}" for i in range(n)]


# --------------------------------------------------------------------------------------------- child
def child_sweep(lake_dir: str, n: int) -> None:
    """One sweep in this (fresh) process: JSON with its time and memory."""
    from backtests.equity.sweep import run_sweep
    from quantlake.lake import Lake

    lake = Lake(lake_dir)
    run_sweep(sweep_config(symbols(2)), lake)  # load the compiled kernels (not timed)
    base = current_rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_sweep(sweep_config(symbols(n)), lake)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"symbols": n, "seconds": secs, "cpu": cpu, "backtests": res.n_backtests,
                      "peak_mib": rss_mib(), "base_mib": base, "load": os.getloadavg()[0]}))  # fmt: skip


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------- peers
def plain_vectorbt(bars: Any, combos: pd.DataFrame, per_symbol: bool) -> tuple[float, np.ndarray]:
    """What a vectorbt user writes: signals (the same seeded EMAs), ``Portfolio.from_signals`` with next-open
    fills, and the sweep's metrics through vectorbt's accessors.  Returns (seconds, final values (C, S))."""
    import vectorbt as vbt

    from backtests.equity import indicators as ind
    from backtests.equity.strategies.base import per_value

    def one(close: np.ndarray, open_: np.ndarray) -> np.ndarray:
        fast = per_value(combos["fast"].to_numpy(), lambda w: ind.ema(close, w))
        slow = per_value(combos["slow"].to_numpy(), lambda w: ind.ema(close, w))
        n_rows = close.shape[0]
        entries = ind.crossed_above(fast, slow).reshape(n_rows, -1)
        exits = ind.crossed_below(fast, slow).reshape(n_rows, -1)
        del fast, slow
        lag_e = np.vstack([np.zeros((1, entries.shape[1]), bool), entries[:-1]])
        lag_x = np.vstack([np.zeros((1, exits.shape[1]), bool), exits[:-1]])
        n_c = len(combos)
        pf = vbt.Portfolio.from_signals(
            pd.DataFrame(np.tile(close, (1, n_c)), index=bars.index), lag_e, lag_x, price=np.tile(open_, (1, n_c)),
            fees=FEES, slippage=SLIPPAGE, init_cash=10_000.0, size=np.inf, freq="1D",
        )  # fmt: skip
        stats = [pf.total_return(), pf.annualized_return(), pf.sharpe_ratio(), pf.sortino_ratio(), pf.calmar_ratio(),
                 pf.max_drawdown(), pf.annualized_volatility(), pf.returns().vbt.returns.value_at_risk(),
                 pf.trades.win_rate(), pf.trades.profit_factor(), pf.trades.count(), pf.position_coverage()]  # fmt: skip
        del stats
        return pf.final_value().to_numpy()

    t0 = time.perf_counter()
    if per_symbol:
        finals = np.stack([one(bars.close[:, [s]], bars.open[:, [s]]) for s in range(len(bars.symbols))], axis=1)
    else:
        finals = one(bars.close, bars.open).reshape(len(combos), len(bars.symbols))
    return time.perf_counter() - t0, finals


def backtrader_sample(bars: Any, pairs: list[tuple[int, int]]) -> tuple[float, list[Any]]:
    from backtests.equity.btcheck import run_backtrader

    frame = pd.DataFrame({f: getattr(bars, f)[:, 0] for f in ("open", "high", "low", "close", "volume")}, index=bars.index)
    t0 = time.perf_counter()
    out = [run_backtrader(frame, "ema", f, s, fees=FEES, slippage=SLIPPAGE) for f, s in pairs]
    return (time.perf_counter() - t0) / len(pairs), out


def fit_exponent(sizes: list[int], seconds: list[float]) -> float:
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=100, help="symbols of the throughput sweep")
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--vbt-symbols", type=int, default=20, help="symbols plain vectorbt runs (each way)")
    ap.add_argument("--bt-combos", type=int, default=3, help="backtrader backtests (symbol 0, sampled pairs)")
    ap.add_argument("--ref-combos", type=int, default=12, help="combinations checked by the plain event loop")
    ap.add_argument("--sizes", default="10,50,100,200", help="symbol counts of the scaling runs")
    ap.add_argument("--big", type=int, default=1000, help="symbols of the large sweep (0: skip)")
    ap.add_argument("--child", nargs=2, metavar=("LAKE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--child-build", nargs=2, metavar=("LAKE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_sweep(args.child[0], int(args.child[1]))
        return 0
    if args.child_build:
        build_lake(Path(args.child_build[0]), int(args.child_build[1]), args.years)
        print(json.dumps({"built": int(args.child_build[1])}))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    n_lake = max([args.symbols, args.vbt_symbols, *sizes])
    console.print(f"[bold]bench_equity[/] {dt.datetime.now():%Y-%m-%d %H:%M} · {machine()} · {load()}")
    tmp = Path(tempfile.mkdtemp(prefix="ql-bench-equity-"))
    ok = True
    try:
        t0 = time.perf_counter()
        build_lake(tmp / "lake", n_lake, args.years)
        console.print(f"[dim]lake: {n_lake} symbols x {args.years} years written in {time.perf_counter() - t0:.1f} s[/]")
        import vectorbt  # noqa: F401

        from backtests.equity.reference import check_chunk
        from backtests.equity.sweep import ChunkTask, detail, prepare, run_sweep
        from quantlake.lake import Lake

        lake = Lake(tmp / "lake")
        run_sweep(sweep_config(symbols(2)), lake)  # kernels loaded from numba's cache (or compiled once)

        # ---- quantlake sweep, end to end
        cfg = sweep_config(symbols(args.symbols))
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_sweep(cfg, lake)
        ql_s, ql_cpu = time.perf_counter() - t0, time.process_time() - c0
        ql_bt = ql_s / res.n_backtests
        combos = res.combos
        bars = res.context["bars"]

        # ---- plain vectorbt, both ways, on the first --vbt-symbols symbols
        sub = bars.take(np.arange(args.vbt_symbols))
        vbt_one_s, finals_one = plain_vectorbt(sub, combos, per_symbol=False)
        vbt_per_s, finals_per = plain_vectorbt(sub, combos, per_symbol=True)
        n_vbt = args.vbt_symbols * len(combos)
        ours = res.table.set_index(["combo", "unit"])["final_value"]
        mine = np.array([[ours[(c, u)] for u in sub.symbols] for c in combos.index])
        vbt_diff = max(np.max(np.abs(finals_one / mine - 1)), np.max(np.abs(finals_per / mine - 1)))
        ok &= bool(vbt_diff < 1e-9)

        # ---- backtrader on a sample of the same combinations (symbol 0)
        rng = np.random.default_rng(0)
        pick = rng.choice(len(combos), size=min(args.bt_combos, len(combos)), replace=False)
        pairs = [(int(combos.iloc[k]["fast"]), int(combos.iloc[k]["slow"])) for k in pick]
        bt_s, bt_runs = backtrader_sample(bars, pairs)
        bt_same = True
        for k, ref in zip(pick, bt_runs, strict=True):
            combo = int(combos.index[k])
            det = detail(res, combo).trades
            det = det[det["unit"] == bars.symbols[0]].sort_values("entry_date", ignore_index=True)
            bt_same &= len(det) == len(ref.trades) > 10
            for v, t in zip(det.itertuples(), ref.trades, strict=False):
                bt_same &= v.entry_date == t.entry_date and abs(v.entry_price / t.entry_price - 1) < 1e-12
                bt_same &= abs(v.size / t.size - 1) < 1e-9
                if t.exit_date is not None:
                    bt_same &= v.exit_date == t.exit_date and abs(v.exit_price / t.exit_price - 1) < 1e-12
            bt_same &= abs(ours[(combo, bars.symbols[0])] / ref.final_value - 1) < 1e-9
        ok &= bt_same

        # ---- the plain event loop on symbol 0 x a sample of combinations
        _, tasks, _, _ = prepare(sweep_config(symbols(1)), lake)
        t = tasks[0]
        ref_pick = np.sort(rng.choice(len(combos), size=min(args.ref_combos, len(combos)), replace=False))
        check = check_chunk(ChunkTask(t.kind, t.bars, t.combos.iloc[ref_pick], t.costs, t.execution))
        ref_same = bool(check["same_bars"].all() and check["max_rel_diff"].max() < 1e-12
                        and check["final_rel_diff"].max() < 1e-12)  # fmt: skip
        ok &= ref_same
        load_after = load()

        tab = Table(title=f"EMA crossover sweep, {len(bars.index):,} bars x {len(combos)} combinations "
                          f"({args.symbols} symbols = {res.n_backtests:,} backtests)")  # fmt: skip
        for c in ("engine", "backtests", "seconds", "ms / backtest", "quantlake is"):
            tab.add_column(c, justify="left" if c == "engine" else "right")
        faster_vbt = min(vbt_one_s, vbt_per_s) / n_vbt
        rows = [
            ("quantlake sweep (end to end)", res.n_backtests, ql_s, ql_bt, "-"),
            ("plain vectorbt, one call", n_vbt, vbt_one_s, vbt_one_s / n_vbt, f"{vbt_one_s / n_vbt / ql_bt:,.1f}x faster"),
            ("plain vectorbt, per symbol", n_vbt, vbt_per_s, vbt_per_s / n_vbt, f"{vbt_per_s / n_vbt / ql_bt:,.1f}x faster"),
            ("backtrader (sample)", len(pairs), bt_s * len(pairs), bt_s, f"{bt_s / ql_bt:,.0f}x faster"),
        ]  # fmt: skip
        for name, n, s, per, ratio in rows:
            tab.add_row(name, f"{n:,}", f"{s:.2f}", f"{per * 1e3:.4f}", ratio)
        tab.caption = (f"sweep CPU time {ql_cpu:.1f} s ({ql_cpu / res.n_backtests * 1e3:.4f} ms/backtest); goals: >= 1,000x "
                       f"backtrader ({bt_s / ql_bt:,.0f}x), >= 3x the faster plain-vectorbt way "
                       f"({faster_vbt / ql_bt:.1f}x) · {load_after}")  # fmt: skip
        console.print(tab)
        chk = Table(title="identical results (same run)")
        chk.add_column("check")
        chk.add_column("result", justify="right")
        chk.add_row(f"backtrader: trades and final value, {len(pairs)} combinations", "same" if bt_same else "DIFFERENT")
        chk.add_row(f"event loop: trades and final value, {len(ref_pick)} combinations",
                    "same" if ref_same else "DIFFERENT")  # fmt: skip
        chk.add_row(f"plain vectorbt: final values, {n_vbt:,} backtests x 2 ways", f"max rel diff {vbt_diff:.1e}")
        console.print(chk)

        # ---- scaling and memory, each sweep in a fresh process
        scal = Table(title="scaling and memory (each sweep in a fresh process)")
        for c in ("symbols", "backtests", "seconds", "ms / backtest", "peak RSS MiB", "RSS after imports MiB", "load"):
            scal.add_column(c, justify="right")
        runs = [run_child("--child", str(tmp / "lake"), str(n)) for n in sizes]
        if args.big:
            t0 = time.perf_counter()
            run_child("--years", str(args.years), "--child-build", str(tmp / "big"), str(args.big))
            console.print(f"[dim]{args.big}-symbol lake written in {time.perf_counter() - t0:.0f} s[/]")
            runs.append(run_child("--child", str(tmp / "big"), str(args.big)))
        for r in runs:
            scal.add_row(f"{r['symbols']:,}", f"{r['backtests']:,}", f"{r['seconds']:.1f}",
                         f"{r['seconds'] / r['backtests'] * 1e3:.4f}", f"{r['peak_mib']:,.0f}",
                         f"{r['base_mib']:,.0f}", f"{r['load']:.1f}")  # fmt: skip
        expo = fit_exponent(sizes, [r["seconds"] for r in runs[: len(sizes)]])
        scal.caption = f"time ~ symbols^{expo:.2f} over {sizes} (goal <= 1.1) · {load()}"
        console.print(scal)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        console.print("[red]results differ: see the table above[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
