"""Trading calendars: which days an exchange trades, from ``exchange_calendars`` (the maintained calendars
Zipline's community keeps current, with every one-off closure: 9/11 2001, Hurricane Sandy 2012, the national
days of mourning 2004/2007/2018/2025, ...).

The default calendar is the NYSE (``XNYS``) from 1970 to three years ahead; a date outside that range
extends it (the rules are known for every date).  Everything in quantlake that asks "is this a trading day",
"the trading day before", "trading days between" or "the sessions from A to B" calls this module.

Sessions, bar intervals and annualization
----------------------------------------
* Calendars by name: ``XNYS`` (NYSE: holidays, early closes, one-off closures) and ``24/7`` (crypto: one
  session per UTC day, 00:00-24:00).  :func:`calendar_for_symbol` gives the default of a symbol: ``24/7``
  for exchange-qualified pairs (``BINANCE:BTC/USDT``), else ``XNYS``.
* :func:`session_times` gives each session's date and its open/close instants in UTC;
  :func:`session_opens` the open of given dates (vectorized; a date that is not a session, e.g. a vendor bar
  on an unscheduled closure, gets the calendar's regular open time on that local date).
* Bar intervals are strings ``<n>m``, ``<n>h``, ``1d``, ``1w`` (the ccxt spelling): :func:`parse_interval`.
* :func:`periods_per_year` is how many bars of an interval a year has on a calendar: sessions per year
  (252 for NYSE by convention, 365 for 24/7) x bars per session (intraday bars are aligned to the session
  open, so the last bar of a 6.5-hour NYSE session at 1h is a half-hour bar: 7 bars a session); ``1w`` is
  52.  Every annualized statistic takes this number instead of hard-coding 252.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from quantlake.errors import UserInputError

if TYPE_CHECKING:
    import exchange_calendars
    from exchange_calendars import ExchangeCalendar

DEFAULT_CALENDAR = "XNYS"
TRADING_DAYS_PER_YEAR = 252  # the annualization factor of daily NYSE returns (quantlake.stats' default)
_FIRST_YEAR = 1970
_YEARS_AHEAD = 3

__all__ = [
    "DEFAULT_CALENDAR",
    "TRADING_DAYS_PER_YEAR",
    "get_calendar",
    "holidays",
    "is_trading_day",
    "next_trading_day",
    "previous_trading_day",
    "sessions",
    "trading_days_between",
]

DateLike: TypeAlias = "dt.date | str | pd.Timestamp | np.datetime64"


def _day(value: DateLike) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


@lru_cache(maxsize=16)
def _build(name: str, first_year: int, last_year: int) -> ExchangeCalendar:
    import exchange_calendars as xc

    with warnings.catch_warnings():  # exchange_calendars 4.13 on pandas 3.1: Series.values deprecation
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xc.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")


def _span(*days: DateLike) -> tuple[int, int]:
    """First and last year of the calendar covering ``days`` (1970 to 3 years ahead by default, widened in
    whole decades when a date falls outside)."""
    first, last = _FIRST_YEAR, dt.date.today().year + _YEARS_AHEAD
    for d in days:
        y = _day(d).year
        if y < first:
            first = y - y % 10
        if y > last:
            last = y - y % 10 + 10
    return first, last


def get_calendar(name: str = DEFAULT_CALENDAR, *days: DateLike) -> ExchangeCalendar:
    """The ``exchange_calendars`` calendar ``name`` covering every date in ``days`` (1970 to 3 years ahead
    by default, widened in whole decades when a date falls outside)."""
    return _build(name, *_span(*days))


@lru_cache(maxsize=16)
def _session_days(name: str, first_year: int, last_year: int) -> np.ndarray:
    """Sorted ``datetime64[D]`` sessions of a built calendar (fast membership and counting)."""
    return np.asarray(_build(name, first_year, last_year).sessions.values.astype("datetime64[D]"))


def _days(name: str, *days: DateLike) -> np.ndarray:
    cal = get_calendar(name, *days)
    first = pd.Timestamp(cal.first_session).year
    last = pd.Timestamp(cal.last_session).year
    return _session_days(name, first, last)


def sessions(start: DateLike, end: DateLike, calendar: str = DEFAULT_CALENDAR) -> pd.DatetimeIndex:
    """Trading days from ``start`` to ``end`` (both inclusive), midnight timestamps without time zone."""
    a, b = _day(start), _day(end)
    if b < a:
        return pd.DatetimeIndex([])
    days = _days(calendar, a, b)
    lo = np.searchsorted(days, np.datetime64(a, "D"), side="left")
    hi = np.searchsorted(days, np.datetime64(b, "D"), side="right")
    return pd.DatetimeIndex(days[lo:hi].astype("datetime64[ns]"))


def is_trading_day(day: DateLike, calendar: str = DEFAULT_CALENDAR) -> bool:
    d = _day(day)
    days = _days(calendar, d)
    i = np.searchsorted(days, np.datetime64(d, "D"))
    return bool(i < len(days) and days[i] == np.datetime64(d, "D"))


def previous_trading_day(day: DateLike, calendar: str = DEFAULT_CALENDAR) -> dt.date:
    """``day`` itself if it is a trading day, else the closest earlier one."""
    d = _day(day)
    days = _days(calendar, d - dt.timedelta(days=31), d)
    i = np.searchsorted(days, np.datetime64(d, "D"), side="right") - 1
    return days[i].astype(dt.date)


def next_trading_day(day: DateLike, calendar: str = DEFAULT_CALENDAR) -> dt.date:
    """The first trading day strictly after ``day``."""
    d = _day(day)
    days = _days(calendar, d, d + dt.timedelta(days=31))
    i = np.searchsorted(days, np.datetime64(d, "D"), side="right")
    return days[i].astype(dt.date)


def trading_days_between(earlier: DateLike, later: DateLike, calendar: str = DEFAULT_CALENDAR) -> int:
    """Trading days after ``earlier`` up to and including ``later`` (0 when ``later <= earlier``)."""
    a, b = _day(earlier), _day(later)
    if b <= a:
        return 0
    days = _days(calendar, a, b)
    lo = np.searchsorted(days, np.datetime64(a, "D"), side="right")
    hi = np.searchsorted(days, np.datetime64(b, "D"), side="right")
    return int(hi - lo)


def holidays(start: DateLike, end: DateLike, calendar: str = DEFAULT_CALENDAR) -> list[dt.date]:
    """Weekdays from ``start`` to ``end`` (inclusive) the exchange is closed: regular holidays and one-off
    closures."""
    a, b = _day(start), _day(end)
    weekdays = pd.bdate_range(a, b)
    open_days = sessions(a, b, calendar)
    return [d.date() for d in weekdays.difference(open_days)]


# ================================================================================================
# Sessions with open/close instants, 24/7, bar intervals and periods per year (issue 15)
NYSE = "XNYS"
ALWAYS_OPEN = "24/7"
CALENDARS = (NYSE, ALWAYS_OPEN)
# conventional sessions a year: NYSE has 250-253 (252 is the market convention); crypto trades every day
SESSIONS_PER_YEAR = {NYSE: float(TRADING_DAYS_PER_YEAR), ALWAYS_OPEN: 365.0}
_FIRST = "1885-01-01"  # XNYS history in exchange_calendars starts here (sessions of old daily bars)

_INTERVAL_RE = re.compile(r"^(\d{1,4})(m|h|d|w)$")
_UNIT = {"m": "min", "h": "h", "d": "D", "w": "W"}


# ------------------------------------------------------------------------------------------------ intervals
def parse_interval(interval: str) -> pd.Timedelta:
    """``"5m"`` -> 5 minutes.  Minutes and hours of any size that divides a day, ``1d`` and ``1w``."""
    m = _INTERVAL_RE.fullmatch(str(interval).strip())
    if not m:
        raise UserInputError(f"invalid interval {interval!r}: use e.g. 1m, 5m, 15m, 1h, 4h, 1d, 1w")
    n, unit = int(m.group(1)), m.group(2)
    if n <= 0 or (unit in "dw" and n != 1):
        raise UserInputError(f"invalid interval {interval!r}: days and weeks are 1d and 1w only")
    step = pd.Timedelta(n, unit=_UNIT[unit])
    if unit in "mh" and (pd.Timedelta(days=1) % step) != pd.Timedelta(0):
        raise UserInputError(f"invalid interval {interval!r}: it must divide a day (e.g. 1h, 2h, 4h, 6h, 12h)")
    return step


def check_interval(interval: str) -> str:
    """The interval string, validated."""
    parse_interval(interval)
    return str(interval).strip()


def is_intraday(interval: str) -> bool:
    return parse_interval(interval) < pd.Timedelta(days=1)


def interval_from_step(step: pd.Timedelta) -> str:
    """The canonical interval string of a bar length (``Timedelta(hours=1)`` -> ``"1h"``)."""
    minutes = step / pd.Timedelta(minutes=1)
    if step == pd.Timedelta(weeks=1):
        return "1w"
    if step == pd.Timedelta(days=1):
        return "1d"
    if minutes != int(minutes) or minutes <= 0:
        raise UserInputError(f"bars {step} apart are not a supported interval (whole minutes up to a day)")
    m = int(minutes)
    return f"{m // 60}h" if m % 60 == 0 else f"{m}m"


# ------------------------------------------------------------------------------------------------ calendars
def check_calendar(name: str) -> str:
    if name not in CALENDARS:
        raise UserInputError(f"unknown calendar {name!r}; choose one of {', '.join(CALENDARS)}")
    return name


def _horizon() -> str:
    return (pd.Timestamp.today().normalize() + pd.Timedelta(days=366)).strftime("%Y-%m-%d")


@lru_cache(maxsize=4)
def _exchange_calendar(name: str = NYSE) -> exchange_calendars.ExchangeCalendar:
    """The ``exchange_calendars`` calendar of an exchange (from 1885 to three years ahead; built once per process).

    24/7 is not built through it: its sessions are plain UTC days (exchange_calendars' own 24/7 calendar
    takes ~20 s to build over 50 years because it indexes every minute)."""
    if check_calendar(name) == ALWAYS_OPEN:
        raise UserInputError("24/7 has no exchange calendar object; use session_times('24/7')")
    return get_calendar(name, dt.date.fromisoformat(_FIRST))


def calendar_for_symbol(symbol: str) -> str:
    """Default calendar of a symbol: exchange-qualified crypto pairs trade 24/7, the rest on NYSE."""
    return ALWAYS_OPEN if ":" in symbol and "/" in symbol else NYSE


_ZONES = {NYSE: "America/New_York", ALWAYS_OPEN: "UTC"}


def timezone_of(calendar: str) -> str:
    """IANA time zone a calendar's local dates are in (``America/New_York``, ``UTC``)."""
    return _ZONES[check_calendar(calendar)]


