"""Bars at any interval: calendars, symbols, intraday CSV rows, and the one-time upgrade of older lakes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from quantlake.calendars import parse_interval, periods_per_year, session_opens, session_times
from quantlake.errors import InvalidSymbolError, UserInputError
from quantlake.ingest import ingest_equity
from quantlake.lake import Lake
from quantlake.sources.csvdir import CsvSource
from quantlake.sources.intraday_files import IntradayOptions
from quantlake.tables import validate_symbol


# ------------------------------------------------------------------------------------------------ calendars
def test_nyse_sessions_early_close_and_dst() -> None:
    s = session_times("XNYS", dt.date(2024, 11, 27), dt.date(2024, 12, 2)).set_index("date")
    assert dt.date(2024, 11, 28) not in s.index  # Thanksgiving
    assert s.loc[dt.date(2024, 11, 29), "close"] == pd.Timestamp("2024-11-29 18:00", tz="UTC")  # 13:00 ET
    assert s.loc[dt.date(2024, 12, 2), "open"] == pd.Timestamp("2024-12-02 14:30", tz="UTC")
    opens = session_opens("XNYS", [dt.date(2024, 3, 8), dt.date(2024, 3, 11)])
    assert list(opens) == [pd.Timestamp("2024-03-08 14:30", tz="UTC"), pd.Timestamp("2024-03-11 13:30", tz="UTC")]
    # 2001-09-11 was no session (unscheduled closure): the regular open time on that local date
    assert session_opens("XNYS", [dt.date(2001, 9, 11)])[0] == pd.Timestamp("2001-09-11 13:30", tz="UTC")
    week = session_times("24/7", dt.date(2024, 1, 1), dt.date(2024, 1, 7))
    assert len(week) == 7 and (week["close"] - week["open"] == pd.Timedelta(days=1)).all()


@pytest.mark.parametrize(
    "interval,calendar,expected",
    [("1d", "XNYS", 252), ("1h", "XNYS", 252 * 7), ("5m", "XNYS", 252 * 78), ("4h", "XNYS", 504),
     ("1h", "24/7", 8760), ("1d", "24/7", 365), ("15m", "24/7", 365 * 96), ("1w", "XNYS", 52)],
)
def test_periods_per_year(interval: str, calendar: str, expected: float) -> None:
    assert periods_per_year(interval, calendar) == expected


@pytest.mark.parametrize("bad", ["7x", "0m", "2d", "7m", "1h ", "", "1H"])
def test_bad_intervals_are_user_errors(bad: str) -> None:
    if bad == "1h ":
        assert parse_interval(bad) == pd.Timedelta(hours=1)
        return
    with pytest.raises(UserInputError):
        parse_interval(bad)


def test_symbol_validator_accepts_pairs_and_stays_strict() -> None:
    assert validate_symbol(" binance:btc/usdt ") == "BINANCE:BTC/USDT"
    assert validate_symbol("BRK-B") == "BRK-B"
    for bad in ["BINANCE:../USDT", "BINANCE:BTC/USDT'--", "BTC/USDT", "A:B/C/D", "X:BTC/USDT", "BINANCE:BTC\\USDT"]:
        with pytest.raises(InvalidSymbolError):
            validate_symbol(bad)


# ------------------------------------------------------------------------------------------------ CSV rows
def _five_minute_csv(path: Path, days: list[str], tz_suffix: str = "") -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(3)
    for d in days:
        for t in pd.date_range(f"{d} 09:30", f"{d} 15:55", freq="5min"):
            p = 100 + rng.normal()
            rows.append((t.strftime("%Y-%m-%d %H:%M:%S") + tz_suffix, p, p + 0.2, p - 0.2, p + 0.1, 1000))
    df = pd.DataFrame(rows, columns=["Datetime", "Open", "High", "Low", "Close", "Volume"])
    df.to_csv(path, index=False)
    return df


def test_five_minute_csv_lands_in_bars_not_rejected_as_duplicates(lake: Lake, tmp_path: Path) -> None:
    """On main's code every row after a day's first was rejected as a duplicate (symbol, date) key."""
    _five_minute_csv(tmp_path / "XYZ.csv", ["2024-03-08", "2024-03-11"])  # across the DST change
    reports = {r.table: r for r in ingest_equity(lake, CsvSource(tmp_path), progress=False)}
    assert reports["bars"].accepted == 156 and reports["bars"].rejected == 0
    assert reports["equity_bars"].rows_read == 0 and not lake.exists("equity_bars")
    bars = lake.read("bars")
    assert set(bars["interval"]) == {"5m"}
    first = bars.groupby("date")["ts"].min()
    assert first[pd.Timestamp("2024-03-08")] == pd.Timestamp("2024-03-08 14:30", tz="UTC")  # EST
    assert first[pd.Timestamp("2024-03-11")] == pd.Timestamp("2024-03-11 13:30", tz="UTC")  # EDT
    inst = lake.read("instruments")
    assert inst.loc[0, ["symbol", "calendar", "timezone"]].tolist() == ["XYZ", "XNYS", "America/New_York"]
    # re-ingesting the same file changes nothing
    again = {r.table: r for r in ingest_equity(lake, CsvSource(tmp_path), progress=False)}
    assert again["bars"].inserted == 0 and again["bars"].updated == 0


def test_hourly_csv_with_offsets_bar_close_stamps_and_bad_local_times(lake: Lake, tmp_path: Path) -> None:
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"2024-03-08T{h:02d}:00:00-05:00,ABC,10,11,9,10.5,100" for h in (11, 12, 13)]
    (tmp_path / "long.csv").write_text("\n".join(lines) + "\n")
    src = CsvSource(tmp_path, IntradayOptions(bar_time="close"))
    rep = {r.table: r for r in ingest_equity(lake, src, progress=False)}
    assert rep["bars"].accepted == 3
    ts = sorted(lake.read("bars")["ts"])
    assert ts[0] == pd.Timestamp("2024-03-08 15:00", tz="UTC")  # 11:00 EST close stamp -> 10:00 open

    # 02:30 on 2024-03-10 does not exist in New York: quarantined with the reason, the rest land
    (tmp_path / "long.csv").write_text(
        "date,symbol,close\n2024-03-10 01:30,DEF,5\n2024-03-10 02:30,DEF,5\n2024-03-10 03:30,DEF,5\n"
    )
    rep = {r.table: r for r in ingest_equity(lake, CsvSource(tmp_path, IntradayOptions(interval="1h")), progress=False)}
    assert rep["bars"].accepted == 2 and rep["bars"].rejected == 1
    rej = lake.read("rejected_rows")
    assert rej["reason"].str.contains("does not exist or is ambiguous").sum() == 1


def test_intraday_file_without_a_clear_interval_stops_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "ONE.csv").write_text("date,close\n2024-03-08 10:00,5\n2024-03-11 10:00,6\n")
    with pytest.raises(UserInputError, match="pass --interval"):
        CsvSource(tmp_path).batches()


# ------------------------------------------------------------------------------------------------ upgrade
OLD_SCHEMA = pa.schema(
    [("symbol", pa.string()), ("date", pa.date32()), ("open", pa.float64()), ("high", pa.float64()),
     ("low", pa.float64()), ("close", pa.float64()), ("adj_close", pa.float64()), ("volume", pa.float64()),
     ("source", pa.string()), ("ingested_at", pa.timestamp("us", tz="UTC"))]
)


def _old_lake(root: Path) -> None:
    """equity_bars exactly as the previous quantlake version wrote it (no interval/ts columns)."""
    days = [dt.date(2024, 3, 7), dt.date(2024, 3, 8), dt.date(2024, 3, 11)]
    t = pa.table(
        {"symbol": ["SPY"] * 3, "date": days, "open": [1.0, 2, 3], "high": [1.5, 2.5, 3.5], "low": [0.5, 1.5, 2.5],
         "close": [1.2, 2.2, 3.2], "adj_close": [1.2, 2.2, 3.2], "volume": [10.0, 20, 30], "source": ["csv"] * 3,
         "ingested_at": [dt.datetime(2024, 3, 12, tzinfo=dt.UTC)] * 3},
        schema=OLD_SCHEMA,
    )
    write_deltalake(str(root / "equity_bars"), t, description=json.dumps(
        {"keys": ["symbol", "date"], "date_column": "date", "volatile": ["ingested_at"]}))


@pytest.mark.slow  # two CLI processes
def test_lake_of_the_previous_version_opens_and_is_upgraded_once(ql_home: Path) -> None:
    root = ql_home / "lake"
    _old_lake(root)
    lake = Lake(root)
    # before the upgrade every reader works, all_bars included (derived open instants)
    v0 = lake.query("SELECT ts FROM all_bars ORDER BY ts")["ts"].tolist()
    assert v0[1] == pd.Timestamp("2024-03-08 14:30", tz="UTC")

    cmd = [sys.executable, "-m", "quantlake.cli", "query", "SELECT count(*) AS n FROM equity_bars", "-f", "csv"]
    first = subprocess.run(cmd, capture_output=True, text=True, env={**_env(), "QUANTLAKE_HOME": str(ql_home)})
    assert first.returncode == 0, first.stderr
    lines = [ln for ln in first.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "upgraded the lake" in lines[0] and "3 daily bars" in lines[0]
    second = subprocess.run(cmd, capture_output=True, text=True, env={**_env(), "QUANTLAKE_HOME": str(ql_home)})
    assert second.returncode == 0 and second.stderr.strip() == ""

    bars = lake.read("equity_bars")
    assert bars["interval"].tolist() == ["1d"] * 3
    assert bars["ts"].tolist() == [pd.Timestamp(x, tz="UTC") for x in
                                   ("2024-03-07 14:30", "2024-03-08 14:30", "2024-03-11 13:30")]
    assert bars["ingested_at"].tolist() == [pd.Timestamp("2024-03-12", tz="UTC")] * 3  # kept
    assert lake.version("equity_bars") == 1
    old = lake.read("equity_bars", version=0)  # the version before stays as it was
    assert "ts" not in old.columns and len(old) == 3
    assert len(lake.query("FROM all_bars", as_of={"equity_bars": 0})) == 3


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "QUANTLAKE_HOME"}
