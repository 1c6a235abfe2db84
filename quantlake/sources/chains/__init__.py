"""Vendor option-chain files -> ``option_quotes`` rows (``quantlake ingest options --source csv --path PATH``).

Layouts (``--format``; ``auto`` recognises them from the header):

========== =================================================================================================
daily      the daily chain download (underlying, underlying_last, optionroot, type, expiration, quotedate ...)
optionsdx  OptionsDX EOD, wide (a strike's call and put on one row)
cboe       CBOE DataShop option EOD summary (15:45 or EOD snapshot)
orats      ORATS strikes, wide
quantlake  quantlake's own ``option_quotes`` columns
========== =================================================================================================

:func:`read_quotes` streams one file as :class:`QuoteChunk` objects (bounded memory); validation, quarantine
and commits are :mod:`quantlake.ingest_chains`' job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from quantlake.errors import MalformedFileError, UserInputError
from quantlake.sources.chains.layout import ChainSettings, Cols, FileContext, Layout
from quantlake.sources.chains.long import CboeEod, DailyChain, Native
from quantlake.sources.chains.stream import ChainFile, batches, discover, read_header
from quantlake.sources.chains.wide import OptionsDX, Orats
from quantlake.tables import OPTION_QUOTES

__all__ = ["FORMATS", "LAYOUTS", "ChainFile", "ChainSettings", "QuoteChunk", "RawRows", "detect", "discover", "read_quotes"]

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (DailyChain(), OptionsDX(), CboeEod(), Orats(), Native())}
FORMATS = ("auto", *LAYOUTS)
QUOTE_COLUMNS = (
    "quote_date", "underlying", "root", "expiry", "strike", "right", "settlement", "bid", "ask", "bid_size",
    "ask_size", "last", "volume", "open_interest", "vendor_iv", "vendor_delta", "vendor_gamma", "vendor_theta",
    "vendor_vega", "underlying_price", "no_market", "contract", "source",
)  # fmt: skip


def detect(header: list[str], origin: str, forced: str = "auto") -> Layout:
    """The layout of a file from its header (``forced``: a layout name, or ``auto``)."""
    if forced != "auto":
        if forced not in LAYOUTS:
            raise UserInputError(f"unknown --format {forced!r}; choose one of {', '.join(FORMATS)}")
        layout = LAYOUTS[forced]
        missing = layout.missing(header)
        if missing:
            raise MalformedFileError(f"{origin}: not a {forced} file: missing column(s) {', '.join(missing)}")
        return layout
    fits = [lay for lay in LAYOUTS.values() if not lay.missing(header)]
    if fits:
        return max(fits, key=lambda lay: len(lay.resolve(header)))  # the most specific match
    closest = min(LAYOUTS.values(), key=lambda lay: len(lay.missing(header)))
    shown_header = ", ".join(h.strip() for h in header[:8]) + (", ..." if len(header) > 8 else "")
    raise MalformedFileError(
        f"{origin}: the header ({shown_header}) matches no chain layout; closest: {closest.name} "
        f"(missing {', '.join(closest.missing(header))}); name one with --format "
        f"({', '.join(LAYOUTS)})"
    )


@dataclass(frozen=True)
class RawRows:
    """A batch as read from its file (text cells), for the raw row of a rejected quote."""

    table: pa.Table
    header: list[str]

    def raw(self, positions: Sequence[int] | np.ndarray) -> list[str]:
        """Rows at ``positions`` as they were in the file: JSON of header name -> cell text."""
        keys: list[str] = []
        for j, name in enumerate(self.header):
            key = name.strip() or f"column {j + 1}"
            while key in keys:
                key += "'"
            keys.append(key)
        rows = self.table.take(pa.array(np.asarray(positions, dtype=np.int64))).to_pylist()
        return [json.dumps({k: _text(v) for k, v in zip(keys, r.values(), strict=False)}, default=str,
                           ensure_ascii=False) for r in rows]  # fmt: skip


def _text(v: object) -> object:
    """A typed cell (Parquet) as JSON can hold it: ``inf``/``nan`` as text (JSON has no such numbers)."""
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


@dataclass
class QuoteChunk:
    """One side of one batch of a file: quotes as an ``option_quotes``-shaped frame plus what went wrong."""

    origin: str  # the file (wide layouts: "<file> [call]" / "<file> [put]")
    frame: pa.Table  # QUOTE_COLUMNS, positionally aligned with row_nos
    row_nos: np.ndarray
    parse_errors: dict[int, list[str]]  # position -> reasons (cells that could not be read)
    rows: RawRows
    malformed: list[tuple[int, str, list[str]]] = field(default_factory=list)



def malformed_raw(fields: list[str]) -> str:
    return json.dumps({"fields": fields}, ensure_ascii=False)


def read_quotes(
    cf: ChainFile, settings: ChainSettings, forced: str = "auto", rows_per_batch: int = 250_000,
    header: list[str] | None = None, layout: Layout | None = None, ctx: FileContext | None = None,
) -> Iterator[QuoteChunk]:  # fmt: skip
    """Stream ``cf``'s quotes, one chunk per batch and side."""
    header = header if header is not None else read_header(cf)
    layout = layout or detect(header, cf.origin, forced)
    index = layout.resolve(header)
    ctx = ctx or FileContext(cf.origin, cf.name, settings)
    labels = ["call", "put"] if layout.wide else [""]
    for b in batches(cf, header, rows_per_batch):
        raw_rows = RawRows(b.table, header)
        if b.table.num_rows:
            sides = [(side.label, _arrow(side.data), dict(side.errors.reasons))
                     for side in layout.sides(Cols(b.table, index), ctx)]  # fmt: skip
        else:
            sides = [(label, _arrow(None), {}) for label in labels]
        for label, frame, errors in sides:
            yield QuoteChunk(
                origin=f"{cf.origin} [{label}]" if label else cf.origin, frame=frame, row_nos=b.row_nos,
                parse_errors=errors, rows=raw_rows, malformed=b.malformed,
            )  # fmt: skip


def _arrow(data: dict[str, object] | None) -> pa.Table:
    """A side's columns as an ``option_quotes``-typed Arrow table (no copies for float arrays)."""
    fields = [OPTION_QUOTES.schema.field(c) for c in QUOTE_COLUMNS]
    if data is None:
        return pa.schema(fields).empty_table()
    arrays = []
    for f in fields:
        v = data[f.name]
        arr = v if isinstance(v, pa.Array) else pa.array(v, type=f.type, from_pandas=True)
        arrays.append(arr if arr.type == f.type else arr.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
