"""Bars at any interval (issue 15): where they live, what their timestamps mean, one view over all of them.

* ``equity_bars`` keeps its daily meaning and its ``(symbol, date)`` rows (every existing consumer reads it
  unchanged); it gained ``interval`` (always ``1d``) and ``ts`` (the session's open in UTC) columns.
* ``bars`` holds everything else, keyed ``(symbol, interval, ts)``: intraday equities and crypto at every
  interval (daily crypto too: 24/7 days are not equity sessions).  ``ts`` is the bar's **open** instant in
  UTC; the bar covers ``[ts, ts + interval)``; ``date`` is the exchange-local date (UTC date for 24/7).
* ``instruments`` keeps each symbol's exchange, calendar and time zone; a symbol without a row defaults to
  NYSE, an ``EXCHANGE:BASE/QUOTE`` pair to 24/7 UTC.
* The DuckDB view ``all_bars`` (every :meth:`quantlake.lake.Lake.connect`) is the union of both with the
  same columns, so resampling and research read one relation at any interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb
import pandas as pd

from quantlake.calendars import (
    ALWAYS_OPEN,
    NYSE,
    calendar_for_symbol,
    local_dates,
    session_opens,
    timezone_of,
)

ALL_BARS_VIEW = "all_bars"
BAR_COLUMNS = ("symbol", "interval", "ts", "date", "open", "high", "low", "close", "adj_close", "volume", "source")
# the regular NYSE open, for daily rows of equity_bars written before the interval upgrade (NULL ts)
_DAILY_TS_FALLBACK = "timezone('America/New_York', CAST(date AS TIMESTAMP) + INTERVAL '9 hours 30 minutes')"


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {r[0] for r in con.execute(f'DESCRIBE "{view}"').fetchall()}


def all_bars_select(columns: Mapping[str, Iterable[str]]) -> str | None:
    """The ``all_bars`` query over views named like the tables, given the columns of each present table
    (``{"equity_bars": [...], "bars": [...]}``); None when neither table exists.

    Works on any version of ``equity_bars`` (versions written before the interval upgrade have no
    ``interval``/``ts`` columns: their rows are daily, opened at the regular NYSE open).  The one definition
    of the view: :func:`register_views` (every connection) and ``quantlake lake duckdb-views`` use it."""
    parts = []
    if "equity_bars" in columns:
        ts = f"coalesce(ts, {_DAILY_TS_FALLBACK})" if "ts" in set(columns["equity_bars"]) else _DAILY_TS_FALLBACK
        parts.append(
            f"SELECT symbol, '1d' AS interval, {ts} AS ts, date, open, high, low, close, adj_close, volume, source "
            "FROM equity_bars"
        )
    if "bars" in columns:
        parts.append("SELECT " + ", ".join(f'"{c}"' for c in BAR_COLUMNS) + " FROM bars")
    return " UNION ALL ".join(parts) if parts else None


def register_views(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> None:
    """Create the ``all_bars`` view on a connection that has the lake's table views."""
    present = set(tables)
    select = all_bars_select({t: _columns(con, t) for t in ("equity_bars", "bars") if t in present})
    if select:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {ALL_BARS_VIEW} AS {select}")


def daily_ts(frame: pd.DataFrame, calendars: dict[str, str] | None = None) -> pd.Series:
    """``ts`` of daily bars: the open of each row's session on the symbol's calendar."""
    out = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    if frame.empty:
        return out
    cal_of = frame["symbol"].map(lambda s: (calendars or {}).get(s) or calendar_for_symbol(str(s)))
    for cal, idx in frame.groupby(cal_of).groups.items():
        out.loc[idx] = session_opens(str(cal), frame.loc[idx, "date"]).to_numpy()
    return out


def add_daily_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """``equity_bars`` rows with ``interval`` = 1d and ``ts`` = session open filled where missing."""
    out = frame.copy()
    if "interval" not in out.columns:
        out["interval"] = "1d"
    out["interval"] = out["interval"].fillna("1d")
    missing = out["ts"].isna() if "ts" in out.columns else pd.Series(True, index=out.index)
    if "ts" not in out.columns:
        out["ts"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]")
    ok_date = out["date"].notna()
    fill = missing & ok_date
    if fill.any():
        out.loc[fill, "ts"] = daily_ts(out.loc[fill, ["symbol", "date"]])
    return out


def instrument_rows(symbols: Iterable[str], calendar: str, source: str, exchange: str | None = None) -> pd.DataFrame:
    """``instruments`` rows for symbols of one calendar (crypto pairs split into exchange/base/quote)."""
    rows: list[tuple[str, str, str, str, str, str | None, str | None, str]] = []
    for sym in symbols:
        if ":" in sym and "/" in sym:
            exch, pair = sym.split(":", 1)
            base, quote = pair.split("/", 1)
            rows.append((sym, "crypto", exch, calendar, timezone_of(calendar), base, quote, source))
        else:
            rows.append((sym, "equity", exchange or calendar, calendar, timezone_of(calendar), None, None, source))
    return pd.DataFrame(
        rows, columns=["symbol", "asset_class", "exchange", "calendar", "timezone", "base", "quote", "source"]
    )


def bar_dates(ts: pd.Series, calendar: str) -> pd.Series:
    """Exchange-local date of each bar's open (UTC date on 24/7)."""
    return local_dates(calendar, ts)


__all__ = [
    "ALL_BARS_VIEW",
    "ALWAYS_OPEN",
    "BAR_COLUMNS",
    "NYSE",
    "add_daily_keys",
    "all_bars_select",
    "bar_dates",
    "daily_ts",
    "instrument_rows",
    "register_views",
]
