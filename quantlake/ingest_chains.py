"""Streaming ingest of vendor option-chain files into ``option_quotes`` (issue 12 §1).

Files are read in bounded batches (:mod:`quantlake.sources.chains`), every quote is validated
(:mod:`quantlake.validation_quotes`), bad ones go to ``rejected_rows`` with their reason and raw text, good ones
are buffered and committed **by quote date**: when the buffer holds ``commit_rows`` quotes, every complete
day in it (all but the days the file is still reading) is merged into the lake in one commit.  So memory
stays bounded whatever the file size, a killed ingest keeps whole days of a date-sorted file (vendor files
are), and a rerun merges by key: nothing is added twice.

Before anything is written every file's header is read and its layout recognised, so a file that is not a
chain file stops the command with its name and nothing committed.  Accounting: every file row becomes one
quote (two for wide layouts: call and put), and accepted + rejected = quotes read.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from quantlake.ingest import IngestReport, reason_kind
from quantlake.lake import Lake
from quantlake.option_quotes import underlyings_without_bars, upgrade_option_quotes
from quantlake.sources.base import batch_id
from quantlake.sources.chains import (
    ChainFile,
    ChainSettings,
    QuoteChunk,
    RawRows,
    detect,
    discover,
    malformed_raw,
    read_quotes,
)
from quantlake.sources.chains.layout import FileContext, Layout
from quantlake.sources.chains.stream import read_header
from quantlake.tables import OPTION_QUOTES, REJECTED_ROWS
from quantlake.validation_quotes import QuoteRules, check_quotes, duplicate_reasons

ORIGIN, ROW, CHUNK, POS = "_origin", "_row_no", "_chunk", "_pos"
HELPERS = (ORIGIN, ROW, CHUNK, POS)
REJECT_COLUMNS = ["table", "batch_id", "row_no", "origin", "reason", "raw"]


@dataclass
class _Buffer:
    """Accepted quotes awaiting a commit, and the rejects found with them."""

    tables: list[pa.Table] = field(default_factory=list)
    rejects: list[dict[str, object]] = field(default_factory=list)
    rows: int = 0
    # the raw text of the chunks whose quotes are buffered (a duplicate found at commit keeps its raw row)
    raws: dict[int, RawRows] = field(default_factory=dict)
    next_chunk: int = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.tables.append(table)
            self.rows += table.num_rows

    def take(
        self, keep_dates: set[dt.date]
    ) -> tuple[pa.Table | None, list[dict[str, object]], dict[int, RawRows]]:
        """Remove and return every buffered quote not dated in ``keep_dates``, all rejects, and the raw rows
        of the chunks the returned quotes came from."""
        rejects, self.rejects = self.rejects, []
        if not self.tables:
            return None, rejects, {}
        t = pa.concat_tables(self.tables)
        if keep_dates:
            keep = pc.is_in(t.column("quote_date"), value_set=pa.array(sorted(keep_dates), pa.date32()))
            out, rest = t.filter(pc.invert(keep)), t.filter(keep)
        else:
            out, rest = t, t.slice(0, 0)
        self.tables = [rest] if rest.num_rows else []
        self.rows = rest.num_rows
        alive = set(pc.unique(rest.column(CHUNK)).to_pylist()) if rest.num_rows else set()
        raws = self.raws
        self.raws = {k: v for k, v in raws.items() if k in alive}
        return (out if out.num_rows else None), rejects, raws


def _display(origin: str, prefix: tuple[str, str] | None) -> str:
    """Origins are stored relative to an install location when asked (the shipped sample)."""
    if prefix and origin.startswith(prefix[0]):
        return prefix[1] + origin[len(prefix[0]) :].lstrip("/")
    return origin


def check_files(path: Path | str, fmt: str = "auto") -> list[tuple[ChainFile, list[str], Layout]]:
    """Every chain file under ``path`` with its header and layout; a clear error for the first bad one."""
    plan = []
    for cf in discover(Path(path)):
        header = read_header(cf)
        plan.append((cf, header, detect(header, cf.origin, fmt)))
    return plan


def ingest_option_files(
    lake: Lake,
    path: Path | str,
    settings: ChainSettings | None = None,
    fmt: str = "auto",
    progress: bool = True,
    console: Console | None = None,
    commit_rows: int = 500_000,
    rows_per_batch: int = 250_000,
    rules: QuoteRules | None = None,
    origin_prefix: tuple[str, str] | None = None,
) -> IngestReport:
    """Ingest every chain file under ``path`` (see the module docstring); the run's counts and notes."""
    settings = settings or ChainSettings()
    rules = rules or QuoteRules()
    plan = check_files(path, fmt)  # every header first: a wrong file stops the run before anything is written
    report = IngestReport("option_quotes", settings.source)
    msg = upgrade_option_quotes(lake)
    if msg:
        report.notes.append(msg)
    layouts = sorted({lay.name for _, _, lay in plan})
    report.notes.append(f"{len(plan)} file(s), layout {', '.join(layouts)}")
    buf = _Buffer()
    underlyings: set[str] = set()
    with _progress(progress, console) as prog:
        task = prog.add_task("options ← files", total=None, files=f"0/{len(plan)}", rows=0)
        for k, (cf, header, layout) in enumerate(plan, 1):
            prog.update(task, files=f"{k}/{len(plan)}", description=f"options ← {cf.name}")
            ctx = FileContext(cf.origin, cf.name, settings)
            for chunk in read_quotes(cf, settings, fmt, rows_per_batch, header=header, layout=layout, ctx=ctx):
                good = _validate(chunk, rules, buf, report, origin_prefix)
                if good.num_rows:
                    underlyings.update(pc.unique(good.column("underlying")).to_pylist())
                buf.add(good)
                prog.update(task, rows=report.rows_read)
                if buf.rows >= commit_rows:
                    open_days = set(pc.unique(chunk_dates(chunk)).to_pylist()) - {None}
                    _commit(lake, buf, open_days, report)
            report.notes += ctx.notes
        _commit(lake, buf, set(), report)
        prog.update(task, rows=report.rows_read, description="options ← files: done")
    if report.version is None and lake.exists("option_quotes"):
        report.version = lake.version("option_quotes")
    for u in underlyings_without_bars(lake, underlyings):
        report.notes.append(
            f"{u}: no equity_bars in the lake: the chains' underlying_price is its mark and settlement source "
            "(quantlake.option_quotes.underlying_levels)"
        )
    return report


