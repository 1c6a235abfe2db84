"""Ingestion as plain functions: fetch batches from a source, validate, quarantine, commit (issue 2 §4–7).

The Prefect flows in ``flows/ingest_*.py`` only orchestrate these; each function takes a ``fetch`` hook so a
flow can wrap the network call in a task with retries and backoff, and everything here is testable without
Prefect.  Incremental watermarks come from the lake itself (the last stored date per key), so they can never
disagree with the data.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quantlake.errors import QuantlakeError, SourceError, UserInputError
from quantlake.lake import CommitResult, Lake
from quantlake.sources.base import ROW_NO, CotSource, EquitySource, MacroSource, OptionSource, RawBatch
from quantlake.tables import REJECTED_ROWS, get_spec, validate_symbol
from quantlake.validation import REJECT_COLUMNS, ValidationSettings, reject_row, split_batch

T = TypeVar("T")
Fetch = Callable[[Callable[..., T], Sequence[Any]], T]


def direct_fetch(fn: Callable[..., T], args: Sequence[Any]) -> T:
    return fn(*args)


@dataclass
class IngestReport:
    """Counts of one ingest run for one lake table (what the CLI prints)."""

    table: str
    source: str
    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    inserted: int = 0
    updated: int = 0
    version: int | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    failures: dict[str, QuantlakeError] = field(default_factory=dict)  # key (symbol/series) -> error
    skipped: list[str] = field(default_factory=list)  # keys already up to date (watermark)
    notes: list[str] = field(default_factory=list)  # what a person should know about the run (one line each)

    def add_commit(self, res: CommitResult) -> None:
        self.inserted += res.inserted
        self.updated += res.updated
        self.version = res.version

    def summary(self) -> str:
        ver = "-" if self.version is None else str(self.version)
        s = (
            f"{self.table}: read {self.rows_read}, accepted {self.accepted}, rejected {self.rejected}, "
            f"inserted {self.inserted}, updated {self.updated} (version {ver})"
        )
        if self.failures:
            s += f"; {len(self.failures)} failed"
        return s


class RateLimiter:
    """At most ``per_second`` calls per second across threads (a minimum spacing between calls).

    Hand-written because it is ten lines; Prefect's global rate limits need a server-side limit object.
    """

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            time.sleep(delay)


def _progress(enabled: bool, console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[item]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def _commit(lake: Lake, table: str, batches: list[RawBatch], report: IngestReport, note: str) -> None:
    """Validate and commit a group of batches to ``table`` (one commit) and their rejects (another)."""
    if not batches:
        return
    known_splits = _known_splits(lake) if table == "equity_bars" else set()
    prev_close = _prev_closes(lake, batches) if table == "equity_bars" else {}
    goods, rejects = [], []
    settings = ValidationSettings()
    for b in batches:
        report.rows_read += len(b.frame) + len(b.unparsable)
        good, bad = split_batch(b, settings, known_splits, prev_close, keep_row_no=True)
        goods.append(good)
        rejects.append(bad)
    rejects.append(cross_batch_duplicates(batches, goods, get_spec(table).keys))
    for good in goods:
        good.drop(columns=[ROW_NO], inplace=True)
    for bad in rejects:
        report.rejected += len(bad)
        for reason in bad["reason"]:
            report.reasons[reason_kind(reason)] += 1
    report.accepted += sum(len(g) for g in goods)
    good_all = pd.concat([g for g in goods if len(g)], ignore_index=True) if any(len(g) for g in goods) else None
    if good_all is not None:
        if table == "equity_bars":  # daily bars carry interval 1d and their session's open instant
            from quantlake.bars import add_daily_keys
            from quantlake.migrations import upgrade_if_needed

            upgrade_if_needed(lake)
            good_all = add_daily_keys(good_all)
        report.add_commit(lake.merge(table, good_all, note=note))
    elif lake.exists(table):
        report.version = lake.version(table)
    rej_all = [r for r in rejects if len(r)]
    if rej_all:
        lake.merge(REJECTED_ROWS.name, pd.concat(rej_all, ignore_index=True), note=note)


def cross_batch_duplicates(
    batches: Sequence[RawBatch], goods: list[pd.DataFrame], keys: Sequence[str]
) -> pd.DataFrame:
    """The same key in two batches (two files) of one commit, naming the other file and row.

    Identical copies keep the first (in batch order) and reject the repeats; copies that differ are all
    rejected (which one is right cannot be told).  Removes the rejected rows from ``goods`` in place (each
    still has its ``_row_no``) and returns their ``rejected_rows`` records."""
    cols = list(keys)
    parts = [g[cols].assign(__b=i, __r=g[ROW_NO].to_numpy(), __i=g.index) for i, g in enumerate(goods) if len(g)]
    if len(parts) < 2:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    allk = pd.concat(parts, ignore_index=True)
    dup = allk[allk.duplicated(cols, keep=False)]
    dup = dup[dup.groupby(cols, sort=False)["__b"].transform("nunique") > 1]
    if dup.empty:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    values = [c for c in goods[int(dup["__b"].iloc[0])].columns if c not in (ROW_NO, "source", "ingested_at")]
    out: list[dict[str, object]] = []
    drop: dict[int, list[object]] = {}
    for key, grp in dup.groupby(cols, sort=False):
        at = list(zip(grp["__b"].astype(int), grp["__i"], grp["__r"].astype(int), strict=True))
        rows = [goods[b].loc[i, values].astype(str).tolist() for b, i, _ in at]
        shown_key = ", ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        where = {(b, r): f"row {r} of {batches[b].origin}" for b, _, r in at}
        same = all(r == rows[0] for r in rows)
        for n, (b, i, r) in enumerate(at):
            if same and n == 0:
                continue
            if same:
                reason = f"duplicate key ({shown_key}): repeats {where[(at[0][0], at[0][2])]}"
            else:
                others = ", ".join(w for (ob, orow), w in where.items() if (ob, orow) != (b, r))
                reason = f"duplicate key ({shown_key}) with different values in {others}"
            out.append(reject_row(batches[b], r, reason, goods[b].loc[i].drop(labels=[ROW_NO]).to_dict()))
            drop.setdefault(b, []).append(i)
    for b, idx in drop.items():
        goods[b].drop(index=idx, inplace=True)
    return pd.DataFrame(out, columns=REJECT_COLUMNS)


def reason_kind(reason: str) -> str:
    """The kind of a reject reason, for counts (the first reason, without the value it quotes)."""
    first = reason.split(";")[0]
    return first.split(" (")[0]


def _known_splits(lake: Lake) -> set[tuple[str, dt.date]]:
    if not lake.exists("corporate_actions"):
        return set()
    df = lake.read("corporate_actions", columns=["symbol", "date"], where="kind = 'split'")
    return {(s, d) for s, d in zip(df["symbol"], df["date"], strict=True)}


def _prev_closes(lake: Lake, batches: list[RawBatch]) -> dict[str, tuple[dt.date, float]]:
    """Last stored close before each symbol's first new date (for the jump check across batches)."""
    if not lake.exists("equity_bars"):
        return {}
    firsts = pd.concat([b.frame[["symbol", "date"]] for b in batches if len(b.frame)], ignore_index=True)
    if firsts.empty:
        return {}
    firsts = firsts.groupby("symbol", as_index=False)["date"].min()
    con = lake.connect()
    try:
        con.register("firsts", firsts)
        rows = con.execute(
            """
            SELECT b.symbol, arg_max(b.date, b.date), arg_max(b.close, b.date)
            FROM equity_bars b JOIN firsts f ON b.symbol = f.symbol AND b.date < f.date
            WHERE b.close IS NOT NULL GROUP BY b.symbol
            """
        ).fetchall()
    finally:
        con.close()
    return {s: (d, float(c)) for s, d, c in rows}


