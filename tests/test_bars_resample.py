"""Resampling (sql/bars_resample.sql through features.bars.resample) against pandas ``resample``.

The reference buckets each session's bars with pandas (``resample(origin=session open)``, the last bucket cut
at the close; 24/7 with plain UTC ``resample``) and drops buckets the data does not cover to their end.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from features.bars import gaps, resample
from quantlake.lake import Lake
from quantlake.tables import BARS

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
NYSE = xcals.get_calendar("XNYS", start="2024-01-01", end="2025-12-31")


def _walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))


def _ohlc(ts: pd.DatetimeIndex, symbol: str, interval: str, seed: int) -> pd.DataFrame:
    c = _walk(len(ts), seed)
    o = np.r_[c[0], c[:-1]]
    rng = np.random.default_rng(seed + 1)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "interval": interval,
            "ts": ts.astype("datetime64[us, UTC]"),
            "open": o,
            "high": np.maximum(o, c) * (1 + rng.uniform(0, 0.001, len(c))),
            "low": np.minimum(o, c) * (1 - rng.uniform(0, 0.001, len(c))),
            "close": c,
            "volume": rng.integers(100, 10_000, len(c)).astype(float),
            "source": "test",
        }
    )


def equity_5m(days: list[str], seed: int = 1, drop: float = 0.05, premarket: bool = True) -> pd.DataFrame:
    """5-minute bars of every NYSE session in ``days`` (half days end early), a few bars missing, plus
    pre-market bars that session-aligned resampling must leave out."""
    rng = np.random.default_rng(seed)
    stamps = []
    for d in days:
        o, c = NYSE.schedule.loc[d, "open"], NYSE.schedule.loc[d, "close"]
        stamps.append(pd.date_range(o, c, freq="5min", inclusive="left"))
        if premarket:
            stamps.append(pd.date_range(o - pd.Timedelta("1h"), o, freq="5min", inclusive="left"))
    ts = stamps[0].append(stamps[1:]).tz_convert("UTC").sort_values()
    df = _ohlc(ts, "XYZ", "5m", seed)
    keep = rng.uniform(size=len(df)) > drop
    keep[-1] = True  # the data ends at the last session's close
    df = df[keep].reset_index(drop=True)
    df["date"] = df["ts"].dt.tz_convert("America/New_York").dt.date
    return df


def pandas_session_reference(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    out = []
    data_end = df["ts"].max() + pd.Timedelta("5min")
    for d, g in df.groupby("date"):
        o, c = NYSE.schedule.loc[str(d), "open"], NYSE.schedule.loc[str(d), "close"]
        g = g[(g["ts"] >= o) & (g["ts"] < c)].set_index("ts")
        r = g[list(AGG)].resample(rule, origin=o, closed="left", label="left").agg(AGG)
        r["n"] = g["close"].resample(rule, origin=o, closed="left", label="left").count()
        r = r[r["n"] > 0]
        r["end"] = np.minimum(r.index + pd.Timedelta(rule), c)
        out.append(r[r["end"] <= data_end])
    return pd.concat(out)


def _store(lake: Lake, df: pd.DataFrame) -> None:
    lake.merge("bars", df, BARS)


def _compare(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    got = got.set_index(pd.to_datetime(got["ts"], utc=True))
    assert list(got.index) == list(ref.index)
    for col in AGG:
        np.testing.assert_allclose(got[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12, err_msg=col)
    assert (got["n_bars"].to_numpy() == ref["n"].to_numpy()).all()


DAYS = ["2024-03-07", "2024-03-08", "2024-03-11", "2024-11-27", "2024-11-29", "2024-12-02"]


@pytest.mark.parametrize("rule,interval", [("15min", "15m"), ("1h", "1h"), ("4h", "4h")])
def test_equity_intraday_matches_pandas_per_session(lake: Lake, rule: str, interval: str) -> None:
    df = equity_5m(DAYS)  # DST change on 2024-03-10, half day on 2024-11-29 (close 13:00 ET)
    _store(lake, df)
    got = resample(lake, ["XYZ"], interval)
    ref = pandas_session_reference(df, rule)
    _compare(got, ref)
    # the half day's last hourly bar ends at the early close
    half = got[got["date"].astype(str) == "2024-11-29"]
    assert pd.Timestamp(half["close_ts"].max()) == pd.Timestamp("2024-11-29 18:00", tz="UTC")
    assert (pd.to_datetime(got["ts"], utc=True) >= pd.Timestamp("2024-03-07 14:30", tz="UTC")).all()


def test_equity_daily_from_5m_matches_pandas_and_skips_premarket(lake: Lake) -> None:
    df = equity_5m(DAYS)
    _store(lake, df)
    got = resample(lake, ["XYZ"], "1d")
    regular = df.merge(
        pd.DataFrame({"date": [dt.date.fromisoformat(d) for d in DAYS],
                      "o": [NYSE.schedule.loc[d, "open"] for d in DAYS],
                      "c": [NYSE.schedule.loc[d, "close"] for d in DAYS]}),
        on="date",
    )
    regular = regular[(regular["ts"] >= regular["o"]) & (regular["ts"] < regular["c"])]
    ref = regular.groupby("date").agg(**{k: (k, v) for k, v in AGG.items()})
    assert [str(d) for d in got["date"]] == DAYS
    for col in AGG:
        np.testing.assert_allclose(got[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12)


def test_partial_last_bar_excluded_until_closed(lake: Lake) -> None:
    df = equity_5m(["2024-03-07", "2024-03-08"], drop=0.0, premarket=False)
    cut = pd.Timestamp("2024-03-08 16:45", tz="UTC")  # 11:45 ET: the 11:30-12:30 hourly bar is open
    _store(lake, df[df["ts"] < cut])
    got = resample(lake, ["XYZ"], "1h")
    last = got[got["date"].astype(str) == "2024-03-08"]
    assert pd.Timestamp(last["ts"].max()) == pd.Timestamp("2024-03-08 15:30", tz="UTC")  # 10:30-11:30 ET
    # as_of before a bar's end hides it even when the data covers it
    got = resample(lake, ["XYZ"], "1h", as_of=pd.Timestamp("2024-03-07 16:00", tz="UTC"))
    assert pd.Timestamp(got["close_ts"].max()) == pd.Timestamp("2024-03-07 15:30", tz="UTC")
    # once the rest of the hour arrives, the bar appears with exactly its 12 five-minute bars
    _store(lake, df[(df["ts"] >= cut) & (df["ts"] < pd.Timestamp("2024-03-08 17:30", tz="UTC"))])
    got = resample(lake, ["XYZ"], "1h")
    bar = got[pd.to_datetime(got["ts"], utc=True) == pd.Timestamp("2024-03-08 16:30", tz="UTC")]
    assert len(bar) == 1 and int(bar["n_bars"].iloc[0]) == 12


def crypto_1h(start: str, hours: int, seed: int = 7) -> pd.DataFrame:
    ts = pd.date_range(start, periods=hours, freq="1h", tz="UTC")
    df = _ohlc(ts, "BINANCE:BTC/USDT", "1h", seed)
    df["date"] = df["ts"].dt.date
    return df


@pytest.mark.parametrize("rule,interval", [("4h", "4h"), ("1D", "1d"), ("W-MON", "1w")])
def test_crypto_matches_pandas_utc(lake: Lake, rule: str, interval: str) -> None:
    df = crypto_1h("2024-02-26 00:00", 24 * 20 + 5)  # Monday 2024-02-26 .. a partial last day
    df = df.drop(index=[30, 31, 200]).reset_index(drop=True)  # missing hours are not filled in
    _store(lake, df)
    got = resample(lake, ["BINANCE:BTC/USDT"], interval)
    s = df.set_index("ts")
    kw = {"closed": "left", "label": "left"}
    ref = s[list(AGG)].resample(rule, **kw).agg(AGG)
    ref["n"] = s["close"].resample(rule, **kw).count()
    step = pd.Timedelta(weeks=1) if interval == "1w" else pd.Timedelta(rule)
    ref = ref[(ref["n"] > 0) & (ref.index + step <= df["ts"].max() + pd.Timedelta("1h"))]
    _compare(got, ref)
    if interval == "1w":
        assert (pd.to_datetime(got["ts"], utc=True).dt.dayofweek == 0).all()  # Monday 00:00 UTC


def test_real_daily_sample_to_weekly_matches_pandas(lake: Lake) -> None:
    from quantlake.ingest import ingest_equity
    from quantlake.sources.csvdir import CsvSource

    spy = Path(__file__).resolve().parents[1] / "quantlake" / "sample_data" / "equities" / "SPY.csv"
    ingest_equity(lake, CsvSource(spy), progress=False)
    bars = lake.read("equity_bars")
    got = resample(lake, ["SPY"], "1w")
    s = bars.assign(d=pd.to_datetime(bars["date"])).set_index("d")
    ref = s[list(AGG)].resample("W-MON", closed="left", label="left").agg(AGG)
    ref = ref[s["close"].resample("W-MON", closed="left", label="left").count() > 0]
    # the sample ends on Friday 2017-12-29, the last session of its week: that week is complete
    assert len(got) == len(ref) > 500
    for col in AGG:
        np.testing.assert_allclose(got[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12, err_msg=col)
    assert [pd.Timestamp(d).to_period("W-SUN") for d in got["date"]] == list(ref.index.to_period("W-SUN"))


def test_gaps_reported_not_invented(lake: Lake) -> None:
    df = equity_5m(["2024-03-07", "2024-03-08", "2024-03-11"], drop=0.0, premarket=False)
    hole = (df["ts"] >= pd.Timestamp("2024-03-08 15:00", tz="UTC")) & (df["ts"] < pd.Timestamp("2024-03-08 15:20", tz="UTC"))
    single = df["ts"] == pd.Timestamp("2024-03-11 19:00", tz="UTC")
    _store(lake, df[~hole & ~single])
    g = gaps(lake, ["XYZ"], "5m")
    assert list(g["missing_bars"]) == [4, 1]
    assert pd.Timestamp(g["gap_start"].iloc[0]) == pd.Timestamp("2024-03-08 15:00", tz="UTC")
    assert pd.Timestamp(g["gap_end"].iloc[0]) == pd.Timestamp("2024-03-08 15:20", tz="UTC")
    # resampling keeps the hole a hole: that hour has 8 bars, not 12 invented ones
    h = resample(lake, ["XYZ"], "1h")
    row = h[pd.to_datetime(h["ts"], utc=True) == pd.Timestamp("2024-03-08 14:30", tz="UTC")]
    assert int(row["n_bars"].iloc[0]) == 8
