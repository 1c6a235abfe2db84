"""Trading calendars: which days an exchange trades, from ``exchange_calendars`` (the maintained calendars
Zipline's community keeps current, with every one-off closure: 9/11 2001, Hurricane Sandy 2012, the national
days of mourning 2004/2007/2018/2025, ...).

The default calendar is the NYSE (``XNYS``) from 1970 to three years ahead; a date outside that range
extends it (the rules are known for every date).  Everything in quantlake that asks "is this a trading day",
"the trading day before", "trading days between" or "the sessions from A to B" calls this module.
"""

from __future__ import annotations

import datetime as dt
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd

if TYPE_CHECKING:
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


def get_calendar(name: str = DEFAULT_CALENDAR, *days: DateLike) -> ExchangeCalendar:
    """The ``exchange_calendars`` calendar ``name`` covering every date in ``days`` (1970 to 3 years ahead
    by default, widened in whole decades when a date falls outside)."""
    first, last = _FIRST_YEAR, dt.date.today().year + _YEARS_AHEAD
    for d in days:
        y = _day(d).year
        if y < first:
            first = y - y % 10
        if y > last:
            last = y - y % 10 + 10
    return _build(name, first, last)


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
