"""Bars at any interval for every consumer: resampling and gap reports over the lake's ``all_bars`` view.

:func:`resample` is THE way research, the scanner and the CLI get bars at an interval: stored bars when the
lake has that interval, else ``sql/bars_resample.sql`` over the coarsest stored interval that divides it,
aligned to each symbol's sessions (24/7: UTC days), with a bucket emitted only once it has closed.
:func:`gaps` reports bars missing inside sessions (``sql/bars_gaps.sql``); nothing is ever filled in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from features import sql_runner
from quantlake.calendars import calendar_for_symbol, check_interval, parse_interval, session_times
from quantlake.errors import UserInputError
from quantlake.lake import Lake, symbol_date_filter
from quantlake.tables import validate_symbol

OUT_COLUMNS = [
    "symbol", "interval", "ts", "date", "open", "high", "low", "close", "adj_close", "volume", "n_bars", "close_ts",
]
_SRC_COLS = "symbol, ts, date, open, high, low, close, adj_close, volume"


def _us(step: pd.Timedelta) -> int:
    return int(step / pd.Timedelta(microseconds=1))


def calendars_of(con: duckdb.DuckDBPyConnection, symbols: Sequence[str]) -> dict[str, str]:
    """Each symbol's calendar: its ``instruments`` row, else the default of its form."""
    out = {s: calendar_for_symbol(s) for s in symbols}
    has = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'instruments' AND temporary"
    ).fetchone()
    if has and has[0] and symbols:
        rows = con.execute(
            "SELECT symbol, calendar FROM instruments WHERE symbol IN (" + ", ".join("?" for _ in symbols) + ")",
            list(symbols),
        ).fetchall()
        out.update({s: c for s, c in rows if c})
    return out


def stored_intervals(con: duckdb.DuckDBPyConnection, symbols: Sequence[str]) -> dict[str, set[str]]:
    """Intervals the lake holds per symbol."""
    if not _has_view(con, "all_bars"):
        return {}
    rows = con.execute(
        "SELECT DISTINCT symbol, interval FROM all_bars WHERE symbol IN (" + ", ".join("?" for _ in symbols) + ")",
        list(symbols),
    ).fetchall()
    out: dict[str, set[str]] = {}
    for s, iv in rows:
        out.setdefault(s, set()).add(iv)
    return out


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name]).fetchone()
    return bool(row and row[0])


def source_interval(available: set[str], target: str) -> str | None:
    """The coarsest stored interval that divides ``target`` (``target`` itself if stored)."""
    want = parse_interval(target)
    if target in available:
        return target
    fits = [iv for iv in available if parse_interval(iv) < want and _divides(parse_interval(iv), want)]
    return max(fits, key=parse_interval) if fits else None


def _divides(src: pd.Timedelta, dst: pd.Timedelta) -> bool:
    if dst >= pd.Timedelta(days=1):  # a session (1d) or week is built from any intraday bar or from 1d
        return src <= pd.Timedelta(days=1)
    return dst % src == pd.Timedelta(0)


