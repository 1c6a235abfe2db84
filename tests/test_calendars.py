"""quantlake.calendars: NYSE trading days from exchange_calendars, with the one-off closures the former
hand-written calendar counted as trading days."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from quantlake import calendars

D = dt.date

# one-off closures (NYSE): 9/11, Hurricane Sandy, national days of mourning for Presidents Ford, Bush, Carter
ONE_OFF_CLOSURES = [D(2001, 9, 11), D(2001, 9, 14), D(2012, 10, 29), D(2012, 10, 30), D(2007, 1, 2),
                    D(2018, 12, 5), D(2025, 1, 9)]  # fmt: skip


@pytest.mark.parametrize("day", ONE_OFF_CLOSURES, ids=str)
def test_one_off_closures_are_not_trading_days(day: dt.date) -> None:
    assert not calendars.is_trading_day(day)
    assert day in calendars.holidays(day - dt.timedelta(days=7), day + dt.timedelta(days=7))
    assert pd.Timestamp(day) not in calendars.sessions(day - dt.timedelta(days=7), day + dt.timedelta(days=7))


def test_regular_holidays_and_ordinary_days() -> None:
    assert calendars.holidays(D(2022, 1, 1), D(2022, 12, 31)) == [
        D(2022, 1, 17), D(2022, 2, 21), D(2022, 4, 15), D(2022, 5, 30), D(2022, 6, 20), D(2022, 7, 4),
        D(2022, 9, 5), D(2022, 11, 24), D(2022, 12, 26),
    ]  # fmt: skip
    assert calendars.is_trading_day(D(2018, 4, 27)) and not calendars.is_trading_day(D(2018, 4, 28))
    assert len(calendars.sessions(D(2019, 1, 1), D(2019, 12, 31))) == 252  # NYSE's published 2019 count


def test_previous_next_and_counts_around_sandy() -> None:
    assert calendars.previous_trading_day(D(2012, 10, 30)) == D(2012, 10, 26)
    assert calendars.previous_trading_day(D(2012, 10, 31)) == D(2012, 10, 31)
    assert calendars.next_trading_day(D(2012, 10, 26)) == D(2012, 10, 31)
    assert calendars.trading_days_between(D(2012, 10, 26), D(2012, 10, 31)) == 1
    assert calendars.trading_days_between(D(2012, 10, 31), D(2012, 10, 26)) == 0
    # the former calendar's day count over 9/11: Sept 10 -> Sept 17 2001 is one trading day (the 17th)
    assert calendars.trading_days_between(D(2001, 9, 10), D(2001, 9, 17)) == 1


def test_dates_outside_the_default_range() -> None:
    assert calendars.is_trading_day(D(1962, 3, 5))  # a Monday before 1970
    far = D(dt.date.today().year + 10, 7, 4)
    assert not calendars.is_trading_day(far)
    assert calendars.previous_trading_day(pd.Timestamp("2025-01-09")) == D(2025, 1, 8)
    assert calendars.sessions("2025-01-10", "2025-01-08").empty
