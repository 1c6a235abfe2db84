"""``quantlake ingest crypto``: candles of crypto pairs from a ccxt exchange into ``bars`` (issue 15).

Incremental per (symbol, interval): each pair resumes one interval after its newest stored candle unless
``start`` or ``full`` says otherwise.  Each pair is committed as soon as it is downloaded, so a run that
fails on a later pair keeps the earlier ones; the failures are reported together at the end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pandas as pd
from rich.console import Console

from quantlake.bars import instrument_rows
from quantlake.calendars import ALWAYS_OPEN, check_interval
from quantlake.errors import QuantlakeError, UserInputError
from quantlake.ingest import Fetch, IngestReport, _commit, _progress, direct_fetch
from quantlake.lake import Lake
from quantlake.sources.crypto import CryptoSource, since_for, stored_symbol


def crypto_watermarks(lake: Lake, symbols: list[str], interval: str) -> dict[str, pd.Timestamp]:
    """Newest stored candle (open instant) per symbol at ``interval``."""
    if not lake.exists("bars") or not symbols:
        return {}
    df = lake.query(
        "SELECT symbol, max(ts) AS ts FROM bars WHERE interval = ? AND symbol IN ("
        + ", ".join("?" for _ in symbols) + ") GROUP BY symbol",
        [interval, *symbols],
    )
    return {str(s): pd.Timestamp(t) for s, t in zip(df["symbol"], df["ts"], strict=True)}


def parse_pairs(pairs: Iterable[str]) -> list[str]:
    out = []
    for p in pairs:
        pair = p.strip().upper()
        if pair.count("/") != 1 or ":" in pair:
            raise UserInputError(f"--symbols takes pairs like BTC/USDT, got {p!r}")
        out.append(pair)
    if not out:
        raise UserInputError("--symbols needs at least one pair, e.g. BTC/USDT,ETH/USDT")
    return list(dict.fromkeys(out))


def ingest_crypto(
    lake: Lake,
    source: CryptoSource,
    pairs: Iterable[str],
    interval: str = "1h",
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    fetch: Fetch[Any] = direct_fetch,
    progress: bool = True,
    console: Console | None = None,
) -> list[IngestReport]:
    check_interval(interval)
    if start and end and start > end:
        raise UserInputError(f"--start {start} is after --end {end}")
    pair_list = parse_pairs(pairs)
    symbols = {p: stored_symbol(source.exchange_id, p) for p in pair_list}
    report = IngestReport("bars", f"ccxt:{source.exchange_id}")
    marks = crypto_watermarks(lake, list(symbols.values()), interval)
    until = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1) if end else None
    note = f"ingest crypto {source.exchange_id} {interval}"
    with _progress(progress, console) as prog:
        task = prog.add_task(f"crypto ← {source.exchange_id} {interval}", total=len(pair_list), item="")
        for pair in pair_list:
            prog.update(task, item=pair)
            since = since_for(marks.get(symbols[pair]), interval, start, full)
            try:
                batch = fetch(source.ohlcv, (pair, interval, since, until))
                _commit(lake, "bars", [batch], report, note=note)
            except QuantlakeError as exc:
                report.failures[symbols[pair]] = exc
            prog.advance(task)
    ok = [s for p, s in symbols.items() if s not in report.failures]
    if ok:
        lake.merge("instruments", instrument_rows(ok, ALWAYS_OPEN, f"ccxt:{source.exchange_id}"), note=note)
    return [report]


def run_ingest_crypto(
    exchange: str = "binance",
    symbols: list[str] | None = None,
    interval: str = "1h",
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    base_url: str | None = None,
    progress: bool = True,
) -> list[IngestReport]:
    """One crypto ingest by name (the flow ``ingest-crypto`` and ``--no-flow`` both call this).

    Retries live inside the source, per request: a failed page is fetched again, not the whole pair."""
    src = CryptoSource(exchange, base_url=base_url)
    return ingest_crypto(Lake(), src, symbols or ["BTC/USDT"], interval, start, end, full=full, progress=progress)
