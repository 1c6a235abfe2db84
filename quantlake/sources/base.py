"""The one small protocol every data source implements (DESIGN §8).

An adapter turns one external system into :class:`RawBatch` objects: a pandas frame already named like the
target lake table's columns, plus where it came from.  Validation, quarantine and the lake commit happen
downstream (:mod:`quantlake.ingest`) and are the same for every source.  Nothing outside
``quantlake.sources`` imports a vendor client (yfinance, fredapi, ...).

A source implements the methods of the kinds it serves; :func:`supports` tells which.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd

ROW_NO = "_row_no"  # column of RawBatch.frame: the row's number in its origin (1 = first data row)


@dataclass
class RawBatch:
    """Rows for one lake table from one origin (a file, a URL, an API call)."""

    table: str
    frame: pd.DataFrame
    origin: str
    # rows the adapter itself could not parse (row_no, reason, raw dict); they go to rejected_rows too
    unparsable: list[tuple[int, str, dict[str, object]]] = field(default_factory=list)
    # columns the origin declared (e.g. a CSV header) that must therefore be present in every row;
    # empty means the table's default (equity_bars: close)
    required: tuple[str, ...] = ()

    # the rows as the origin had them (text), indexed by ROW_NO: rejected rows keep this raw text
    raw: pd.DataFrame | None = None

    @property
    def batch_id(self) -> str:
        """Stable id of the origin, so re-ingesting the same file never duplicates its rejected rows."""
        return batch_id(self.table, self.origin)


def batch_id(table: str, origin: str) -> str:
    """Stable id of (table, origin) for ``rejected_rows``."""
    return hashlib.sha1(f"{table}|{origin}".encode()).hexdigest()[:16]


@runtime_checkable
class EquitySource(Protocol):
    name: str

    def symbols(self) -> list[str]:
        """Symbols this source can serve without being told (sample, csv); [] for open-ended vendors."""
        ...

    def bars(self, symbol: str, start: dt.date | None, end: dt.date | None) -> RawBatch:
        """Daily bars for ``equity_bars``; raises InvalidSymbolError for an unknown symbol."""
        ...

    def actions(self, symbol: str, start: dt.date | None, end: dt.date | None) -> RawBatch | None:
        """Splits and dividends for ``corporate_actions`` (None if the source has none)."""
        ...


@runtime_checkable
class OptionSource(Protocol):
    name: str

    def option_underlyings(self) -> list[str]: ...

    def option_chain(self, underlying: str) -> RawBatch:
        """All listed contracts of ``underlying`` as of the source's quote date(s) for ``option_quotes``."""
        ...


@runtime_checkable
class MacroSource(Protocol):
    name: str

    def series_ids(self) -> list[str]: ...

    def macro(self, series_id: str, start: dt.date | None, end: dt.date | None) -> RawBatch:
        """Observations (with realtime_start vintages where the source has them) for ``macro_series``."""
        ...


@runtime_checkable
class CotSource(Protocol):
    name: str

    def cot(self, report_type: str, start: dt.date | None, end: dt.date | None) -> RawBatch:
        """CFTC Commitments of Traders rows for ``cot_positions``; report_type 'disaggregated'|'financial'."""
        ...


def supports(source: object, kind: type) -> bool:
    return isinstance(source, kind)
