"""US listed-option expiry calendar: monthly (third-Friday) and weekly (Friday) expiries on NYSE trading days.

Trading days (regular holidays and one-off closures such as 9/11 2001, Hurricane Sandy 2012 and the national
days of mourning) come from :mod:`quantlake.calendars` (``exchange_calendars``' XNYS).  Simplifications, on
purpose:

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

from quantlake import calendars

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


def nyse_holidays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Weekdays between ``start`` and ``end`` (inclusive) the NYSE is closed, sorted."""
    return calendars.holidays(start, end)


def is_trading_day(day: dt.date) -> bool:
    return calendars.is_trading_day(day)


def previous_trading_day(day: dt.date) -> dt.date:
    """``day`` itself if it is a trading day, else the closest earlier one."""
    return calendars.previous_trading_day(day)


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