@lru_cache(maxsize=8)
def _schedule(name: str) -> pd.DataFrame:
    """Every session's local date and open/close instants (UTC), from 1885 (NYSE) to three years ahead."""
    if name == ALWAYS_OPEN:  # one session per UTC day, 00:00 to 24:00
        days = pd.date_range("1970-01-01", _horizon(), freq="D", tz="UTC")
        return pd.DataFrame(
            {
                "date": days.date,
                "open": days.astype("datetime64[us, UTC]"),
                "close": (days + pd.Timedelta(days=1)).astype("datetime64[us, UTC]"),
            }
        )
    cache = _schedule_cache_file(name)
    if cache is not None and cache.exists():
        try:
            return pd.read_parquet(cache)
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    sched = _exchange_calendar(name).schedule[["open", "close"]]
    out = pd.DataFrame(
        {"date": sched.index.date, "open": sched["open"].to_numpy(), "close": sched["close"].to_numpy()}
    )
    out["open"] = pd.to_datetime(out["open"], utc=True).astype("datetime64[us, UTC]")
    out["close"] = pd.to_datetime(out["close"], utc=True).astype("datetime64[us, UTC]")
    if cache is not None:
        _write_cache(out, cache)
    return out


def _schedule_cache_file(name: str) -> Path | None:
    """Where the schedule of ``name`` is cached under ``$QUANTLAKE_HOME/cache``: importing and building an
    exchange calendar costs ~1.5 s per process, every daily-bar ingest needs the session opens, and the
    schedule changes only with the exchange_calendars release (part of the file name) and the year."""
    from importlib.metadata import PackageNotFoundError, version

    from quantlake.config import home

    try:
        release = version("exchange_calendars")
    except PackageNotFoundError:
        return None
    first, last = _span(dt.date.fromisoformat(_FIRST))
    return home() / "cache" / "calendars" / f"{name}-{release}-{first}-{last}.parquet"


