"""Daily bars from the lake as wide arrays (rows = dates, columns = symbols).

Rows are the union of every symbol's dates; a symbol has NaN on every row where it has no bar (before its
first, after its last, and on days it is missing, e.g. rows rejected at ingest).  Nothing is filled: a sweep
simulates each symbol on its own calendar (:func:`calendar_groups`), so a symbol's results never depend on
which other symbols share the sweep, and no price is invented for a day it did not trade.
Close-only series (indices, some vendors) have NaN open/high/low/volume: ``has_ohlc`` is False for them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quantlake.errors import InvalidSymbolError, UserInputError
from quantlake.lake import Lake, symbol_date_filter

if TYPE_CHECKING:
    from backtests.equity.multitf import HigherTimeframe

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Bars:
    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    # multi-timeframe strategies: the closed higher-timeframe bars on these rows (sliced along with them)
    htf: HigherTimeframe | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape

    @property
    def has_ohlc(self) -> np.ndarray:
        """Per symbol: True when it has opens (and highs/lows) wherever it has closes."""
        alive = ~np.isnan(self.close)
        return ~(alive & np.isnan(self.open)).any(axis=0) & alive.any(axis=0)

    @property
    def alive(self) -> np.ndarray:
        return ~np.isnan(self.close)

    def take(self, columns: list[int] | np.ndarray) -> Bars:
        cols = np.asarray(columns, dtype=int)
        return replace(
            self,
            symbols=tuple(self.symbols[i] for i in cols),
            **{f: getattr(self, f)[:, cols] for f in FIELDS},
            htf=None if self.htf is None else self.htf.take(cols),
        )

    def rows(self, start: int, stop: int) -> Bars:
        return self.at_rows(slice(start, stop))

    def at_rows(self, rows: np.ndarray | slice) -> Bars:
        """The bars of the given row positions only (e.g. one calendar: no missing bar left)."""
        return replace(
            self,
            index=self.index[rows],
            **{f: getattr(self, f)[rows] for f in FIELDS},
            htf=None if self.htf is None else self.htf.at_rows(rows),
        )

    def with_fallbacks(self) -> Bars:
        """Open/high/low replaced by the close where missing (close-only series), volume left as is."""

        def fill(a: np.ndarray) -> np.ndarray:
            return np.where(np.isnan(a), self.close, a)

        return replace(self, open=fill(self.open), high=fill(self.high), low=fill(self.low))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, symbols: list[str] | None = None) -> Bars:
        """From long rows (symbol, date, open, high, low, close, volume): one scatter of each field into the
        ``(dates, symbols)`` grid (rows = every date of the frame, sorted; at most one row per symbol and date)."""
        if df.empty:
            raise UserInputError("no bars to backtest")
        dates = pd.to_datetime(df["date"])
        syms = symbols or sorted(df["symbol"].unique())
        codes, uniq = pd.factorize(dates, sort=True)
        index = pd.DatetimeIndex(uniq, name="date")
        col = pd.Index(syms).get_indexer(df["symbol"])
        keep = col >= 0
        rows, col = codes[keep], col[keep]
        flat = rows * len(syms) + col
        if len(flat) and np.bincount(flat, minlength=len(index) * len(syms)).max() > 1:
            raise UserInputError("bars: more than one row for a symbol and date")
        arrays = {}
        for f in FIELDS:
            a = np.full((len(index), len(syms)), np.nan)
            a.ravel()[flat] = df[f].to_numpy(dtype=np.float64, na_value=np.nan)[keep]
            arrays[f] = a
        dead = np.isnan(arrays["close"])
        for f in ("open", "high", "low", "volume"):
            arrays[f][dead] = np.nan
        return cls(index, tuple(syms), arrays["open"], arrays["high"], arrays["low"], arrays["close"],
                   arrays["volume"])  # fmt: skip


def load_bars(
    lake: Lake,
    symbols: list[str] | None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    price: str = "close",
    interval: str = "1d",
) -> Bars:
    """Bars of ``symbols`` (None: every symbol) between ``start`` and ``end`` from ``equity_bars``; at any
    other ``interval`` (or for crypto pairs) the closed bars of :func:`features.bars.resample`, indexed by
    their open instant (UTC)."""
    if interval != "1d" or any(":" in s for s in symbols or []):
        if not symbols:
            raise UserInputError(f"symbols: list them for {interval} bars")
        from features.bars import resample

        df = resample(lake, symbols, interval, start, end)
        df = df[df["close"].notna()].assign(date=pd.to_datetime(df["ts"], utc=True).dt.tz_convert(None))
        df = df[["symbol", "date", "open", "high", "low", "close", "adj_close", "volume"]]
    else:
        where, params = symbol_date_filter(symbols, start, end, "close IS NOT NULL")
        df = lake.read(
            "equity_bars",
            columns=["symbol", "date", "open", "high", "low", "close", "adj_close", "volume"],
            where=where,
            params=params,
        )
    found = set(df["symbol"].unique())
    missing = [s for s in (symbols or []) if s not in found]
    if missing:
        span = f" between {start or '...'} and {end or '...'}" if (start or end) else ""
        raise InvalidSymbolError(f"no equity_bars rows for {', '.join(missing)}{span}")
    if df.empty:
        raise UserInputError("equity_bars has no rows in the requested range")
    if price == "adj_close":
        ratio = (df["adj_close"] / df["close"]).where(df["adj_close"].notna(), 1.0)
        for f in ("open", "high", "low", "close"):
            df[f] = df[f] * ratio
    return Bars.from_frame(df.drop(columns=["adj_close"]), list(symbols) if symbols else None)


def calendar_groups(has_bar: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Columns of ``has_bar`` ``(T, K)`` grouped by identical calendars: ``[(rows, columns), ...]`` with the
    row positions each group trades on, in order of first column.  Columns without any bar are left out."""
    packed = np.packbits(np.asarray(has_bar, dtype=bool), axis=0)
    groups: dict[bytes, list[int]] = {}
    for k in range(packed.shape[1]):
        if has_bar[:, k].any():
            groups.setdefault(packed[:, k].tobytes(), []).append(k)
    return [(np.flatnonzero(has_bar[:, cols[0]]), np.asarray(cols, dtype=np.int64)) for cols in groups.values()]
