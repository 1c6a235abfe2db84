"""US listed-option expiry calendar: NYSE holidays, monthly (third-Friday) and weekly (Friday) expiries.

Simplifications, on purpose:

* Holidays are the regular NYSE holidays built from pandas' holiday rules (New Year's Day - a Saturday holiday
  is not moved to Friday -, Martin Luther King Jr. Day from 1998, Presidents' Day, Good Friday, Memorial Day,
  Juneteenth from 2022, Independence Day, Labor Day, Thanksgiving, Christmas; Saturday/Sunday holidays observed
  on the nearest weekday).  One-off closures (9/11 2001, Hurricane Sandy 2012, national days of mourning) are
  not included.
* An expiry that falls on a holiday moves to the previous trading day (e.g. Good Friday 2019-04-19 ->
  Thursday 2019-04-18), as the exchanges do.
* Monthly options expire on the third Friday (the last trading day; AM-settled index options and the
  pre-2015 Saturday expiration date are not distinguished).  Weeklies are every other Friday - no Monday/
  Wednesday or daily expiries.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pandas as pd
from dateutil.relativedelta import MO
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

__all__ = [
    "expiry_schedule",
    "is_trading_day",
    "listed_expiries",
    "monthly_expiry",
    "nyse_holidays",
    "previous_trading_day",
    "third_friday",
]

FRIDAY = 4


class _NYSEHolidays(AbstractHolidayCalendar):
    rules = [  # noqa: RUF012 - pandas' API is a class attribute
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        Holiday(
            "Martin Luther King Jr. Day",
            month=1,
            day=1,
            offset=pd.DateOffset(weekday=MO(3)),
            start_date="1998-01-01",
        ),
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, observance=nearest_workday, start_date="2022-01-01"),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas", month=12, day=25, observance=nearest_workday),
    ]


@lru_cache(maxsize=256)
def _holidays_of_year(year: int) -> frozenset[dt.date]:
    days = _NYSEHolidays().holidays(dt.date(year, 1, 1), dt.date(year, 12, 31))
    return frozenset(d.date() for d in days if d.weekday() < 5)  # a Saturday New Year's Day is no holiday


def nyse_holidays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Regular NYSE holidays between ``start`` and ``end`` (inclusive), sorted."""
    out: set[dt.date] = set()
    for year in range(start.year, end.year + 1):
        out |= _holidays_of_year(year)
    return sorted(d for d in out if start <= d <= end)


def is_trading_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _holidays_of_year(day.year)


def previous_trading_day(day: dt.date) -> dt.date:
    """``day`` itself if it is a trading day, else the closest earlier one."""
    while not is_trading_day(day):
        day -= dt.timedelta(days=1)
    return day


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(FRIDAY - first.weekday()) % 7 + 14)


def monthly_expiry(year: int, month: int) -> dt.date:
    """The standard monthly expiry: the third Friday, or the trading day before it if that is a holiday."""
    return previous_trading_day(third_friday(year, month))


@lru_cache(maxsize=8192)
def expiry_schedule(
    quote_date: dt.date, weeklies: int = 4, months: int = 12
) -> tuple[tuple[dt.date, str], ...]:
    """(expiry, kind) pairs listed on ``quote_date``, sorted (see :func:`listed_expiries`); cached."""
    monthly: list[dt.date] = []
    y, m = quote_date.year, quote_date.month
    while len(monthly) < months:
        e = monthly_expiry(y, m)
        if e > quote_date:
            monthly.append(e)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    kinds = {e: "monthly" for e in monthly}
    friday = quote_date + dt.timedelta(days=(FRIDAY - quote_date.weekday()) % 7 or 7)
    found = 0
    while found < weeklies:
        e = previous_trading_day(friday)
        if e > quote_date:  # the monthly expiry counts as its week's expiry
            kinds.setdefault(e, "weekly")
            found += 1
        friday += dt.timedelta(days=7)
    return tuple(sorted(kinds.items()))


def listed_expiries(quote_date: dt.date, weeklies: int = 4, months: int = 12) -> pd.DataFrame:
    """Expiries listed on ``quote_date``: the next ``weeklies`` Friday expiries and the monthlies of the next
    ``months`` months, strictly after ``quote_date``; columns ``expiry`` (date) and ``kind`` ("monthly" or
    "weekly"; a Friday that is also the monthly expiry is "monthly")."""
    pairs = expiry_schedule(quote_date, weeklies, months)
    return pd.DataFrame({"expiry": [e for e, _ in pairs], "kind": [k for _, k in pairs]})
