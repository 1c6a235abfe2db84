"""What every chain layout shares: settings, header matching, the per-batch column view and the output side.

A layout turns one batch of file rows into one *side* (long layouts: one quote per row) or two (wide
layouts: the call and the put of a strike on one row).  A side holds the ``option_quotes`` columns as arrays
plus the reasons of the cells that could not be read; validation of the values happens afterwards, the same
for every layout (:mod:`quantlake.validation_quotes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantlake.errors import MalformedFileError
from quantlake.option_quotes import no_market, settlements
from quantlake.sources.chains.convert import RowErrors, canon, iv_decimal, strings
from quantlake.tables import SYMBOL_RE

OPTIONAL_NUMBERS = ("bid_size", "ask_size", "last", "volume", "open_interest", "vendor_iv", "vendor_delta",
                   "vendor_gamma", "vendor_theta", "vendor_vega", "underlying_price")  # fmt: skip
IvUnit = Literal["auto", "decimal", "percent"]
QuoteTime = Literal["eod", "1545"]


@dataclass(frozen=True)
class ChainSettings:
    """How to read chain files (the ``ingest options`` options)."""

    underlying: str | None = None  # the underlying of the rows (names it where a layout has no column)
    iv_unit: IvUnit = "auto"
    quote_time: QuoteTime = "eod"  # CBOE DataShop: the 15:45 or the end-of-day snapshot
    source: str = "csv"


@dataclass
class FileContext:
    """Per-file state: decisions taken on the first batch hold for the whole file."""

    origin: str
    name: str
    settings: ChainSettings
    iv_unit: str | None = None
    greek_scale: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def underlying_from_name(self) -> str | None:
        """``spx_eod_202001.txt`` -> ``SPX`` (OptionsDX names files by underlying)."""
        stem = re.split(r"[_\-. ]", self.name.rsplit("/", 1)[-1], maxsplit=1)[0].upper()
        return stem if SYMBOL_RE.fullmatch(stem) and not stem.isdigit() else None


class Cols:
    """One batch's columns by canonical name (the layout's names; aliases resolved)."""

    def __init__(self, table: pa.Table, index: Mapping[str, int]) -> None:
        self.table = table
        self.index = index
        self.n = table.num_rows

    def __contains__(self, name: str) -> bool:
        return name in self.index

    def __getitem__(self, name: str) -> pa.Array:
        col = self.table.column(self.index[name])
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col



@dataclass
class Side:
    """The quotes one batch yields on one side (``label``: "" for long layouts, "call"/"put" for wide ones)."""

    label: str
    data: dict[str, Any]
    errors: RowErrors


class Layout:
    """A vendor layout: the columns it needs, the ones it reads if present, and how its rows become quotes."""

    name: ClassVar[str]
    title: ClassVar[str]
    required: ClassVar[tuple[str, ...]]
    optional: ClassVar[tuple[str, ...]] = ()
    aliases: ClassVar[dict[str, str]] = {}  # canonical header -> the layout's canonical name
    wide: ClassVar[bool] = False

    def resolve(self, header: list[str]) -> dict[str, int]:
        """Canonical names this layout knows -> column position (first occurrence wins)."""
        out: dict[str, int] = {}
        known = set(self.required) | set(self.optional)
        for i, h in enumerate(header):
            c = canon(h)
            c = self.aliases.get(c, c)
            if c in known and c not in out:
                out[c] = i
        return out

    def missing(self, header: list[str]) -> list[str]:
        have = self.resolve(header)
        return [c for c in self.required if c not in have]

    def sides(self, cols: Cols, ctx: FileContext) -> list[Side]:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------------- shared helpers
def underlying_column(cols: Cols, name: str | None, ctx: FileContext, errors: RowErrors) -> pa.Array:
    """The underlying of each row: the file's column (upper-cased; CBOE's index caret removed), checked against
    ``--underlying`` when given; or ``--underlying``/the file name when the layout has no column."""
    wanted = ctx.settings.underlying
    if name is not None and name in cols:
        und = pc.utf8_upper(strings(cols[name]))
        if wanted is not None:
            other = pc.fill_null(pc.not_equal(und, pa.scalar(wanted)), True).to_numpy(zero_copy_only=False)
            if other.any():
                errors.add(other, lambda i: f"underlying {und[i].as_py()!r} is not the --underlying {wanted}")
        return und
    sym = wanted or ctx.underlying_from_name()
    if sym is None:
        raise MalformedFileError(
            f"{ctx.origin}: this layout has no underlying column and the file name does not start with one; "
            "pass --underlying SYMBOL"
        )
    return pa.array(np.full(cols.n, sym, dtype=object), type=pa.string())


def vendor_iv(values: np.ndarray, ctx: FileContext) -> np.ndarray:
    """IVs as decimals; ``auto`` decides percent vs decimal on the file's first batch with IVs."""
    unit = ctx.iv_unit or ctx.settings.iv_unit
    out, used = iv_decimal(values, unit)
    if ctx.iv_unit is None and (unit != "auto" or np.isfinite(out).any()):
        ctx.iv_unit = used
        if ctx.settings.iv_unit == "auto" and used == "percent":
            ctx.note(f"{ctx.origin}: implied vols read as percent (divided by 100)")
    return out


def finish(data: dict[str, Any], ctx: FileContext) -> dict[str, Any]:
    """Settlement from the root, the no-market flag, the source; columns the layout lacks are missing."""
    n = len(data["strike"])
    for c in OPTIONAL_NUMBERS:
        data.setdefault(c, np.full(n, np.nan))
    data.setdefault("contract", pa.nulls(n, pa.string()))
    data["settlement"] = settlements(data["root"])
    bid = pa.array(data["bid"], type=pa.float64(), from_pandas=True)
    ask = pa.array(data["ask"], type=pa.float64(), from_pandas=True)
    data["no_market"] = no_market(bid, ask)
    data["source"] = pa.array(np.full(n, ctx.settings.source, dtype=object), type=pa.string())
    return data
