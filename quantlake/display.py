"""Terminal output for every quantlake command: tables that fit the terminal without losing a character.

One helper, :func:`print_table`, renders rows under column specs (:class:`Col`):

* cells are formatted by kind: counts as integers with thousands separators, fractions as percentages,
  floats to 4 significant digits, ids abbreviated (``run_id`` → its first 8 characters, enough for
  ``runs reproduce``/MLflow search), dates as ``YYYY-MM-DD``; text is printed literally (never parsed as
  rich markup, so ``close outside [low, high]`` stays intact);
* the table takes the terminal's width *at call time* (``COLUMNS`` when set, else the real terminal, else
  80); optional columns are dropped (right to left) before anything is squeezed, then text columns wrap at
  spaces; ids, numbers, dates and paths are never wrapped or truncated;
* when even that does not fit, the table is **pivoted**: one block per row, ``field: value`` per line,
  printed without hard line breaks (a long path stays one copyable string);
* the footer says which optional columns were left out, so nothing disappears silently.

Why not rich's own table sizing alone: rich shrinks columns by truncating with an ellipsis or folding
mid-word when the table is too wide, which cut ids, paths and numbers (the issue-18 reports).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

Kind = Literal["text", "int", "float", "pct", "id", "path", "date", "datetime", "num", "raw"]
_NO_WRAP: frozenset[str] = frozenset({"int", "float", "pct", "id", "path", "date", "datetime", "num"})
_RIGHT: frozenset[str] = frozenset({"int", "float", "pct", "num"})  # num: a number shown exactly as stored
ID_CHARS = 8
_BORDER = 3  # rich's default box: one border and one space of padding on each side of a column


def terminal_width(default: int = 80) -> int:
    """Width to render for: ``COLUMNS`` when set (tests, pipes), else the terminal's, else ``default``."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size((default, 24)).columns


def console(stderr: bool = False, width: int | None = None) -> Console:
    """A rich console sized for the terminal as it is now (create one per command, not at import)."""
    return Console(stderr=stderr, width=width or terminal_width(), highlight=False)


# ---------------------------------------------------------------------------------------------- formatting
def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT, pd.NA
    except (TypeError, ValueError):
        return False


def fmt_int(value: Any) -> str:
    x = _number(value)
    return x if isinstance(x, str) else f"{round(x):,}"


def _number(value: Any) -> float | str:
    """The value as a finite float, or the text to show instead ("" when missing, "inf"/"-inf")."""
    if _missing(value):
        return ""
    if isinstance(value, str | bool):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def fmt_float(value: Any, digits: int = 4) -> str:
    x = _number(value)
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_pct(value: Any, decimals: int = 1) -> str:
    """A fraction as a percentage: 0.1234 → ``12.3%``."""
    x = _number(value)
    return x if isinstance(x, str) else f"{x * 100:.{decimals}f}%"


def short_id(value: Any, chars: int = ID_CHARS) -> str:
    return "" if _missing(value) else str(value)[:chars]


