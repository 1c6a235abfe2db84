"""Feature build time: the embedded sample data, and a synthetic universe (default 500 symbols x 20 years).

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_features.py                       # sample + 500 x 20y
    .venv/bin/python benchmarks/bench_features.py --symbols 100 --years 5 --skip-sample

For each lake it times, in one process:

* a **full build** of every feature table (the first one includes loading the numba kernels from their
  cache, reported separately as ``warm-up``),
* an **incremental build** after one new bar per symbol is appended (the daily case),
* an **incremental build** after one old bar of one symbol is corrected (a vendor revision),

each with its time and the process's peak resident memory while it ran, plus one more full build in a fresh
Python process (``--child-build``): the peak a user's ``quantlake features build --full`` has, without the
synthetic bars and earlier builds this process still holds.

Next to it, on the synthetic universe at four sizes (default 50/100/200/500 symbols), the **polars peer**
(:mod:`benchmarks.polars_features`: the same ``features_technical`` and ``features_regime`` columns written
in polars after the SQL headers' definitions): the full build of those two tables (numba kernels warm, Delta
commit included) against polars reading the same bars from the lake and computing both tables (no write),
the ratio, the peak RSS of each phase (the process's high-water mark reset before each, so it includes what
the process already held), and the fitted exponent of time against symbols.  Every column of both tables
must equal polars' to 1e-9 (relative to max(1, |value|), NULL where polars has NULL) in the same run, or the
script exits 1.  Everything happens under a temporary directory that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: the benchmarks package from the checkout

from benchmarks.bench_equity import load, machine, rss_mib  # noqa: E402

console = Console(width=150)
T = TypeVar("T")
TECH_REGIME = ("features_technical", "features_regime")
TOLERANCE = 1e-9


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


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux ``clear_refs`` 5); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    """The process's peak RSS since the last :func:`_reset_peak` (``VmHWM``), else since it started."""
    return rss_mib()


