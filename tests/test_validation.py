"""Quarantine: every bad row lands in rejected_rows with its reason; good rows land; nothing silently lost."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from quantlake.ingest import ingest_equity, ingest_options
from quantlake.lake import Lake
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.csvdir import CsvSource
from quantlake.validation import split_batch

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write(path: Path, body: str) -> Path:
    path.write_text(HEADER + body)
    return path


def rejects_by_row(lake: Lake) -> dict[int, str]:
    df = lake.read("rejected_rows")
    return dict(zip(df["row_no"], df["reason"], strict=True))


def test_each_equity_rule_quarantines_with_a_reason(lake: Lake, tmp_path: Path) -> None:
    d = tmp_path / "vendor"
    d.mkdir()
    write(
        d / "ACME.csv",
        "2020-01-02,10,11,9,10.5,10.5,1000\n"  # 1 good
        "2020-01-03,10,11,9,,10.5,1000\n"  # 2 NaN close
        "2020-01-06,10,11,9,-1,10.5,1000\n"  # 3 negative close
        "2020-01-07,10,9,11,10,10,1000\n"  # 4 high < low
        "2020-01-08,10,11,9,12,12,1000\n"  # 5 close above high
        "2020-01-09,10,11,9,10.2,10.2,1000\n"  # 6 good
        "2020-01-09,10,11,9,10.2,10.2,1000\n"  # 7 exact duplicate of 6
        "2020-01-10,10,11,9,10.1,10.1,1000\n"  # 8 conflicting duplicate
        "2020-01-10,10,11,9,10.3,10.3,1000\n"  # 9 conflicting duplicate
        "2020-01-13,10,11,9,abc,10.3,1000\n"  # 10 not a number
        "2020-13-45,10,11,9,10,10,1000\n"  # 11 bad date
        "2020-01-14,10,11,9,10.4,10.4,-5\n"  # 12 negative volume
        "2020-01-15,5.1,5.3,5.0,5.2,5.2,1000\n",  # 13 halves vs 10.4: unrecorded 2:1 split
    )
    src = CsvSource(d)
    (report,) = ingest_equity(lake, src, progress=False)
    reasons = rejects_by_row(lake)
    assert "close is missing" in reasons[2]
    assert "close must be > 0" in reasons[3]
    assert "high < low" in reasons[4]
    assert "close outside [low, high]" in reasons[5]
    assert "repeats row 6" in reasons[7]
    assert "different values" in reasons[8] and "different values" in reasons[9]
    assert "close is not a number" in reasons[10] and "'abc'" in reasons[10]
    assert "date is not a date" in reasons[11]
    assert "volume must be >= 0" in reasons[12]
    assert "unrecorded 2:1 split" in reasons[13]
    assert set(reasons) == {2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13}
    good = lake.read("equity_bars")
    assert good["date"].astype(str).tolist() == ["2020-01-02", "2020-01-09"]
    assert (report.rows_read, report.accepted, report.rejected) == (13, 2, 11)
    raw = json.loads(lake.read("rejected_rows", where="row_no = 10")["raw"].iloc[0])
    assert raw["Close"] == "abc" and raw["Adj Close"] == "10.3"  # the text under the file's own header

    # re-ingesting the same file adds nothing: not to the table, not to the quarantine
    (again,) = ingest_equity(lake, CsvSource(d), progress=False)
    assert (again.inserted, again.updated) == (0, 0)
    assert len(lake.read("rejected_rows")) == 11


def test_recorded_split_makes_the_jump_acceptable(lake: Lake) -> None:
    lake.merge(
        "corporate_actions",
        pd.DataFrame({"symbol": ["ACME"], "date": [dt.date(2020, 1, 3)], "kind": ["split"], "value": [2.0]}),
    )
    frame = pd.DataFrame(
        {
            "symbol": "ACME",
            "date": [dt.date(2020, 1, 2), dt.date(2020, 1, 3), dt.date(2020, 1, 6)],
            "close": [100.0, 50.5, 49.0],
            ROW_NO: [1, 2, 3],
        }
    )
    good, bad = split_batch(RawBatch("equity_bars", frame, "t"), known_splits={("ACME", dt.date(2020, 1, 3))})
    assert bad.empty and len(good) == 3
    good, bad = split_batch(RawBatch("equity_bars", frame, "t"))
    assert bad["row_no"].tolist() == [2]


def test_jump_is_checked_against_the_last_stored_close(lake: Lake, tmp_path: Path) -> None:
    d = tmp_path / "v"
    d.mkdir()
    write(d / "ACME.csv", "2020-01-02,100,101,99,100,100,10\n")
    ingest_equity(lake, CsvSource(d), progress=False)
    write(d / "ACME.csv", "2020-01-02,100,101,99,100,100,10\n2020-01-03,33,34,33,33.4,33.4,10\n")
    ingest_equity(lake, CsvSource(d), progress=False)
    assert "3:1 split" in rejects_by_row(lake)[2]


def test_option_rules(lake: Lake) -> None:
    base = {
        "quote_date": dt.date(2020, 1, 2),
        "underlying": "SPY",
        "expiry": dt.date(2020, 2, 21),
        "strike": 300.0,
        "right": "C",
        "bid": 1.0,
        "ask": 1.2,
    }
    rows = [
        base,
        {**base, "strike": 310.0, "bid": 2.0, "ask": 1.0},  # bid > ask
        {**base, "strike": 0.0},  # non-positive strike
        {**base, "strike": 320.0, "expiry": dt.date(2019, 12, 20)},  # expiry before quote date
        {**base, "strike": 330.0, "right": "X"},  # bad right
    ]
    frame = pd.DataFrame(rows)
    frame[ROW_NO] = range(1, len(rows) + 1)

    class OneChain:
        name = "test"

        def option_underlyings(self) -> list[str]:
            return ["SPY"]

        def option_chain(self, underlying: str) -> RawBatch:
            return RawBatch("option_quotes", frame.copy(), "test:chain")

    (rep,) = ingest_options(lake, OneChain(), progress=False)
    reasons = rejects_by_row(lake)
    assert reasons[2] == "bid > ask"
    assert "strike must be > 0" in reasons[3]
    assert reasons[4] == "expiry before quote date"
    assert "right must be C or P" in reasons[5]
    assert (rep.accepted, rep.rejected) == (1, 4)
    assert lake.read("option_quotes")["strike"].tolist() == [300.0]