def chunk_dates(chunk: QuoteChunk) -> pa.Array:
    return chunk.frame.column("quote_date")


def _progress(enabled: bool, console: Console | None) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[rows]:,} rows"),
        TextColumn("file {task.fields[files]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def _validate(
    chunk: QuoteChunk, rules: QuoteRules, buf: _Buffer, report: IngestReport, prefix: tuple[str, str] | None
) -> pa.Table:
    """Rejects of one chunk into the buffer; its good quotes as an Arrow table (with origin and row)."""
    frame = chunk.frame
    origin = _display(chunk.origin, prefix)
    bid = batch_id("option_quotes", origin)
    report.rows_read += frame.num_rows + len(chunk.malformed)
    for row_no, reason, fields in chunk.malformed:
        _reject(buf, report, bid, origin, row_no, reason, malformed_raw(fields))
    if not frame.num_rows:
        return pa.table({})
    reasons = check_quotes(frame, rules, duplicates=False)
    for pos, rs in chunk.parse_errors.items():
        reasons[pos] = rs + [r for r in reasons.get(pos, []) if r not in rs]
    bad_pos = np.array(sorted(p for p, rs in reasons.items() if rs), dtype=np.int64)
    if bad_pos.size:
        for pos, raw in zip(bad_pos, chunk.rows.raw(bad_pos), strict=True):
            _reject(buf, report, bid, origin, int(chunk.row_nos[pos]), "; ".join(reasons[int(pos)]), raw)
    keep = np.ones(frame.num_rows, dtype=bool)
    keep[bad_pos] = False
    good = frame.filter(pa.array(keep)) if bad_pos.size else frame
    report.accepted += good.num_rows
    chunk_id = buf.next_chunk
    buf.next_chunk += 1
    buf.raws[chunk_id] = chunk.rows
    n = good.num_rows
    return (
        good.append_column(ORIGIN, pa.array(np.full(n, origin, dtype=object), type=pa.string()))
        .append_column(ROW, pa.array(chunk.row_nos[keep], type=pa.int64()))
        .append_column(CHUNK, pa.array(np.full(n, chunk_id, dtype=np.int64)))
        .append_column(POS, pa.array(np.flatnonzero(keep).astype(np.int64)))
    )


def _reject(
    buf: _Buffer, report: IngestReport, bid: str, origin: str, row_no: int, reason: str, raw: str
) -> None:
    buf.rejects.append(
        {"table": "option_quotes", "batch_id": bid, "row_no": row_no, "origin": origin, "reason": reason, "raw": raw}
    )
    report.rejected += 1
    report.reasons[reason_kind(reason)] += 1