def _release_freed() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc keeps it otherwise: the synthetic bars'
    pandas frames would count in the next phase's peak although nothing references them)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss_now_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _phase(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall time and the peak RSS while it ran (of the whole process: it includes what the
    process held before, see the ``RSS before`` column)."""
    _release_freed()
    _reset_peak()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, _peak_mib()


def polars_tables(lake: object) -> dict[str, Any]:
    """The polars peer's two tables from the lake's ``equity_bars`` (read included)."""
    import polars as pl

    from benchmarks import polars_features as pf
    from features.settings import FeatureSettings

    bars = pl.from_arrow(lake.arrow("equity_bars").drop_columns(["ingested_at"]))  # type: ignore[attr-defined]
    assert isinstance(bars, pl.DataFrame)
    rules = FeatureSettings().regime
    return {
        "features_technical": pf.technical(bars.filter(pl.col("close").is_not_null())),
        "features_regime": pf.regime(
            bars.filter(pl.col("close").is_not_null()), rules.model_dump(), rules.vix_symbol
        ),
    }


def max_difference(lake: object, peer: dict[str, Any]) -> tuple[float, list[str]]:
    """Largest difference between the build's tables and polars' over every column (relative to
    max(1, |value|)), and the problems found (row counts, columns, NULL positions, labels)."""
    import polars as pl

    worst, problems = 0.0, []
    for name in TECH_REGIME:
        built = pl.from_arrow(lake.arrow(name))  # type: ignore[attr-defined]
        assert isinstance(built, pl.DataFrame)
        built = built.sort("symbol", "date")
        other = peer[name].sort("symbol", "date")
        if built.shape != other.shape or set(built.columns) != set(other.columns):
            problems.append(f"{name}: shape {built.shape} vs polars {other.shape}")
            continue
        if not built["date"].equals(other["date"]) or not built["symbol"].equals(other["symbol"]):
            problems.append(f"{name}: different (symbol, date) rows")
            continue
        for col in built.columns:
            x, y = built[col], other[col]
            if x.dtype == pl.Float64:
                a, b = x.fill_null(np.nan).to_numpy(), y.cast(pl.Float64).fill_null(np.nan).to_numpy()
                na, nb = np.isnan(a), np.isnan(b)
                if (na != nb).any():
                    problems.append(
                        f"{name}.{col}: NULL at {int((na != nb).sum())} rows where the other has a value"
                    )
                ok = ~na & ~nb
                if ok.any():
                    worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(1.0, np.abs(a[ok])))))
            elif not x.cast(pl.String).equals(y.cast(pl.String)):
                problems.append(f"{name}.{col}: values differ")
    return worst, problems


def fitted_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log(time) against log(symbols) (1.0 = linear)."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def bench_polars(sizes: list[int], years: int, tmp: Path) -> tuple[Table, bool]:
    """The build of features_technical + features_regime next to polars at each size."""
    from features.build import build_features
    from quantlake.lake import Lake

    t = Table(title=f"features_technical + features_regime: full build vs polars ({years} years of bars)")
    for col in ("symbols", "bars", "build s", "polars s", "build / polars", "RSS before MiB", "build peak MiB",
                "polars peak MiB", "max |diff|"):  # fmt: skip
        t.add_column(col, justify="right")
    ok = True
    b_secs, p_secs = [], []
    for n in sizes:
        lake = Lake(tmp / f"polars-{n}")
        bars = synthetic_bars(n, years)
        rows = len(bars)
        lake.merge("equity_bars", bars)
        del bars
        build_features(lake, tables=TECH_REGIME, full=True)  # the lake's first build: kernels warm after it
        _release_freed()
        before = _rss_now_mib()
        _, tb, mb = _phase(partial(build_features, lake, tables=TECH_REGIME, full=True))
        peer, tp, mp = _phase(partial(polars_tables, lake))
        diff, problems = max_difference(lake, peer)
        del peer
        for p in problems:
            console.print(f"[red]MISMATCH[/] {n} symbols: {p}")
        ok = ok and not problems and diff <= TOLERANCE
        b_secs.append(tb)
        p_secs.append(tp)
        t.add_row(f"{n:,}", f"{rows:,}", f"{tb:.2f}", f"{tp:.2f}", f"{tb / tp:.2f}x", f"{before:,.0f}", f"{mb:,.0f}",
                  f"{mp:,.0f}", f"{diff:.1e}")  # fmt: skip
        shutil.rmtree(tmp / f"polars-{n}", ignore_errors=True)
    if len(sizes) >= 2:
        t.caption = (
            f"time ~ symbols^k: build k = {fitted_exponent(sizes, b_secs):.2f}, "
            f"polars k = {fitted_exponent(sizes, p_secs):.2f} · equal to {TOLERANCE:g}: {'yes' if ok else 'NO'}"
        )
    return t, ok


def _time_build(label: str, lake: object, rows_in: int, table: Table, full: bool = False) -> float:
    from features.build import build_features

    report, secs, peak = _phase(partial(build_features, lake, full=full))  # type: ignore[arg-type]
    _add_build_row(table, label, rows_in, report.results, secs, peak)
    return secs


def _add_build_row(table: Table, label: str, rows_in: int, results: list[Any], secs: float, peak: float) -> None:
    written = sum(r.written for r in results)
    computed = sum(r.rows for r in results)
    per_table = ", ".join(
        f"{r.table.removeprefix('features_')} {r.seconds:.1f}s" for r in results if r.mode != "skipped"
    )
    table.add_row(label, f"{rows_in:,}", f"{computed:,}", f"{written:,}", f"{secs:.2f}", f"{peak:,.0f}", per_table)


def _child_build(lake_uri: str) -> None:
    """``--child-build``: one full build in this fresh process; prints its time, tables and peak RSS as JSON."""
    import json

    from features.build import build_features
    from quantlake.lake import Lake

    t0 = time.perf_counter()
    report = build_features(Lake(lake_uri), full=True)
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "peak_mib": _peak_mib(), "results": report.as_dicts()}, default=str))


def _fresh_process_build(lake: object, rows_in: int, table: Table) -> float:
    """A full build in a new Python process (what ``quantlake features build --full`` holds: nothing else in
    memory); returns its peak RSS (MiB)."""
    import json
    import subprocess
    from types import SimpleNamespace

    out = subprocess.run(
        [sys.executable, __file__, "--child-build", lake.uri],  # type: ignore[attr-defined]
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    results = [SimpleNamespace(**r) for r in got["results"]]
    _add_build_row(table, "full, in a fresh process", rows_in, results, got["seconds"], got["peak_mib"])
    return float(got["peak_mib"])


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
    for col in ("build", "input bars", "rows computed", "rows written", "seconds", "peak MiB", "per table"):
        t.add_column(col, justify="left" if col in ("build", "per table") else "right")
    t0 = time.perf_counter()
    import features.kernels as k  # loading the cached numba kernels is a one-off per process

    x = np.zeros(2)
    k.ema_segments(x, np.array([0, 2]), 2, 0.5, np.full(1, np.nan), np.zeros(1, np.int64), np.empty(2))
    t.add_row("warm-up (import + numba cache)", "", "", "", f"{time.perf_counter() - t0:.2f}", "", "")
    _time_build("full (first build)", lake, rows, t)
    _time_build("full again (--full)", lake, rows, t, full=True)
    fresh_peak = _fresh_process_build(lake, rows, t)
    lake.merge("equity_bars", _new_day(lake))  # type: ignore[attr-defined]
    day = _time_build("incremental: +1 day, all symbols", lake, rows, t)
    lake.merge("equity_bars", _revision(lake))  # type: ignore[attr-defined]
    _time_build("incremental: 1 old bar revised", lake, rows, t)
    report = build_features(lake)  # type: ignore[arg-type]
    assert all(r.mode in ("up to date", "skipped") for r in report.results), report.as_dicts()
    t.caption = (
        f"peak MiB: the process's high-water mark during that build (in-process rows include what the benchmark "
        f"already held) · full build in a fresh process: {fresh_peak:,.0f} MiB peak · incremental +1 day: "
        f"{day:.2f} s"
    )
    return t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--skip-sample", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument(
        "--sizes", default="50,100,200,500", help="symbol counts of the polars comparison ('' = none)"
    )
    ap.add_argument("--child-build", metavar="LAKE", help=argparse.SUPPRESS)  # internal: the fresh-process row
    args = ap.parse_args(argv)
    if args.child_build:
        _child_build(args.child_build)
        return
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]

    from quantlake.lake import Lake

    tmp = Path(tempfile.mkdtemp(prefix="ql-bench-features-"))
    try:
        console.print(
            f"[dim]{dt.datetime.now():%Y-%m-%d %H:%M} · {machine()} · {load()} · temp lakes under {tmp}[/]"
        )
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
            shutil.rmtree(tmp / "synthetic", ignore_errors=True)
        ok = True
        if sizes:
            table, ok = bench_polars(sizes, args.years, tmp)
            console.print(table)
        console.print(f"[dim]{load()} at the end[/]")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