def _sessions_table(calendar: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    # a week on either side so weekly buckets know their whole week
    return session_times(calendar, start - dt.timedelta(days=7), end + dt.timedelta(days=7))


def resample(
    lake: Lake | None = None,
    symbols: Sequence[str] = (),
    interval: str = "1h",
    start: dt.date | None = None,
    end: dt.date | None = None,
    as_of: pd.Timestamp | dt.datetime | None = None,
    source_interval_: str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Bars of ``symbols`` at ``interval`` (columns :data:`OUT_COLUMNS`), closed as of ``as_of`` (default now).

    Stored bars of that interval are returned as they are; otherwise the coarsest stored finer interval is
    aggregated by ``sql/bars_resample.sql``.  ``start``/``end`` bound the session dates.  A symbol with no
    suitable bars raises :class:`UserInputError` naming what the lake has."""
    check_interval(interval)
    syms = [validate_symbol(s) for s in symbols]
    if not syms:
        raise UserInputError("resample needs at least one symbol")
    as_of_ts = pd.Timestamp(as_of if as_of is not None else pd.Timestamp.now(tz="UTC"))
    as_of_ts = as_of_ts.tz_localize("UTC") if as_of_ts.tzinfo is None else as_of_ts.tz_convert("UTC")
    own = con is None
    con = con or (lake or Lake()).connect()
    try:
        available = stored_intervals(con, syms)
        cals = calendars_of(con, syms)
        plan: dict[tuple[str, str], list[str]] = {}
        for s in syms:
            src = source_interval_ or source_interval(available.get(s, set()), interval)
            if src is None or src not in available.get(s, set()):
                have = ", ".join(sorted(available.get(s, set()), key=parse_interval)) or "no bars"
                raise UserInputError(f"{s}: cannot make {interval} bars from what the lake has ({have})")
            plan.setdefault((src, cals[s]), []).append(s)
        frames = [
            _resample_group(con, group, src, interval, cal, start, end, as_of_ts)
            for (src, cal), group in sorted(plan.items())
        ]
    finally:
        if own:
            con.close()
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=OUT_COLUMNS)
    return out.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)


def _load_src(
    con: duckdb.DuckDBPyConnection, symbols: list[str], src: str, start: dt.date | None, end: dt.date | None
) -> None:
    where, params = symbol_date_filter(symbols, start, end, "interval = ?")  # the extra clause comes first
    con.execute(f"CREATE OR REPLACE TEMP TABLE src AS SELECT {_SRC_COLS} FROM all_bars WHERE {where}", [src, *params])


def _resample_group(
    con: duckdb.DuckDBPyConnection,
    symbols: list[str],
    src: str,
    interval: str,
    calendar: str,
    start: dt.date | None,
    end: dt.date | None,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    _load_src(con, symbols, src, start, end)
    src_step = parse_interval(src)
    if src == interval:  # stored bars: closed by construction; as_of still applies
        df = con.execute(
            "SELECT symbol, CAST(? AS VARCHAR) AS interval, ts, date, open, high, low, close, adj_close, volume, "
            "1 AS n_bars, ts + to_microseconds(?) AS close_ts FROM src ORDER BY symbol, ts",
            [interval, _us(src_step)],
        ).df()
        if calendar != "24/7" and src == "1d":  # a daily bar closes at its session's close
            closes = session_times(calendar).set_index("date")["close"]
            df["close_ts"] = pd.to_datetime(df["date"]).dt.date.map(closes).fillna(df["close_ts"])
        return df[pd.to_datetime(df["close_ts"], utc=True) <= as_of].reset_index(drop=True)
    span = con.execute("SELECT min(date), max(date) FROM src").fetchone()
    if not span or span[0] is None:
        return pd.DataFrame(columns=OUT_COLUMNS)
    cal = _sessions_table(calendar, _as_date(span[0]), _as_date(span[1]))
    con.register("cal_sessions", cal)
    step = parse_interval(interval)
    weekly = step == pd.Timedelta(weeks=1)
    params = {
        "step_us": 0 if step >= pd.Timedelta(days=1) else _us(step),
        "weekly": weekly,
        "src_step_us": _us(src_step),
        "as_of": as_of.to_pydatetime(),
        "interval": interval,
    }
    table = sql_runner.run(con, "bars_resample", params)
    con.unregister("cal_sessions")
    return table.to_pandas()


def _as_date(v: Any) -> dt.date:
    return v.date() if isinstance(v, dt.datetime) else v


def gaps(lake: Lake | None = None, symbols: Sequence[str] = (), interval: str = "5m",
         con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Runs of bars missing inside sessions for stored ``interval`` bars of ``symbols`` (every symbol that
    has that interval when empty): symbol, interval, date, gap_start, gap_end, missing_bars."""
    check_interval(interval)
    step = parse_interval(interval)
    cols = ["symbol", "interval", "date", "gap_start", "gap_end", "missing_bars"]
    if step >= pd.Timedelta(days=1):
        raise UserInputError("gaps are reported for intraday intervals (a missing daily bar is a missing session)")
    own = con is None
    con = con or (lake or Lake()).connect()
    try:
        if not _has_view(con, "all_bars"):
            return pd.DataFrame(columns=cols)
        syms = [validate_symbol(s) for s in symbols] or [
            r[0] for r in con.execute("SELECT DISTINCT symbol FROM all_bars WHERE interval = ?", [interval]).fetchall()
        ]
        if not syms:
            return pd.DataFrame(columns=cols)
        cals = calendars_of(con, syms)
        frames = []
        for cal in sorted(set(cals.values())):
            group = [s for s in syms if cals[s] == cal]
            _load_src(con, group, interval, None, None)
            span = con.execute("SELECT min(date), max(date) FROM src").fetchone()
            if not span or span[0] is None:
                continue
            con.register("cal_sessions", _sessions_table(cal, _as_date(span[0]), _as_date(span[1])))
            frames.append(sql_runner.run(con, "bars_gaps", {"step_us": _us(step), "interval": interval}).to_pandas())
            con.unregister("cal_sessions")
    finally:
        if own:
            con.close()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