def _commit(lake: Lake, buf: _Buffer, open_days: set[dt.date], report: IngestReport) -> None:
    """Merge the buffered complete days (one commit) and the rejects so far (another)."""
    table, rejects, raws = buf.take(open_days)
    if table is not None:
        table = _drop_duplicates(table, rejects, report, raws)
        quotes = table.drop_columns([c for c in HELPERS if c in table.column_names])
        if quotes.num_rows:
            days = pc.unique(quotes.column("quote_date"))
            note = f"ingest options {report.source}: {len(days)} quote date(s)"
            report.add_commit(lake.merge("option_quotes", quotes, spec=OPTION_QUOTES, note=note))
    if rejects:
        lake.merge(REJECTED_ROWS.name, pd.DataFrame(rejects, columns=REJECT_COLUMNS),
                   note=f"ingest options {report.source}: rejects")  # fmt: skip


def _drop_duplicates(
    table: pa.Table, rejects: list[dict[str, object]], report: IngestReport, raws: dict[int, RawRows]
) -> pa.Table:
    """The same key twice in one commit (two files, or one file twice): repeats keep the first copy,
    conflicting copies are all rejected naming each other's file and row."""
    keys = list(OPTION_QUOTES.keys)
    con = duckdb.connect()
    try:
        con.register("t", table.select(keys).append_column("_at", pa.array(np.arange(table.num_rows))))
        cols = ", ".join(f'"{k}"' for k in keys)
        in_dup = np.sort(np.asarray(con.execute(
            f"SELECT _at FROM t WHERE ({cols}) IN (SELECT ({cols}) FROM t GROUP BY ALL HAVING count(*) > 1)"
        ).fetchnumpy()["_at"], dtype=np.int64))  # fmt: skip
    finally:
        con.close()
    if not in_dup.size:
        return table
    sub = table.take(pa.array(in_dup)).to_pandas()
    origins = sub[ORIGIN].tolist()
    row_nos = sub[ROW].to_numpy()
    reasons: dict[int, list[str]] = defaultdict(list)
    duplicate_reasons(sub.drop(columns=list(HELPERS)), reasons, origins, row_nos)
    drop = []
    for pos, rs in reasons.items():
        if not rs:
            continue
        drop.append(int(in_dup[pos]))
        origin = origins[pos]
        raw = raws[int(sub[CHUNK].iloc[pos])].raw([int(sub[POS].iloc[pos])])[0]
        rejects.append({"table": "option_quotes", "batch_id": batch_id("option_quotes", origin),
                        "row_no": int(row_nos[pos]), "origin": origin, "reason": "; ".join(rs), "raw": raw})  # fmt: skip
        report.rejected += 1
        report.accepted -= 1
        report.reasons[reason_kind(rs[0])] += 1
    if not drop:
        return table
    keep = np.ones(table.num_rows, dtype=bool)
    keep[drop] = False
    return table.filter(pa.array(keep))


def ingest_sample_options(
    lake: Lake, underlyings: Sequence[str] | None = None, progress: bool = True, console: Console | None = None
) -> list[IngestReport]:
    """The sample's option quotes: the ^GDAXI snapshot and the 34 SPX daily chain files (origins are stored as
    ``sample:<file>``, independent of where the package is installed)."""
    from quantlake.ingest import ingest_options
    from quantlake.sources.sample import SampleSource
    from quantlake.tables import validate_symbol

    src = SampleSource()
    wanted = [validate_symbol(u) for u in underlyings] if underlyings else src.option_underlyings()
    unknown = [u for u in wanted if u not in src.option_underlyings()]
    if unknown:
        from quantlake.errors import InvalidSymbolError

        raise InvalidSymbolError(
            f"sample data has option quotes for {', '.join(src.option_underlyings())}, not {', '.join(unknown)}"
        )
    reports: list[IngestReport] = []
    snapshots = [u for u in wanted if src.option_files(u) is None]
    if snapshots:
        reports += ingest_options(lake, src, snapshots, progress=progress, console=console)
    for u in wanted:
        folder = src.option_files(u)
        if folder is not None:
            settings = ChainSettings(underlying=u, source=src.name)
            reports.append(
                ingest_option_files(
                    lake, folder, settings, fmt="daily", progress=progress, console=console,
                    origin_prefix=(str(src.root), "sample:"),
                )
            )
    return reports