def watermarks(lake: Lake, table: str, key: str, date_col: str) -> dict[str, dt.date]:
    """Last stored ``date_col`` per ``key`` value."""
    if not lake.exists(table):
        return {}
    df = lake.query(f'SELECT "{key}" AS k, max("{date_col}") AS d FROM {table} GROUP BY 1')
    return {str(k): (d.date() if isinstance(d, pd.Timestamp) else d) for k, d in zip(df["k"], df["d"], strict=True)}


def _fail(report: IngestReport, key: str, exc: QuantlakeError) -> None:
    report.failures[key] = exc


# --------------------------------------------------------------------------------------------------- equity
def ingest_equity(
    lake: Lake,
    source: EquitySource,
    symbols: Iterable[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    fetch: Fetch[Any] = direct_fetch,
    rate_limit: float | None = None,
    chunk_size: int = 50,
    progress: bool = True,
    console: Console | None = None,
) -> list[IngestReport]:
    """Ingest daily bars (and corporate actions) for ``symbols`` (default: all the source knows).

    Network sources (``source.incremental``) fetch from the day after each symbol's watermark unless
    ``full`` or ``start`` is given; file sources are read whole and merged (zero new rows on a re-run).
    Symbols are committed in chunks of ``chunk_size`` so a killed long run keeps its finished chunks.
    """
    syms = [validate_symbol(s) for s in symbols] if symbols else source.symbols()
    if not syms:
        raise UserInputError(f"source {source.name!r} needs --symbols (it cannot list its symbols)")
    if start and end and start > end:
        raise UserInputError(f"--start {start} is after --end {end}")
    bars = IngestReport("equity_bars", source.name)
    actions = IngestReport("corporate_actions", source.name)
    incremental = getattr(source, "incremental", False) and not full and start is None
    marks = watermarks(lake, "equity_bars", "symbol", "date") if incremental else {}
    limiter = RateLimiter(rate_limit)
    today = dt.date.today()

    intraday = IngestReport("bars", source.name)  # rows with a time of day (issue 15) land in `bars`

    def commit_bars(batches: list[RawBatch]) -> None:
        note = f"ingest equity {source.name}"
        _commit(lake, "equity_bars", [b for b in batches if b.table != "bars"], bars, note=note)
        intraday_batches = [b for b in batches if b.table == "bars"]
        _commit(lake, "bars", intraday_batches, intraday, note=note)
        if intraday_batches:  # each symbol's calendar and time zone, as the files were read
            from quantlake.bars import instrument_rows
            from quantlake.calendars import NYSE

            opts = getattr(source, "intraday", None)
            syms = sorted({s for b in intraday_batches for s in b.frame["symbol"] if ":" not in str(s)})
            if syms:
                cal = opts.calendar if opts is not None else NYSE
                lake.merge("instruments", instrument_rows(syms, cal, source.name), note=note)

    def out(*reports: IngestReport) -> list[IngestReport]:
        return [r for r in reports if r is bars or r.rows_read or r.failures]

    # file sources with long files: ingest each file as a batch so row numbers refer to the file
    whole_files = getattr(source, "batches", None)
    if whole_files is not None and not symbols:
        file_batches: list[RawBatch] = whole_files()
        commit_bars(file_batches)
        return out(bars, intraday)

    pending_bars: list[RawBatch] = []
    pending_actions: list[RawBatch] = []
    with _progress(progress, console) as prog:
        task = prog.add_task(f"equity ← {source.name}", total=len(syms), item="")
        for i, sym in enumerate(syms, 1):
            prog.update(task, item=sym)
            s_start = start
            if incremental and sym in marks:
                s_start = marks[sym] + dt.timedelta(days=1)
                if s_start > (end or today):
                    bars.skipped.append(sym)
                    prog.advance(task)
                    continue
            try:
                limiter.wait()
                pending_bars.append(fetch(source.bars, (sym, s_start, end)))
                act = fetch(source.actions, (sym, s_start, end))
                if act is not None:
                    pending_actions.append(act)
            except QuantlakeError as exc:
                _fail(bars, sym, exc)
            prog.advance(task)
            if len(pending_bars) >= chunk_size or i == len(syms):
                # actions first: a split recorded in this run makes its price jump acceptable
                _commit(lake, "corporate_actions", pending_actions, actions, note=f"ingest {source.name}")
                commit_bars(pending_bars)
                pending_bars, pending_actions = [], []
    return out(bars, actions, intraday)


# --------------------------------------------------------------------------------------------------- options
def ingest_options(
    lake: Lake,
    source: OptionSource,
    underlyings: Iterable[str] | None = None,
    fetch: Fetch[Any] = direct_fetch,
    rate_limit: float | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> list[IngestReport]:
    unds = [validate_symbol(u) for u in underlyings] if underlyings else source.option_underlyings()
    if not unds:
        raise UserInputError(f"source {source.name!r} needs --underlyings")
    report = IngestReport("option_quotes", source.name)
    from quantlake.option_quotes import upgrade_option_quotes

    upgraded = upgrade_option_quotes(lake)
    if upgraded:
        report.notes.append(upgraded)
    limiter = RateLimiter(rate_limit)
    batches: list[RawBatch] = []
    with _progress(progress, console) as prog:
        task = prog.add_task(f"options ← {source.name}", total=len(unds), item="")
        for u in unds:
            prog.update(task, item=u)
            try:
                limiter.wait()
                batches.append(fetch(source.option_chain, (u,)))
            except QuantlakeError as exc:
                _fail(report, u, exc)
            prog.advance(task)
    _commit(lake, "option_quotes", batches, report, note=f"ingest options {source.name}")
    return [report]


# --------------------------------------------------------------------------------------------------- macro
def ingest_macro(
    lake: Lake,
    source: MacroSource,
    series: Iterable[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    fetch: Fetch[Any] = direct_fetch,
    rate_limit: float | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> list[IngestReport]:
    ids = [s.strip().upper() for s in series] if series else source.series_ids()
    if not ids:
        raise UserInputError(f"source {source.name!r} needs --series")
    report = IngestReport("macro_series", source.name)
    incremental = getattr(source, "incremental", False) and not full and start is None
    marks = watermarks(lake, "macro_series", "series_id", "date") if incremental else {}
    limiter = RateLimiter(rate_limit)
    batches: list[RawBatch] = []
    with _progress(progress, console) as prog:
        task = prog.add_task(f"macro ← {source.name}", total=len(ids), item="")
        for sid in ids:
            prog.update(task, item=sid)
            s_start = marks[sid] + dt.timedelta(days=1) if sid in marks else start
            try:
                limiter.wait()
                batches.append(fetch(source.macro, (sid, s_start, end)))
            except QuantlakeError as exc:
                _fail(report, sid, exc)
            prog.advance(task)
    _commit(lake, "macro_series", batches, report, note=f"ingest macro {source.name}")
    return [report]


# --------------------------------------------------------------------------------------------------- cot
def ingest_cot(
    lake: Lake,
    source: CotSource,
    report_types: Sequence[str] = ("disaggregated", "financial"),
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    fetch: Fetch[Any] = direct_fetch,
    progress: bool = True,
    console: Console | None = None,
) -> list[IngestReport]:
    report = IngestReport("cot_positions", source.name)
    incremental = getattr(source, "incremental", False) and not full and start is None
    marks = watermarks(lake, "cot_positions", "report_type", "report_date") if incremental else {}
    batches: list[RawBatch] = []
    with _progress(progress, console) as prog:
        task = prog.add_task(f"cot ← {source.name}", total=len(report_types), item="")
        for rt in report_types:
            prog.update(task, item=rt)
            s_start = marks[rt] + dt.timedelta(days=1) if rt in marks else start
            try:
                batches.append(fetch(source.cot, (rt, s_start, end)))
            except QuantlakeError as exc:
                _fail(report, rt, exc)
            prog.advance(task)
    _commit(lake, "cot_positions", batches, report, note=f"ingest cot {source.name}")
    return [report]


# --------------------------------------------------------------------------------------------------- sample
def ingest_sample_all(lake: Lake, progress: bool = True, console: Console | None = None) -> list[IngestReport]:
    """Everything the embedded sample data has (equities, actions, option quotes, macro)."""
    from quantlake.ingest_chains import ingest_sample_options
    from quantlake.sources.sample import SampleSource

    src = SampleSource()
    reports = ingest_equity(lake, src, progress=progress, console=console)
    reports += ingest_sample_options(lake, progress=progress, console=console)
    reports += ingest_macro(lake, src, progress=progress, console=console)
    return reports


def failures_error(reports: Iterable[IngestReport]) -> QuantlakeError | None:
    """One error naming every key that failed (None if nothing failed).

    A user error (exit 2) if every failure was the user's (unknown symbol...), else a source error (exit 1).
    """
    reports = list(reports)
    fails = [(k, exc) for r in reports for k, exc in r.failures.items()]
    if not fails:
        return None
    written = sum(r.inserted + r.updated for r in reports)
    if len(fails) == 1 and written == 0 and not any(r.accepted for r in reports):
        return fails[0][1]
    lines = "; ".join(f"{k}: {exc}" for k, exc in fails[:5]) + (" ..." if len(fails) > 5 else "")
    kinds = {type(e) for _, e in fails}
    err: type[QuantlakeError] = (
        kinds.pop() if len(kinds) == 1  # one kind of failure keeps its type (and exit code)
        else UserInputError if all(isinstance(e, UserInputError) for _, e in fails) else SourceError
    )
    if written:
        rest = f"the rest were ingested ({written:,} row(s) written)"
    elif any(r.accepted for r in reports):
        rest = "the rest were already up to date"
    else:
        rest = "nothing was ingested"
    return err(f"{len(fails)} item(s) failed, {rest}: {lines}")


def raise_for_failures(reports: Iterable[IngestReport]) -> None:
    """After committing what succeeded: raise :func:`failures_error` if anything failed."""
    err = failures_error(reports)
    if err is not None:
        raise err
