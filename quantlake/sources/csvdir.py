"""The ``csv`` source: the user's own vendor files, a directory (or one file) of CSV or Parquet bars.

Layouts (see README "Bring your own data"): one file per symbol named ``SYMBOL.csv``/``SYMBOL.parquet``, or
long files with a ``symbol`` column; headers ``date,open,high,low,close,volume[,adj_close]``, any case.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from quantlake.errors import InvalidSymbolError, MalformedFileError, UserInputError
from quantlake.sources.base import RawBatch
from quantlake.sources.files import ALIASES, _canon, read_bars_file, symbol_from_filename
from quantlake.sources.intraday_files import IntradayOptions
from quantlake.sources.text import check_first_line

NAME = "csv"
SUFFIXES = (".csv", ".parquet")


def _header(path: Path) -> set[str]:
    """Canonical column names of a file's header (without reading the data)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            cols = pq.read_schema(path).names
        except Exception as exc:
            raise MalformedFileError(f"{path}: not a readable Parquet file: {exc}") from None
    else:
        check_first_line(path)
        try:
            with path.open(encoding="utf-8-sig") as fh:
                cols = next(csv.reader([fh.readline()]), [])
        except UnicodeDecodeError:
            raise MalformedFileError(f"{path}: not a UTF-8 text file") from None
    return {ALIASES[_canon(c)] for c in cols if _canon(c) in ALIASES}


def _check_header(path: Path) -> None:
    missing = [c for c in ("date", "close") if c not in _header(path)]
    if missing:
        raise MalformedFileError(
            f"{path}: missing required column(s) {missing}; expected a header like "
            "date,open,high,low,close,volume[,adj_close][,symbol]"
        )


class CsvSource:
    name = NAME
    incremental = False

    def __init__(self, path: Path | str, intraday: IntradayOptions | None = None) -> None:
        self.path = Path(path).expanduser()
        self.intraday = intraday
        if not self.path.exists():
            raise UserInputError(f"--path {self.path} does not exist")
        files = [self.path] if self.path.is_file() else sorted(
            p for p in self.path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()
        )
        if not files:
            raise UserInputError(f"{self.path}: no .csv or .parquet files found")
        self._per_symbol: dict[str, Path] = {}
        self._long: dict[str, RawBatch] = {}
        for f in files:  # read every header now, so a malformed file fails before any work starts
            if self._has_symbol_column(f):
                self._long[str(f)] = read_bars_file(f, NAME, symbol=None, intraday=intraday)
            else:
                sym = symbol_from_filename(f)
                if sym in self._per_symbol:
                    raise UserInputError(f"{self.path}: two files for symbol {sym}: {self._per_symbol[sym].name}, {f.name}")
                _check_header(f)
                self._per_symbol[sym] = f

    @staticmethod
    def _has_symbol_column(path: Path) -> bool:
        return "symbol" in _header(path)

    def symbols(self) -> list[str]:
        syms = set(self._per_symbol)
        for b in self._long.values():
            syms |= set(b.frame["symbol"].unique())
        return sorted(syms)

    def bars(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        """All rows for ``symbol`` (whole long files are returned once, by :meth:`batches`)."""
        if symbol in self._per_symbol:
            return read_bars_file(self._per_symbol[symbol], NAME, symbol, self.intraday)
        for origin, b in self._long.items():
            if symbol in set(b.frame["symbol"]):
                f = b.frame[b.frame["symbol"] == symbol].reset_index(drop=True)
                return RawBatch(b.table, f, origin, [], required=b.required, raw=b.raw)
        raise InvalidSymbolError(f"no data for symbol {symbol!r} in {self.path}")

    def batches(self) -> list[RawBatch]:
        """Every file as one batch (keeps unparsable rows of long files with their row numbers)."""
        out = [read_bars_file(p, NAME, s, self.intraday) for s, p in self._per_symbol.items()]
        return out + list(self._long.values())

    def actions(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch | None:
        return None
