"""Reading vendor bar files (CSV or Parquet) into ``equity_bars`` batches.

Accepted layout (case-insensitive headers, spaces/underscores ignored):
``date, open, high, low, close, volume`` and optional ``adj_close`` (``Adj Close`` accepted), plus either a
``symbol``/``ticker`` column (one long file) or one file per symbol named ``SYMBOL.csv``/``SYMBOL.parquet``.
Only ``date`` and ``close`` are mandatory; a column present in the header must have a value in every row.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from quantlake.calendars import is_intraday
from quantlake.errors import MalformedFileError
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.intraday_files import IntradayOptions, has_time_of_day, parse_timestamps, to_bars
from quantlake.sources.text import check_first_line, shown
from quantlake.tables import CRYPTO_SYMBOL_RE, SYMBOL_RE

ALIASES = {
    "date": "date",
    "timestamp": "date",
    "datetime": "date",
    "day": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adjclose": "adj_close",
    "adjustedclose": "adj_close",
    "volume": "volume",
    "vol": "volume",
    "symbol": "symbol",
    "ticker": "symbol",
}
NUMERIC = ("open", "high", "low", "close", "adj_close", "volume")


def _canon(header: str) -> str:
    return re.sub(r"[\s_\-.\ufeff]", "", str(header).strip().lower())


def read_table_file(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file as strings/values without interpretation; MalformedFileError if unreadable."""
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        check_first_line(path)
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark that would stick to the first name
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MalformedFileError(f"{path}: cannot read as {path.suffix.lstrip('.').upper()}: {first}") from None


def symbol_from_filename(path: Path) -> str:
    sym = path.stem.strip().upper()
    if not SYMBOL_RE.fullmatch(sym):
        raise MalformedFileError(
            f"{path}: file name does not give a valid symbol ({sym!r}); name files SYMBOL.csv, "
            "or add a 'symbol' column"
        )
    return sym


