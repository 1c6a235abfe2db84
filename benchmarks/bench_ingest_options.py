"""Chain-file ingest (parse, validate, merge, commit) against pyarrow's CSV reader alone, per layout.

For each layout a synthetic file of ``--rows`` rows (default 5,000,000; wide layouts hold a call and a put per
row, so twice as many quotes) is written, then, in one process: ``pyarrow.csv.read_csv`` of the file (the
peer: type inference, multi-threaded, nothing else), and ``quantlake.ingest_chains.ingest_option_files``
into an empty lake.  Printed: rows/s of each, their ratio (goal: ingest within 3x of the raw read), and the
peak resident memory of each phase above the process's baseline (goal: < 1 GiB whatever the file size; a
sampling thread reads the RSS every 20 ms).  Each layout runs in its own process so one layout's memory
peak does not inflate the next one's.  Figures depend on the machine's load: note ``uptime`` beside them.

    python benchmarks/bench_ingest_options.py [--rows N] [--layouts daily,optionsdx,cboe,orats,quantlake]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

LAYOUTS = ("daily", "optionsdx", "cboe", "orats", "quantlake")
STRIKES, EXPIRIES = 250, 10  # per quote date (long layouts: x 2 rights x 2 roots = 10,000 quotes a day)


class PeakRss:
    """Peak RSS above the value at start, sampled by a thread."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