def _write_cache(frame: pd.DataFrame, path: Path) -> None:
    """Atomic write; a home that cannot be written only loses the cache."""
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
    except OSError:
        pass


def session_times(calendar: str, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """Sessions between ``start`` and ``end`` (inclusive): columns ``date``, ``open``, ``close`` (UTC)."""
    s = _schedule(check_calendar(calendar))
    mask = np.ones(len(s), dtype=bool)
    if start is not None:
        mask &= s["date"].to_numpy() >= start
    if end is not None:
        mask &= s["date"].to_numpy() <= end
    return s[mask].reset_index(drop=True)


def session_opens(calendar: str, dates: Any) -> pd.Series:
    """Open instant (UTC) of the session on each local date in ``dates``.

    A date that is no session gets the calendar's regular open time on that local date, so a vendor's bar
    on an unscheduled closure still gets a deterministic timestamp instead of being dropped."""
    days = pd.Series(pd.to_datetime(pd.Series(dates)).dt.date)
    sched = _schedule(check_calendar(calendar)).set_index("date")["open"]
    opens = days.map(sched)
    missing = opens.isna() & days.notna()
    if missing.any():
        open_time = _exchange_calendar(calendar).open_times[-1][1] if calendar != ALWAYS_OPEN else dt.time(0, 0)
        local = pd.to_datetime(days[missing].astype(str) + " " + open_time.isoformat())
        opens[missing] = local.dt.tz_localize(timezone_of(calendar)).dt.tz_convert("UTC")
    return pd.to_datetime(opens, utc=True).astype("datetime64[us, UTC]").reset_index(drop=True)


def local_dates(calendar: str, ts: Any) -> pd.Series:
    """The calendar-local date of each UTC instant."""
    t = pd.to_datetime(pd.Series(ts), utc=True)
    return t.dt.tz_convert(timezone_of(calendar)).dt.date


# ------------------------------------------------------------------------------------------------ annualization
def bars_per_session(interval: str, calendar: str) -> float:
    """Bars of ``interval`` in a regular session (session-aligned; a partial last bar counts as one)."""
    step = parse_interval(interval)
    if step >= pd.Timedelta(days=1):
        return 1.0
    check_calendar(calendar)
    if calendar == ALWAYS_OPEN:
        return float(math.ceil(pd.Timedelta(days=1) / step))
    cal = _exchange_calendar(calendar)
    o, c = cal.open_times[-1][1], cal.close_times[-1][1]
    length = pd.Timedelta(hours=c.hour - o.hour, minutes=c.minute - o.minute)
    return float(math.ceil(length / step))


def periods_per_year(interval: str = "1d", calendar: str = NYSE) -> float:
    """Bars of ``interval`` a year on ``calendar``: 252 for daily NYSE bars, 365 x 24 for hourly crypto,
    252 x 7 for hourly NYSE bars (session-aligned), 52 for weekly bars."""
    if parse_interval(interval) == pd.Timedelta(weeks=1):
        return 52.0
    return SESSIONS_PER_YEAR[check_calendar(calendar)] * bars_per_session(interval, calendar)
