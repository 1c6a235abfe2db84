"""Feature build time: the embedded sample data, and a synthetic universe (default 500 symbols x 20 years).

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_features.py                       # sample + 500 x 20y
    .venv/bin/python benchmarks/bench_features.py --symbols 100 --years 5 --skip-sample

For each lake it times, in one process:

* a **full build** of every feature table (the first one includes loading the numba kernels from their
  cache, reported separately as ``warm-up``),
* an **incremental build** after one new bar per symbol is appended (the daily case),
* an **incremental build** after one old bar of one symbol is corrected (a vendor revision),

and prints rows/s and the peak resident memory of the process.  Everything happens under a temporary
directory that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console(width=150)


def synthetic_bars(n_symbols: int, years: int, seed: int = 0) -> pd.DataFrame:
    """GBM OHLCV bars on business days for ``n_symbols`` symbols plus a mean-reverting ``^VIX`` series."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(end="2024-12-31", periods=252 * years)
    n = len(days)
    vix = np.empty(n)
    vix[0] = 18.0
    shocks = rng.normal(0.0, 0.07, n)
    for i in range(1, n):  # log-OU: the VIX mean-reverts to ~18 with jumps large enough to hit every regime
        vix[i] = np.exp(np.log(vix[i - 1]) + 0.03 * (np.log(18.0) - np.log(vix[i - 1])) + shocks[i])
    frames = [
        pd.DataFrame(
            {"symbol": "^VIX", "date": days.date, "close": vix, "high": vix * 1.03, "low": vix * 0.97}
        )
    ]
    vol = rng.uniform(0.15, 0.45, n_symbols)
    rets = rng.normal(0.0, 1.0, (n, n_symbols)) * (vol / np.sqrt(252.0)) + 0.0003
    close = 50.0 * np.exp(np.cumsum(rets, axis=0))
    span = np.abs(rng.normal(0.0, 1.0, (n, n_symbols))) * (vol / np.sqrt(252.0)) * close
    opens = close * np.exp(rng.normal(0.0, 0.003, (n, n_symbols)))
    high = np.maximum(np.maximum(close, opens) + 0.5 * span, 0.01)
    low = np.maximum(np.minimum(close, opens) - 0.5 * span, 0.005)
    volume = rng.lognormal(13.0, 0.4, (n, n_symbols)).round()
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    frames.append(
        pd.DataFrame(
            {
                "symbol": np.repeat(np.array(symbols, dtype=object)[None, :], n, axis=0).ravel(order="F"),
                "date": np.tile(days.date, n_symbols),
                "open": opens.ravel(order="F"),
                "high": high.ravel(order="F"),
                "low": low.ravel(order="F"),
                "close": close.ravel(order="F"),
                "adj_close": close.ravel(order="F"),
                "volume": volume.ravel(order="F"),
            }
        )
    )
    out = pd.concat(frames, ignore_index=True)
    out["source"] = "synthetic"
    return out


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_build(label: str, lake: object, rows_in: int, table: Table, full: bool = False) -> float:
    from features.build import build_features

    t0 = time.perf_counter()
    report = build_features(lake, full=full)  # type: ignore[arg-type]
    secs = time.perf_counter() - t0
    written = sum(r.written for r in report.results)
    computed = sum(r.rows for r in report.results)
    per_table = ", ".join(
        f"{r.table.removeprefix('features_')} {r.seconds:.1f}s" for r in report.results if r.mode != "skipped"
    )
    table.add_row(label, f"{rows_in:,}", f"{computed:,}", f"{written:,}", f"{secs:.2f}", per_table)
    return secs


def _bars_frame(lake: object) -> pd.DataFrame:
    # pandas, not a filtered lake query: see features.incremental.materialize for why
    return lake.arrow("equity_bars").drop_columns(["ingested_at"]).to_pandas()  # type: ignore[attr-defined, no-any-return]


def _new_day(lake: object) -> pd.DataFrame:
    """One more business day for every symbol: the last bar moved by +0.1 %."""
    bars = _bars_frame(lake)
    last = bars.sort_values(["symbol", "date"]).groupby("symbol").tail(1).copy()
    last["date"] = (pd.to_datetime(last["date"]) + pd.offsets.BDay(1)).dt.date
    for c in ("open", "high", "low", "close", "adj_close"):
        last[c] = last[c] * 1.001
    return last


def _revision(lake: object) -> pd.DataFrame:
    """One bar of the first (non-VIX) symbol, two years before its end, revised by +1 %."""
    bars = _bars_frame(lake)
    sym = sorted(set(bars["symbol"]) - {"^VIX"})[0]
    row = bars[bars["symbol"] == sym].sort_values("date").iloc[[-505]].copy()
    for c in ("close", "adj_close"):
        row[c] = row[c] * 1.01
    return row


def bench_lake(name: str, lake: object) -> Table:
    from features.build import build_features

    rows = lake.dataset("equity_bars").count_rows()  # type: ignore[attr-defined]
    t = Table(title=f"feature build: {name} ({rows:,} bars)")
    for col in ("build", "input bars", "rows computed", "rows written", "seconds", "per table"):
        t.add_column(col, justify="left" if col in ("build", "per table") else "right")
    t0 = time.perf_counter()
    import features.kernels as k  # loading the cached numba kernels is a one-off per process

    x = np.zeros(2)
    k.ema_segments(x, np.array([0, 2]), 2, 0.5, np.full(1, np.nan), np.zeros(1, np.int64), np.empty(2))
    t.add_row("warm-up (import + numba cache)", "", "", "", f"{time.perf_counter() - t0:.2f}", "")
    _time_build("full (first build)", lake, rows, t)
    _time_build("full again (--full)", lake, rows, t, full=True)
    lake.merge("equity_bars", _new_day(lake))  # type: ignore[attr-defined]
    _time_build("incremental: +1 day, all symbols", lake, rows, t)
    lake.merge("equity_bars", _revision(lake))  # type: ignore[attr-defined]
    _time_build("incremental: 1 old bar revised", lake, rows, t)
    report = build_features(lake)  # type: ignore[arg-type]
    assert all(r.mode in ("up to date", "skipped") for r in report.results), report.as_dicts()
    t.caption = f"peak RSS of the process so far: {_rss_mib():,.0f} MiB"
    return t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--skip-sample", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args(argv)

    from quantlake.lake import Lake

    tmp = Path(tempfile.mkdtemp(prefix="ql-bench-features-"))
    try:
        console.print(f"[dim]{dt.datetime.now():%Y-%m-%d %H:%M} · temp lakes under {tmp}[/]")
        if not args.skip_sample:
            from quantlake.ingest import ingest_sample_all

            sample = Lake(tmp / "sample")
            ingest_sample_all(sample, progress=False)
            console.print(bench_lake("sample data", sample))
        if not args.skip_synthetic:
            t0 = time.perf_counter()
            bars = synthetic_bars(args.symbols, args.years)
            syn = Lake(tmp / "synthetic")
            syn.merge("equity_bars", bars)
            console.print(
                f"[dim]synthetic universe: {args.symbols} symbols x {args.years} years = {len(bars):,} bars "
                f"written in {time.perf_counter() - t0:.1f} s[/]"
            )
            del bars
            console.print(bench_lake(f"synthetic {args.symbols} symbols x {args.years} years", syn))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
