"""The sample and csv sources, and incremental watermarks."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import pandas as pd
import pytest

from quantlake.errors import InvalidSymbolError, MalformedFileError, UserInputError
from quantlake.ingest import ingest_equity, ingest_sample_all, raise_for_failures
from quantlake.lake import Lake
from quantlake.sources.base import RawBatch
from quantlake.sources.csvdir import CsvSource
from quantlake.sources.sample import SampleSource, data_dir


def test_sample_lake_holds_every_sample_file_exactly(sample_lake: Lake) -> None:
    counts = sample_lake.query("select symbol, count(*) n from equity_bars group by 1").set_index("symbol")["n"]
    # independent count: data rows of each CSV read with the csv module
    root = data_dir()
    for sym in ("AAPL", "GOOG", "INTC", "SPY"):
        with (root / "equities" / f"{sym}.csv").open() as fh:
            assert counts[sym] == sum(1 for _ in csv.reader(fh)) - 1
    with (root / "index_closes" / "GSPC.csv").open() as fh:
        assert counts["^GSPC"] == sum(1 for row in csv.DictReader(fh) if row["^GSPC"].strip())
    # a value spot-check against the raw file
    spy = sample_lake.read("equity_bars", where="symbol = 'SPY' and date = DATE '2008-01-02'")
    assert spy[["open", "high", "low", "close", "adj_close", "volume"]].iloc[0].tolist() == pytest.approx(
        [146.529999, 146.990005, 143.880005, 144.929993, 117.586205, 204935600]
    )
    dgs10 = sample_lake.read("macro_series", where="series_id = 'DGS10' and date = DATE '2025-09-25'")
    assert dgs10["value"].tolist() == [4.18]
    # option quotes: the DAX snapshot's 114 rows and every SPX row not stamped on Memorial Day 2019 (the
    # shipped file SPX_20190527 repeats the previous session's prices: all its rows are quarantined)
    spx_rows = holiday_rows = 0
    for f in sorted((root / "option_quotes_spx_2019").glob("*.csv.gz")):
        with gzip.open(f, "rt", newline="") as fh:
            for row in csv.DictReader(fh):
                spx_rows += 1
                holiday_rows += row["quotedate"] == "05/27/2019"
    assert (spx_rows, holiday_rows) == (328_318, 9_394)  # the README's count
    counts = sample_lake.query("select underlying, count(*) n from option_quotes group by 1").set_index("underlying")
    assert counts["n"].to_dict() == {"^GDAXI": 114, "SPX": spx_rows - holiday_rows}
    rejected = sample_lake.query('select "table", reason, count(*) n from rejected_rows group by all')
    assert rejected.to_dict("records") == [
        {"table": "option_quotes", "n": holiday_rows,
         "reason": "quote date 2019-05-27 is an XNYS holiday (no session): the snapshot repeats another "
                   "session's prices"}
    ]  # fmt: skip


def test_second_sample_ingest_adds_zero_rows(sample_lake: Lake) -> None:
    before = {t: sample_lake.version(t) for t in sample_lake.tables()}
    reports = ingest_sample_all(sample_lake, progress=False)
    assert sum(r.inserted + r.updated for r in reports) == 0
    assert {t: sample_lake.version(t) for t in sample_lake.tables()} == before


def test_sample_unknown_symbol_is_a_user_error() -> None:
    with pytest.raises(InvalidSymbolError, match="ZZZZ"):
        SampleSource().bars("ZZZZ")


@pytest.mark.parametrize(
    "header",
    ["date,open,high,low,close,volume", "Date,Open,High,Low,Close,Adj Close,Volume", "DATE,OPEN,HIGH,LOW,CLOSE,ADJ_CLOSE,VOLUME"],
)
def test_csv_per_symbol_layout_any_case(lake: Lake, tmp_path: Path, header: str) -> None:
    cols = header.split(",")
    row = {"date": "2021-03-01", "open": "10", "high": "11", "low": "9", "close": "10.5", "adj close": "10.4",
           "adj_close": "10.4", "volume": "100"}
    (tmp_path / "msft.csv").write_text(header + "\n" + ",".join(row[c.lower()] for c in cols) + "\n")
    ingest_equity(lake, CsvSource(tmp_path), progress=False)
    got = lake.read("equity_bars")
    assert got["symbol"].tolist() == ["MSFT"]
    assert got["close"].tolist() == [10.5]
    if len(cols) == 7:
        assert got["adj_close"].tolist() == [10.4]
    else:
        assert got["adj_close"].isna().all()


def test_csv_long_file_and_parquet(lake: Lake, tmp_path: Path) -> None:
    (tmp_path / "all.csv").write_text(
        "Symbol,Date,Open,High,Low,Close,Volume\nibm,2021-03-01,1,2,0.5,1.5,10\nKO,2021-03-01,3,4,2.5,3.5,20\n"
    )
    pd.DataFrame(
        {"date": pd.to_datetime(["2021-03-01", "2021-03-02"]), "close": [7.0, 7.5], "volume": [1, 2]}
    ).to_parquet(tmp_path / "XOM.parquet")
    src = CsvSource(tmp_path)
    assert src.symbols() == ["IBM", "KO", "XOM"]
    ingest_equity(lake, src, progress=False)
    got = lake.query("select symbol, count(*) n from equity_bars group by 1 order by 1")
    assert got.values.tolist() == [["IBM", 1], ["KO", 1], ["XOM", 2]]


def test_csv_malformed_files_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "AAA.csv").write_text("when,price\n2020-01-01,3\n")
    with pytest.raises(MalformedFileError, match=r"AAA.csv: missing required column\(s\) \['date', 'close'\]"):
        CsvSource(tmp_path)
    with pytest.raises(UserInputError, match="does not exist"):
        CsvSource(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match=r"no \.csv or \.parquet"):
        CsvSource(empty)
    bad_name = tmp_path / "b"
    bad_name.mkdir()
    (bad_name / "my prices!.csv").write_text("date,close\n2020-01-01,1\n")
    with pytest.raises(MalformedFileError, match="valid symbol"):
        CsvSource(bad_name)


class FakeVendor:
    """An incremental network-like source that records what it was asked for."""

    name = "fake"
    incremental = True

    def __init__(self, last: dt.date) -> None:
        self.last = last
        self.calls: list[tuple[str, dt.date | None]] = []

    def symbols(self) -> list[str]:
        return []

    def bars(self, symbol: str, start: dt.date | None, end: dt.date | None) -> RawBatch:
        if symbol == "NOPE":
            raise InvalidSymbolError(f"unknown symbol {symbol!r}")
        self.calls.append((symbol, start))
        days = pd.bdate_range(start or dt.date(2020, 1, 1), self.last).date
        frame = pd.DataFrame({"symbol": symbol, "date": days, "close": 10.0, "source": self.name})
        return RawBatch("equity_bars", frame, f"fake:{symbol}")

    def actions(self, symbol: str, start: dt.date | None, end: dt.date | None) -> RawBatch | None:
        return None


def test_watermarks_fetch_only_missing_dates(lake: Lake) -> None:
    v = FakeVendor(last=dt.date(2020, 1, 10))
    ingest_equity(lake, v, ["AAA"], progress=False)
    assert v.calls == [("AAA", None)]
    v.last = dt.date(2020, 1, 15)
    (rep,) = ingest_equity(lake, v, ["AAA"], progress=False)
    assert v.calls[-1] == ("AAA", dt.date(2020, 1, 11))
    assert rep.inserted == 3  # 13, 14, 15 Jan
    # already up to date today? then no call at all
    v.last = dt.date.today() - dt.timedelta(days=1)
    lake.merge("equity_bars", pd.DataFrame({"symbol": ["AAA"], "date": [dt.date.today()], "close": [10.0]}))
    n = len(v.calls)
    (rep,) = ingest_equity(lake, v, ["AAA"], progress=False)
    assert len(v.calls) == n and rep.skipped == ["AAA"]


def test_one_bad_symbol_does_not_lose_the_others(lake: Lake) -> None:
    v = FakeVendor(last=dt.date(2020, 1, 3))
    reports = ingest_equity(lake, v, ["AAA", "NOPE", "BBB"], progress=False)
    assert set(lake.read("equity_bars")["symbol"]) == {"AAA", "BBB"}
    with pytest.raises(InvalidSymbolError, match="NOPE"):
        raise_for_failures(reports)
