"""The ``sample`` source: real daily market data shipped inside the package (see sample_data/PROVENANCE.md).

Offline and deterministic, it is the default source of ``quantlake demo`` and of most tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from quantlake.errors import InvalidSymbolError
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.files import bars_from_frame, parse_dates, read_bars_file, read_table_file

NAME = "sample"


def data_dir() -> Path:
    return Path(str(resources.files("quantlake") / "sample_data"))


def _window(batch: RawBatch, start: dt.date | None, end: dt.date | None) -> RawBatch:
    f = batch.frame
    mask = pd.Series(True, index=f.index)
    if start:
        mask &= f["date"] >= start
    if end:
        mask &= f["date"] <= end
    batch.frame = f[mask].reset_index(drop=True)
    return batch


def _relative(batch: RawBatch, root: Path) -> RawBatch:
    """Name origins ``sample:<file>`` so batch ids do not depend on where the package is installed."""
    if batch.origin.startswith(str(root)):
        batch.origin = "sample:" + batch.origin[len(str(root)) :].lstrip("/")
    return batch


class SampleSource:
    """Equities/ETFs, indices, VIX, FRED series and one real option chain, all from package files."""

    name = NAME
    incremental = False  # local files: always read whole, the lake's merge skips what is already there

    # symbol in the lake -> (file relative to sample_data, column in a wide file or None)
    _WIDE_CLOSES: ClassVar[dict[str, tuple[str, str]]] = {
        "^GSPC": ("index_closes/GSPC.csv", "^GSPC"),
        "^RUT": ("index_closes/RUT.csv", "^RUT"),
        "MSFT": ("eod_closes_2010_2018/eod_closes.csv", "MSFT.O"),
        "AMZN": ("eod_closes_2010_2018/eod_closes.csv", "AMZN.O"),
        "GS": ("eod_closes_2010_2018/eod_closes.csv", "GS.N"),
        "GDX": ("eod_closes_2010_2018/eod_closes.csv", "GDX"),
        "GLD": ("eod_closes_2010_2018/eod_closes.csv", "GLD"),
    }

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or data_dir()

    # ------------------------------------------------------------- equities
    def symbols(self) -> list[str]:
        files = sorted(p.stem.upper() for p in (self.root / "equities").glob("*.csv"))
        return [*files, "^VIX", *self._WIDE_CLOSES]

    def _bars_builders(self) -> dict[str, Callable[[], RawBatch]]:
        out: dict[str, Callable[[], RawBatch]] = {}
        for p in sorted((self.root / "equities").glob("*.csv")):
            out[p.stem.upper()] = partial(read_bars_file, p, NAME)
        out["^VIX"] = partial(read_bars_file, self.root / "vix" / "vix-daily.csv", NAME, "^VIX")
        for sym, (rel, col) in self._WIDE_CLOSES.items():
            out[sym] = partial(self._wide_close, sym, rel, col)
        return out

    def _wide_close(self, symbol: str, rel: str, col: str) -> RawBatch:
        path = self.root / rel
        df = read_table_file(path)
        date_col = df.columns[0]
        frame = pd.DataFrame({"date": df[date_col], "close": df[col]})
        frame = frame[frame["close"].astype(str).str.strip() != ""]  # no observation that day
        batch = bars_from_frame(frame, f"{path}#{col}", symbol, NAME)
        return batch

    def bars(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        builders = self._bars_builders()
        if symbol not in builders:
            raise InvalidSymbolError(
                f"sample data has no symbol {symbol!r}; available: {', '.join(self.symbols())}"
            )
        return _window(_relative(builders[symbol](), self.root), start, end)

    def actions(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch | None:
        if symbol != "SPY":
            return None
        path = self.root / "dividends" / "SPY_2019_with_dividends.csv"
        df = read_table_file(path)
        dates = parse_dates(df["Date"])
        rows = []
        for i, d in enumerate(dates):
            div = float(df["Dividends"].iloc[i] or 0)
            split = float(df["Stock Splits"].iloc[i] or 0)
            if div > 0:
                rows.append({"symbol": "SPY", "date": d, "kind": "dividend", "value": div, ROW_NO: i + 1})
            if split > 0:
                rows.append({"symbol": "SPY", "date": d, "kind": "split", "value": split, ROW_NO: i + 1})
        frame = pd.DataFrame(rows, columns=["symbol", "date", "kind", "value", ROW_NO])
        frame["source"] = NAME
        return _window(_relative(RawBatch("corporate_actions", frame, str(path)), self.root), start, end)

    # ------------------------------------------------------------- options
    SPX_CHAINS = "option_quotes_spx_2019"

    def option_underlyings(self) -> list[str]:
        """^GDAXI (one snapshot, through :meth:`option_chain`) and SPX (34 daily chain files, through
        :meth:`option_files`: they stream through the chain-file reader like any vendor file)."""
        return ["^GDAXI", "SPX"]

    def option_files(self, underlying: str) -> Path | None:
        """The directory of chain files of ``underlying`` (None when it is served by :meth:`option_chain`)."""
        return self.root / self.SPX_CHAINS if underlying == "SPX" else None

    def option_chain(self, underlying: str) -> RawBatch:
        if underlying != "^GDAXI":
            raise InvalidSymbolError(f"sample data has option quotes only for ^GDAXI, not {underlying!r}")
        path = self.root / "option_quotes_dax_2018" / "dax_options_2018-04-27.csv"
        df = read_table_file(path)
        spot = float(df.loc[df["Instrument"] == ".GDAXI", "CF_CLOSE"].iloc[0])
        opts = df[df["Instrument"] != ".GDAXI"].copy()
        right = opts["PUTCALLIND"].str.strip().str.upper().map({"CALL": "C", "PUT": "P"})
        frame = pd.DataFrame(
            {
                "quote_date": parse_dates(opts["CF_DATE"]),
                "underlying": "^GDAXI",
                "expiry": parse_dates(opts["EXPIR_DATE"]),
                "strike": pd.to_numeric(opts["STRIKE_PRC"], errors="coerce"),
                "right": right,
                "last": pd.to_numeric(opts["CF_CLOSE"], errors="coerce"),
                "vendor_iv": pd.to_numeric(opts["IMP_VOLT"], errors="coerce") / 100.0,
                "underlying_price": spot,
                "contract": opts["Instrument"].str.strip(),
                "source": NAME,
                ROW_NO: opts.index.to_numpy() + 1,
            }
        )
        return _relative(RawBatch("option_quotes", frame.reset_index(drop=True), str(path)), self.root)

    # ------------------------------------------------------------- macro
    def series_ids(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "fred").glob("*.csv"))

    def macro(self, series_id: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        path = self.root / "fred" / f"{series_id}.csv"
        if not path.is_file():
            raise InvalidSymbolError(
                f"sample data has no FRED series {series_id!r}; available: {', '.join(self.series_ids())}"
            )
        return _window(_relative(_fred_csv(path, series_id), self.root), start, end)


@cache
def _fred_file(path: Path) -> pd.DataFrame:
    return read_table_file(path)


def _fred_csv(path: Path, series_id: str) -> RawBatch:
    df = _fred_file(path)
    dates = parse_dates(df.iloc[:, 0])
    text = df.iloc[:, 1].astype(str).str.strip()
    keep = (text != "") & (text != ".")  # FRED: empty or "." = no observation that day
    frame = pd.DataFrame(
        {
            "series_id": series_id,
            "date": dates,
            "realtime_start": dates,  # no vintages in these files: known on the observation date
            "value": pd.to_numeric(text, errors="coerce"),
            "source": NAME,
            ROW_NO: np.arange(1, len(df) + 1),
        }
    )[keep.to_numpy()]
    return RawBatch("macro_series", frame.reset_index(drop=True), str(path))