# ------------------------------------------------------------------------------------------- synthetic data
def _grid(rows: int, per_row_quotes: int) -> dict[str, np.ndarray]:
    """Quote dates (business days from 2015), expiries and strikes for ``rows`` file rows."""
    from quantlake.calendars import sessions

    per_day = STRIKES * EXPIRIES * (4 if per_row_quotes == 1 else 1)  # long: x rights x roots
    days = sessions("2005-01-03", "2030-12-31").to_numpy().astype("datetime64[D]")[: rows // per_day + 1]
    i = np.arange(rows)
    day = days[i // per_day]
    j = i % per_day
    e = (j // (per_day // EXPIRIES)) % EXPIRIES
    expiry = day + 3 + 7 * e
    strike = 2000.0 + 5.0 * ((j // (per_day // EXPIRIES // STRIKES)) % STRIKES)
    return {"day": day, "expiry": expiry, "strike": strike, "j": j}


def _text_dates(d: np.ndarray, fmt: str) -> pa.Array:
    arr = pa.array(d.astype("datetime64[s]"))
    uniq = pc.unique(arr)
    return pc.take(pc.strftime(uniq, format=fmt), pc.index_in(arr, value_set=uniq))


def _prices(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    bid = np.round(rng.uniform(0.05, 300, n), 2)
    return bid, np.round(bid + rng.uniform(0.05, 2.0, n), 2)


def _occ(roots: pa.Array, expiry: np.ndarray, right: pa.Array, strike: np.ndarray) -> pa.Array:
    k = pc.utf8_lpad(pa.array(np.round(strike * 1000).astype(np.int64)).cast(pa.string()), 8, "0")
    return pc.binary_join_element_wise(roots, _text_dates(expiry, "%y%m%d"), right, k, "")


def make_daily(rows: int, rng: np.random.Generator) -> pa.Table:
    g = _grid(rows, 1)
    right = pa.array(np.where(g["j"] % 2 == 0, "C", "P"))
    roots = pa.array(np.where((g["j"] // 2) % 2 == 0, "SPX", "SPXW"))
    bid, ask = _prices(rows, rng)
    return pa.table({
        "underlying": pa.array(np.full(rows, "SPX")), "underlying_last": np.round(rng.uniform(2500, 3000, rows), 2),
        "exchange": pa.array(np.full(rows, "CBOE")), "optionroot": _occ(roots, g["expiry"], right, g["strike"]),
        "type": pc.if_else(pc.equal(right, "C"), "call", "put"), "expiration": _text_dates(g["expiry"], "%m/%d/%Y"),
        "quotedate": _text_dates(g["day"], "%m/%d/%Y"), "strike": g["strike"], "last": bid, "net": 0.0 * bid,
        "bid": bid, "ask": ask, "volume": rng.integers(0, 1000, rows), "openinterest": rng.integers(0, 9000, rows),
        "impliedvol": np.round(rng.uniform(0.05, 0.9, rows), 4), "delta": np.round(rng.uniform(-1, 1, rows), 4),
        "gamma": np.round(rng.uniform(0, 0.01, rows), 4),
    })  # fmt: skip


def make_optionsdx(rows: int, rng: np.random.Generator) -> pa.Table:
    g = _grid(rows, 2)
    cb, ca = _prices(rows, rng)
    pb, pa_ = _prices(rows, rng)
    size = pc.binary_join_element_wise(pa.array(rng.integers(1, 99, rows)).cast(pa.string()), " x ",
                                       pa.array(rng.integers(1, 99, rows)).cast(pa.string()), "")  # fmt: skip
    spot = np.round(rng.uniform(2500, 3000, rows), 2)
    cols: dict[str, object] = {
        "[QUOTE_UNIXTIME]": (g["day"].astype("datetime64[s]").astype(np.int64) + 57600),
        " [QUOTE_READTIME]": pc.binary_join_element_wise(_text_dates(g["day"], "%Y-%m-%d"), " 16:00", ""),
        " [QUOTE_DATE]": _text_dates(g["day"], "%Y-%m-%d"), " [QUOTE_TIME_HOURS]": np.full(rows, 16.0),
        " [UNDERLYING_LAST]": spot, " [EXPIRE_DATE]": _text_dates(g["expiry"], "%Y-%m-%d"),
        " [EXPIRE_UNIX]": g["expiry"].astype("datetime64[s]").astype(np.int64),
        " [DTE]": (g["expiry"] - g["day"]).astype(np.int64).astype(float),
    }  # fmt: skip
    for s, b, a in (("C", cb, ca), ("P", pb, pa_)):
        side = {f" [{s}_DELTA]": np.round(rng.uniform(-1, 1, rows), 5), f" [{s}_GAMMA]": np.round(rng.uniform(0, 0.01, rows), 5),
                f" [{s}_VEGA]": np.round(rng.uniform(0, 3, rows), 5), f" [{s}_THETA]": np.round(rng.uniform(-3, 0, rows), 5),
                f" [{s}_RHO]": np.round(rng.uniform(-1, 1, rows), 5), f" [{s}_IV]": np.round(rng.uniform(0.05, 0.9, rows), 5),
                f" [{s}_VOLUME]": rng.integers(0, 999, rows).astype(float), f" [{s}_LAST]": b, f" [{s}_SIZE]": size,
                f" [{s}_BID]": b, f" [{s}_ASK]": a}  # fmt: skip
        if s == "C":
            cols.update(side)
            cols[" [STRIKE]"] = g["strike"]
        else:
            order = [" [P_BID]", " [P_ASK]", " [P_SIZE]", " [P_LAST]", " [P_DELTA]", " [P_GAMMA]", " [P_VEGA]",
                     " [P_THETA]", " [P_RHO]", " [P_IV]", " [P_VOLUME]"]  # fmt: skip
            cols.update({k: side[k] for k in order})
    cols[" [STRIKE_DISTANCE]"] = np.round(g["strike"] - spot, 1)
    cols[" [STRIKE_DISTANCE_PCT]"] = np.round(g["strike"] / spot - 1, 3)
    return pa.table(cols)  # type: ignore[arg-type]


def make_cboe(rows: int, rng: np.random.Generator) -> pa.Table:
    g = _grid(rows, 1)
    right = pa.array(np.where(g["j"] % 2 == 0, "C", "P"))
    roots = pa.array(np.where((g["j"] // 2) % 2 == 0, "SPX", "SPXW"))
    b15, a15 = _prices(rows, rng)
    be, ae = _prices(rows, rng)
    und = np.round(rng.uniform(2500, 3000, rows), 2)
    f = lambda lo, hi: np.round(rng.uniform(lo, hi, rows), 4)  # noqa: E731
    sizes = lambda: rng.integers(1, 500, rows)  # noqa: E731
    return pa.table({
        "underlying_symbol": pa.array(np.full(rows, "^SPX")), "quote_date": _text_dates(g["day"], "%Y-%m-%d"),
        "root": roots, "expiration": _text_dates(g["expiry"], "%Y-%m-%d"), "strike": g["strike"], "option_type": right,
        "open": be, "high": ae, "low": be, "close": be, "trade_volume": sizes(), "bid_size_1545": sizes(),
        "bid_1545": b15, "ask_size_1545": sizes(), "ask_1545": a15, "underlying_bid_1545": und - 0.5,
        "underlying_ask_1545": und + 0.5, "implied_underlying_price_1545": und, "active_underlying_price_1545": und,
        "implied_volatility_1545": f(0.05, 0.9), "delta_1545": f(-1, 1), "gamma_1545": f(0, 0.01),
        "theta_1545": f(-3, 0), "vega_1545": f(0, 3), "rho_1545": f(-1, 1), "bid_size_eod": sizes(), "bid_eod": be,
        "ask_size_eod": sizes(), "ask_eod": ae, "underlying_bid_eod": und - 0.5, "underlying_ask_eod": und + 0.5,
        "vwap": be, "open_interest": sizes(), "delivery_code": pa.array(np.full(rows, "")),
    })  # fmt: skip


def make_orats(rows: int, rng: np.random.Generator) -> pa.Table:
    g = _grid(rows, 2)
    cb, ca = _prices(rows, rng)
    pb, pa_ = _prices(rows, rng)
    f = lambda lo, hi: np.round(rng.uniform(lo, hi, rows), 4)  # noqa: E731
    n = lambda: rng.integers(0, 5000, rows)  # noqa: E731
    spot = np.round(rng.uniform(2500, 3000, rows), 2)
    return pa.table({
        "ticker": pa.array(np.full(rows, "SPX")), "tradeDate": _text_dates(g["day"], "%m/%d/%Y"),
        "expirDate": _text_dates(g["expiry"], "%m/%d/%Y"), "dte": (g["expiry"] - g["day"]).astype(np.int64),
        "strike": g["strike"], "stkPx": spot, "cVolu": n(), "cOi": n(), "pVolu": n(), "pOi": n(), "cBidPx": cb,
        "cValue": cb, "cAskPx": ca, "pBidPx": pb, "pValue": pb, "pAskPx": pa_, "cBidIv": f(0.05, 0.9),
        "cMidIv": f(0.05, 0.9), "cAskIv": f(0.05, 0.9), "smoothSmvVol": f(0.05, 0.9), "pBidIv": f(0.05, 0.9),
        "pMidIv": f(0.05, 0.9), "pAskIv": f(0.05, 0.9), "iRate": f(0, 0.05), "divRate": f(0, 0.03),
        "residualRateData": f(-0.01, 0.01), "delta": f(0, 1), "gamma": f(0, 0.01), "theta": f(-3, 0),
        "vega": f(0, 3), "rho": f(-1, 1), "phi": f(-1, 1), "driftlessTheta": f(-3, 0), "extVol": f(0.05, 0.9),
        "extCTheo": cb, "extPTheo": pb, "spot_px": spot,
    })  # fmt: skip


def make_quantlake(rows: int, rng: np.random.Generator) -> pa.Table:
    g = _grid(rows, 1)
    right = pa.array(np.where(g["j"] % 2 == 0, "C", "P"))
    roots = pa.array(np.where((g["j"] // 2) % 2 == 0, "SPX", "SPXW"))
    bid, ask = _prices(rows, rng)
    return pa.table({
        "quote_date": _text_dates(g["day"], "%Y-%m-%d"), "underlying": pa.array(np.full(rows, "SPX")), "root": roots,
        "expiry": _text_dates(g["expiry"], "%Y-%m-%d"), "strike": g["strike"], "right": right, "bid": bid,
        "ask": ask, "last": bid, "volume": rng.integers(0, 1000, rows).astype(float),
        "open_interest": rng.integers(0, 9000, rows).astype(float), "vendor_iv": np.round(rng.uniform(0.05, 0.9, rows), 4),
        "underlying_price": np.round(rng.uniform(2500, 3000, rows), 2), "source": pa.array(np.full(rows, "vendor")),
    })  # fmt: skip


MAKERS: dict[str, Callable[[int, np.random.Generator], pa.Table]] = {
    "daily": make_daily, "optionsdx": make_optionsdx, "cboe": make_cboe, "orats": make_orats,
    "quantlake": make_quantlake,
}  # fmt: skip


# ------------------------------------------------------------------------------------------- one layout
def run_one(layout: str, rows: int, work: Path) -> dict[str, object]:
    """Generate, read raw, ingest (all in this process); the figures."""
    from quantlake.ingest_chains import ingest_option_files
    from quantlake.lake import Lake
    from quantlake.sources.chains import ChainSettings

    path = work / f"{layout}.csv"
    table = MAKERS[layout](rows, np.random.default_rng(7))
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))
    del table
    size_mb = path.stat().st_size / 1e6
    with PeakRss() as raw_mem:
        t0 = time.perf_counter()
        raw = pacsv.read_csv(path)
        raw_s = time.perf_counter() - t0
        assert raw.num_rows == rows
        del raw
    lake = Lake(work / f"lake_{layout}")
    settings = ChainSettings(underlying="SPX" if layout == "optionsdx" else None)
    with PeakRss() as ing_mem:
        t0 = time.perf_counter()
        rep = ingest_option_files(lake, path, settings, fmt=layout, progress=False)
        ing_s = time.perf_counter() - t0
    quotes = rows * (2 if layout in ("optionsdx", "orats") else 1)
    assert rep.rows_read == quotes and rep.accepted + rep.rejected == quotes, rep.summary()
    commits = len(lake.history("option_quotes"))
    shutil.rmtree(work / f"lake_{layout}")
    path.unlink()
    return {"layout": layout, "rows": rows, "quotes": quotes, "file_mb": round(size_mb), "raw_s": raw_s,
            "ingest_s": ing_s, "raw_mib": raw_mem.mib, "ingest_mib": ing_mem.mib, "accepted": rep.accepted,
            "rejected": rep.rejected, "commits": commits}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows per synthetic file (default 5,000,000)")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated layouts")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one layout, print JSON
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.rows, Path(args.work))), flush=True)
        return 0
    layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    print(f"chain-file ingest vs pyarrow.csv.read_csv; {args.rows:,} rows per file; load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores; {dt.datetime.now():%Y-%m-%d %H:%M}")  # fmt: skip
    print(f"{'layout':<10} {'quotes':>11} {'MB':>6} {'raw rows/s':>11} {'ingest rows/s':>14} {'ratio':>6} "
          f"{'raw MiB':>8} {'ingest MiB':>10} {'commits':>7}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_chains_") as work:
        for layout in layouts:
            out = subprocess.run([sys.executable, __file__, "--one", layout, "--rows", str(args.rows), "--work", work],
                                 capture_output=True, text=True)  # fmt: skip
            if out.returncode:
                print(f"{layout}: failed\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['layout']:<10} {r['quotes']:>11,} {r['file_mb']:>6} {r['rows'] / r['raw_s']:>11,.0f} "
                  f"{r['rows'] / r['ingest_s']:>14,.0f} {r['ingest_s'] / r['raw_s']:>5.1f}x {r['raw_mib']:>8.0f} "
                  f"{r['ingest_mib']:>10.0f} {r['commits']:>7}", flush=True)  # fmt: skip
    print(f"goal: ingest within 3x of the raw read, ingest peak < 1024 MiB; load now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
