"""One-time upgrades of lakes written by earlier quantlake versions.

``equity_bars`` gained ``interval`` and ``ts`` (issue 15); ``option_quotes`` gained the OCC ``root`` in its key
(issue 12, :func:`quantlake.option_quotes.upgrade_option_quotes`).  A lake written before that opens as it is (every
reader works on it: the ``all_bars`` view derives the missing values), and the first command that runs on it
upgrades it in one atomic commit, printing one line.  Earlier versions of the table stay readable as they
were (runs pinned to them reproduce unchanged).  Ingests always write both columns; rows another writer
merged without them (a test, a benchmark) read through ``all_bars`` with the derived open instant, and
``upgrade_if_needed(lake, check_rows=True)`` fills them in one commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from quantlake.bars import add_daily_keys
from quantlake.errors import QuantlakeError
from quantlake.lake import Lake
from quantlake.option_quotes import upgrade_option_quotes
from quantlake.tables import EQUITY_BARS

log = logging.getLogger(__name__)


def equity_bars_outdated(lake: Lake, check_rows: bool = False) -> bool:
    """True if ``equity_bars`` lacks the interval/ts columns (or, with ``check_rows``, has rows without them)."""
    if not lake.exists("equity_bars"):
        return False
    names = set(pa.schema(lake.delta("equity_bars", lake.version("equity_bars")).schema()).names)
    if not {"interval", "ts"} <= names:
        return True
    if not check_rows:
        return False
    n = lake.query("SELECT count(*) AS n FROM equity_bars WHERE interval IS NULL OR ts IS NULL")["n"].iloc[0]
    return bool(n)


def upgrade_equity_bars(lake: Lake) -> str | None:
    """Fill ``interval``/``ts`` of every daily bar in one commit; the one-line message, or None if current."""
    if not equity_bars_outdated(lake, check_rows=True):
        return None
    old = lake.read("equity_bars", version=lake.version("equity_bars"))
    filled = add_daily_keys(old)
    res = lake.replace("equity_bars", filled, EQUITY_BARS, note="upgrade: interval and ts (session open, UTC)")
    return (
        f"upgraded the lake at {lake.root}: equity_bars now has interval and ts columns "
        f"({len(filled):,} daily bars, version {res.version_before} -> {res.version})"
    )


def upgrade_if_needed(lake: Lake, say: Callable[[str], None] | None = None, check_rows: bool = False) -> None:
    """Run pending upgrades and report each in one line (``say``, else the log).

    A lake that cannot be upgraded (read-only folder, disk full) is left as it is, with one line saying why:
    readers keep working on it."""
    for name, step in (
        ("equity_bars", lambda: upgrade_equity_bars(lake) if equity_bars_outdated(lake, check_rows) else None),
        ("option_quotes", lambda: upgrade_option_quotes(lake)),  # the OCC root joined the key (issue 12)
    ):
        try:
            msg = step()
        except (QuantlakeError, OSError) as exc:
            msg = f"note: the lake at {lake.root} needs a one-time upgrade of {name} that failed ({exc}); it stays readable"
        if msg:
            (say or log.warning)(msg)