def fmt_date(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def fmt_datetime(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def format_cell(value: Any, kind: Kind) -> str:
    if kind == "int":
        return fmt_int(value)
    if kind == "float":
        return fmt_float(value)
    if kind == "pct":
        return fmt_pct(value)
    if kind == "id":
        return short_id(value)
    if kind == "date":
        return fmt_date(value)
    if kind == "datetime":
        return fmt_datetime(value)
    return "" if _missing(value) else str(value)


FRACTION_HINTS = ("return", "drawdown", "win_rate", "exposure", "volatility", "var_", "cvar", "cagr", "pbo",
                  "ann_vol")
COUNT_NAMES = frozenset({"trades", "n_trials", "n_obs", "positions", "bars", "days", "rows", "observations"})


def kind_of(name: str) -> Kind:
    """How a metric named ``name`` reads best: counts as integers, fractions (returns, drawdowns, rates,
    volatility, PBO) as percentages, anything else (Sharpe ratios, prices) as a number."""
    leaf = name.rsplit(".", 1)[-1].lower()
    if leaf in COUNT_NAMES or leaf.startswith(("n_", "oos_n_")) or leaf.endswith("_trades"):
        return "int"
    if any(h in leaf for h in FRACTION_HINTS) and not any(x in leaf for x in ("sharpe", "sortino", "ratio")):
        return "pct"
    return "float"


# ---------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Col:
    """A column: ``key`` in each row mapping, its ``header`` (default: the key), how to format it, and
    whether it may be left out on a narrow terminal (``optional``; the last optional column goes first)."""

    key: str
    header: str | None = None
    kind: Kind = "text"
    optional: bool = False
    style: str | None = None
    wrap_width: int | None = None  # narrowest comfortable width of a wrapping text column (default 24)

    @property
    def title(self) -> str:
        return self.header if self.header is not None else self.key


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


COMFORTABLE_TEXT = 24  # a wrapping text column narrower than this reads badly: drop optional columns first


def _widths(col: Col, cells: Sequence[str]) -> tuple[int, int, int]:
    """(natural width, comfortable width, narrowest width without breaking a word or an unbreakable
    value)."""
    natural = max([len(col.title), *(max((len(line) for line in c.split("\n")), default=0) for c in cells)])
    if col.kind in _NO_WRAP:
        return natural, natural, natural
    narrow = max([_longest_word(col.title), *(_longest_word(c) for c in cells), 1])
    return natural, max(narrow, min(natural, col.wrap_width or COMFORTABLE_TEXT)), narrow


def _table_width(widths: Iterable[int]) -> int:
    w = list(widths)
    return sum(w) + _BORDER * len(w) + 1


@dataclass(frozen=True)
class Layout:
    """How a table was fitted (returned for tests and callers that print notes)."""

    columns: list[Col]
    dropped: list[Col]
    pivoted: bool
    width: int


def layout(columns: Sequence[Col], cells: Mapping[str, Sequence[str]], width: int) -> Layout:
    """Choose the columns and the form (table or pivot) for ``width`` terminal columns."""
    shown = list(columns)
    dropped: list[Col] = []
    measures = {c.key: _widths(c, cells[c.key]) for c in columns}
    while _table_width(measures[c.key][1] for c in shown) > width:
        optional = [c for c in shown if c.optional]
        if not optional:
            break
        victim = optional[-1]
        shown.remove(victim)
        dropped.insert(0, victim)
    if _table_width(measures[c.key][2] for c in shown) > width:  # pivoted: every column has room
        return Layout(columns=list(columns), dropped=[], pivoted=True, width=width)
    return Layout(columns=shown, dropped=dropped, pivoted=False, width=width)


def _row_value(row: Any, key: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(key)
    return getattr(row, key, None)


def render_cells(columns: Sequence[Col], rows: Sequence[Any]) -> dict[str, list[str]]:
    return {c.key: [format_cell(_row_value(r, c.key), c.kind) for r in rows] for c in columns}


def print_table(
    rows: Sequence[Any] | Any,
    columns: Sequence[Col],
    title: str | None = None,
    out: Console | None = None,
    caption: str | None = None,
    max_rows: int | None = None,
) -> Layout:
    """Print ``rows`` (mappings, objects with attributes, or a DataFrame) under ``columns`` fitted to the
    terminal (see the module docstring).  Returns the layout used."""
    con = out or console()
    records = _records(rows)
    total = len(records)
    if max_rows is not None and total > max_rows:
        records = records[:max_rows]
    cells = render_cells(columns, records)
    lay = layout(columns, cells, con.width)
    if lay.pivoted:
        _print_pivot(con, title, lay.columns, cells, len(records))
    else:
        t = Table(title=Text(title) if title else None, caption=Text(caption) if caption else None)
        for c in lay.columns:
            no_wrap = c.kind in _NO_WRAP
            t.add_column(
                Text(c.title),
                justify="right" if c.kind in _RIGHT else "left",
                no_wrap=no_wrap,
                overflow="fold",
                min_width=_widths(c, cells[c.key])[2],
                style=c.style,
            )
        for i in range(len(records)):
            t.add_row(*(Text(cells[c.key][i], justify="right" if c.kind in _RIGHT else "left")
                        for c in lay.columns))
        con.print(t)
    if lay.pivoted and caption:
        con.print(Text(caption), soft_wrap=True)
    notes = []
    if lay.dropped:
        notes.append("not shown at this width: " + ", ".join(c.title for c in lay.dropped) + " (widen the terminal)")
    if total > len(records):
        notes.append(f"{total - len(records):,} more row(s) not shown")
    for n in notes:
        con.print(Text(n, style="dim"), soft_wrap=True)
    return lay


def _records(rows: Any) -> list[Any]:
    to_dict = getattr(rows, "to_dict", None)
    if callable(to_dict) and hasattr(rows, "columns"):
        return list(to_dict(orient="records"))
    return list(rows)


def _print_pivot(con: Console, title: str | None, columns: Sequence[Col], cells: Mapping[str, Sequence[str]],
                 n: int) -> None:
    """One block per row: ``header: value`` lines, printed without hard wraps."""
    if title:
        con.print(Text(title, style="bold"), soft_wrap=True)
    pad = max((len(c.title) for c in columns), default=0)
    for i in range(n):
        if i:
            con.print()
        for c in columns:
            value = cells[c.key][i]
            line = Text(f"{c.title:<{pad}}  ", style="dim")
            line.append(value)
            con.print(line, soft_wrap=True)


def print_path(label: str, path: str | Path, out: Console | None = None) -> None:
    """``label: path`` on one line that is never broken inside the path (copyable at any width)."""
    (out or console()).print(Text(f"{label}: {path}"), soft_wrap=True)
