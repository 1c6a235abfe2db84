"""quantlake.calendars: NYSE trading days from exchange_calendars, with the one-off closures the former
hand-written calendar counted as trading days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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


def test_schedule_cache_equals_the_built_schedule_and_survives_damage(ql_home: Path) -> None:
    """The session schedule is cached under QUANTLAKE_HOME (a daily ingest skips building the calendar): the
    cached frame equals exchange_calendars' own schedule, and a damaged cache file is rebuilt."""
    import exchange_calendars as xc

    calendars._schedule.cache_clear()
    built = calendars._schedule("XNYS")
    cache = calendars._schedule_cache_file("XNYS")
    assert cache is not None and cache.exists() and str(cache).startswith(str(ql_home))
    calendars._schedule.cache_clear()
    cached = calendars._schedule("XNYS")
    pd.testing.assert_frame_equal(cached, built)
    ref = xc.get_calendar("XNYS", start="2012-10-25", end="2012-11-02").schedule  # Sandy: 29th/30th closed
    got = calendars.session_times("XNYS", dt.date(2012, 10, 25), dt.date(2012, 11, 2))
    assert got["date"].tolist() == list(ref.index.date)
    assert (got["open"].to_numpy() == ref["open"].dt.tz_convert("UTC").astype("datetime64[us, UTC]").to_numpy()).all()
    cache.write_bytes(b"not parquet")
    calendars._schedule.cache_clear()
    pd.testing.assert_frame_equal(calendars._schedule("XNYS"), built)
    calendars._schedule.cache_clear()
