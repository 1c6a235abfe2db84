"""Keep the lake's tables fast to read: compact small files, then delete what no recent version needs.

Every daily ingest merge and every incremental feature build adds a small Parquet file (a day of bars, the
rows of one new date); after a year a table holds hundreds, and every reader opens all of them.  Weekly (the
``lake-maintenance`` deployment, or ``quantlake lake maintain``), each table is

1. **compacted** (delta-rs ``optimize.compact``: small files rewritten into few large ones; a new version with
   the same rows, so readers and ``--as-of`` reads see no difference), when it has more than one file;
2. **vacuumed** (:meth:`quantlake.lake.Lake.vacuum`): files that no version younger than ``retention_hours``
   references — the ones compaction replaced a week ago, orphans of killed writers — are deleted.  Versions
   older than the retention can no longer be read afterwards; runs that recorded them say so when reproduced.

A table another writer commits to meanwhile is left for the next run (its compaction loses the commit race
and changes nothing), and one failing table does not stop the others: each gets its own line in the report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from quantlake.errors import QuantlakeError, TableNotFoundError, UserInputError
from quantlake.lake import Lake

DEFAULT_RETENTION_HOURS = 168  # a week: what the weekly schedule needs to keep every version since the last run


@dataclass
class TableMaintenance:
    """What maintenance did to one table."""

    table: str
    files_before: int = 0
    files_after: int = 0
    compacted: int = 0  # files rewritten by compaction
    deleted: int = 0  # files deleted by the vacuum
    version: int | None = None  # the table's version afterwards
    seconds: float = 0.0
    error: str = ""  # why this table was left as it was


def maintain_table(lake: Lake, table: str, retention_hours: int = DEFAULT_RETENTION_HOURS) -> TableMaintenance:
    """Compact ``table`` (when it has more than one file) and vacuum it; a failure is reported, not raised."""
    t0 = time.perf_counter()
    out = TableMaintenance(table)
    try:
        out.files_before = len(lake.delta(table).file_uris())
        if out.files_before > 1:
            metrics = lake.optimize(table)
            out.compacted = int(metrics.get("numFilesRemoved", 0))
        out.deleted = len(lake.vacuum(table, retention_hours=retention_hours))
        out.files_after = len(lake.delta(table).file_uris())
        out.version = lake.version(table)
    except QuantlakeError as exc:
        out.error = str(exc)
    except Exception as exc:  # delta-rs' own errors (a lost commit race): one line per table
        out.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    out.seconds = time.perf_counter() - t0
    return out


def maintain_lake(
    lake: Lake | None = None,
    tables: Sequence[str] | None = None,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
) -> list[TableMaintenance]:
    """:func:`maintain_table` for ``tables`` (default every table of the lake), in name order."""
    lake = lake or Lake()
    if retention_hours < 0:
        raise UserInputError(f"retention hours must be >= 0, got {retention_hours}")
    names = list(tables) if tables else lake.tables()
    unknown = [t for t in names if not lake.exists(t)]
    if unknown:
        raise TableNotFoundError(f"no such table(s) in the lake at {lake.uri}: {', '.join(unknown)}")
    return [maintain_table(lake, t, retention_hours) for t in sorted(names)]