def parse_dates(raw: pd.Series) -> pd.Series:
    """Parse date strings (ISO first, then anything pandas recognises); NaT where unparsable."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        out = pd.to_datetime(raw)
    else:
        s = raw.astype(str).str.strip()
        out = pd.to_datetime(s, errors="coerce", format="ISO8601")
        if out.isna().any():
            retry = pd.to_datetime(s[out.isna()], errors="coerce", format="mixed")
            out = out.fillna(retry)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert(None)
    return out.dt.date.where(out.notna(), None)


def bars_from_frame(
    df: pd.DataFrame,
    origin: str,
    symbol: str | None,
    source: str,
    symbol_map: dict[str, str] | None = None,
    intraday: IntradayOptions | None = None,
) -> RawBatch:
    """Normalise a vendor frame into an ``equity_bars`` batch (values parsed, nothing validated yet).

    Rows with a time of day (or crypto pairs, or an intraday ``intraday.interval``) make a ``bars`` batch
    instead (:mod:`quantlake.sources.intraday_files`)."""
    original = df.reset_index(drop=True)  # the rows as read, header names as written: rejects keep this text
    df = original
    rename: dict[str, str] = {}
    for col in df.columns:
        canon = ALIASES.get(_canon(col))
        if canon and canon not in rename.values():
            rename[col] = canon
    df = df.rename(columns=rename)[list(rename.values())].copy()
    cols = set(df.columns)
    missing = [c for c in ("date", "close") if c not in cols]
    if missing:
        raise MalformedFileError(
            f"{origin}: missing required column(s) {missing}; expected a header like "
            "date,open,high,low,close,volume[,adj_close][,symbol]"
        )
    if "symbol" not in cols:
        if symbol is None:
            raise MalformedFileError(f"{origin}: no 'symbol' column and no symbol from the file name")
        df["symbol"] = symbol
    else:
        df["symbol"] = df["symbol"].astype(str).str.strip().str.upper()
        if symbol_map:
            df["symbol"] = df["symbol"].replace(symbol_map)
    df[ROW_NO] = np.arange(1, len(df) + 1)
    raw_text = original.set_axis(df[ROW_NO].to_numpy())
    unparsable: list[tuple[int, str, dict[str, object]]] = []
    bad = pd.Series(False, index=df.index)

    opts = intraday or IntradayOptions()
    days = midnight_dates(df["date"])  # daily bars stamped at local midnight with UTC offsets (DST changes)
    if days is not None:
        df["date"] = days
    stamps = parse_timestamps(df["date"])
    crypto = df["symbol"].astype(str).str.fullmatch(CRYPTO_SYMBOL_RE.pattern)
    as_bars = has_time_of_day(stamps) or bool(crypto.any()) or (
        opts.interval is not None and is_intraday(opts.interval)
    )
    if as_bars:
        if not has_time_of_day(stamps) and opts.interval is None:
            opts = IntradayOptions("1d", opts.tz, opts.calendar, opts.bar_time)
        bad_date = stamps.isna()
        for i in df.index[bad_date]:
            unparsable.append(
                (int(df.at[i, ROW_NO]), f"date is not a date/time (got {shown(df.at[i, 'date'])})", {})
            )
        orig = df
        df, bad_zone = to_bars(df, stamps, origin, opts)
        for i in df.index[bad_zone]:
            unparsable.append(
                (int(df.at[i, ROW_NO]), f"local time {shown(orig.at[i, 'date'])} does not exist or is ambiguous "
                 "(daylight-saving change); give times with a UTC offset", {})
            )
        bad |= bad_date | bad_zone
        dates = df["date"]
    else:
        dates = parse_dates(df["date"])
        bad_date = dates.isna()
        for i in df.index[bad_date]:
            unparsable.append((int(df.at[i, ROW_NO]), f"date is not a date (got {shown(df.at[i, 'date'])})", {}))
        bad |= bad_date

    for col in NUMERIC:
        if col not in cols:
            continue
        raw = df[col]
        if raw.dtype == object or pd.api.types.is_string_dtype(raw):
            text = raw.astype(str).str.strip().str.replace(",", "", regex=False)
            num = pd.to_numeric(text, errors="coerce")
            blank = text.isin(["", "nan", "NaN", "null", "NULL", "None", "NA", "N/A", "-"])
            wrong = num.isna() & ~blank & ~bad
            for i in df.index[wrong]:
                unparsable.append((int(df.at[i, ROW_NO]), f"{col} is not a number (got {shown(raw.at[i])})", {}))
            bad |= wrong
            df[col] = num
        else:
            df[col] = pd.to_numeric(raw, errors="coerce")
    df["date"] = dates
    df = df[~bad].copy()
    df["source"] = source
    required = tuple(c for c in NUMERIC if c in cols)
    keys = ["symbol", "interval", "ts", "date"] if as_bars else ["symbol", "date"]
    keep = [*keys, *[c for c in NUMERIC if c in cols], "source", ROW_NO]
    table = "bars" if as_bars else "equity_bars"
    return RawBatch(table, df[keep].reset_index(drop=True), origin, unparsable, required=required, raw=raw_text)


MIDNIGHT_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}[ T]00:00(?::00(?:\.0+)?)?(?:Z|[+-]\d\d:?\d\d)$"


def midnight_dates(raw: pd.Series) -> pd.Series | None:
    """The written dates of stamps that are a midnight with a UTC offset (``2024-03-08 00:00:00-05:00``, then
    ``-04:00`` after the DST change: what pandas/yfinance exports of daily bars look like), when no stamp of
    the column has another time of day; else None.  Other cells are left as they are.

    Such a stamp means the trading day written in it, in the exchange's zone; converting it to UTC first
    would move it to 04:00/05:00 and make daily bars look intraday (or, east of UTC, the day before)."""
    if not (raw.dtype == object or pd.api.types.is_string_dtype(raw)):
        return None
    s = raw.astype(str).str.strip()
    midnight = s.str.fullmatch(MIDNIGHT_WITH_OFFSET)
    if not midnight.any() or (s.str.contains(r"[ T]\d{1,2}:\d{2}", regex=True) & ~midnight).any():
        return None
    return s.where(~midnight, s.str.slice(0, 10))


def read_bars_file(
    path: Path, source: str, symbol: str | None = None, intraday: IntradayOptions | None = None
) -> RawBatch:
    df = read_table_file(path)
    has_symbol_col = any(ALIASES.get(_canon(c)) == "symbol" for c in df.columns)
    sym = None if has_symbol_col else (symbol or symbol_from_filename(path))
    return bars_from_frame(df, str(path), sym, source, intraday=intraday)
