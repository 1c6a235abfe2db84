"""Multi-timeframe signals have no look-ahead: a truncation test.

History is cut at instants inside higher-timeframe bars; the lake then holds only the lower-timeframe bars
closed by the cut.  Signals computed on that lake must equal the full-history signals for every bar that
closed by the cut.  The same check on a naive alignment (the HTF bar that CONTAINS the LTF bar, by open
time) fails, which shows the test can see look-ahead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.equity.multitf import mtf_trend_signals
from features.bars import resample
from quantlake.lake import Lake
from quantlake.tables import BARS


def _bars(symbol: str, ts: pd.DatetimeIndex, interval: str, seed: int, tz: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # a trending walk with regime changes, so the filter turns on and off
    drift = np.repeat(rng.choice([-0.002, 0.002], size=len(ts) // 40 + 1), 40)[: len(ts)]
    c = 100 * np.exp(np.cumsum(drift + rng.normal(0, 0.004, len(ts))))
    o = np.r_[c[0], c[:-1]]
    df = pd.DataFrame({"symbol": symbol, "interval": interval, "ts": ts.astype("datetime64[us, UTC]"),
                       "open": o, "high": np.maximum(o, c) * 1.001, "low": np.minimum(o, c) * 0.999,
                       "close": c, "adj_close": c, "volume": 1000.0, "source": "test"})
    df["date"] = df["ts"].dt.tz_convert(tz).dt.date
    return df


def crypto_15m() -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=96 * 25, freq="15min", tz="UTC")
    return _bars("BINANCE:BTC/USDT", ts, "15m", 11, "UTC")


def equity_5m() -> pd.DataFrame:
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start="2024-01-01", end="2024-12-31")
    days = cal.sessions_in_range("2024-02-01", "2024-03-29")
    parts = [pd.date_range(cal.schedule.loc[d, "open"], cal.schedule.loc[d, "close"], freq="5min", inclusive="left")
             for d in days]
    ts = parts[0].append(parts[1:]).tz_convert("UTC")
    return _bars("XYZ", ts, "5m", 12, "America/New_York")


def _signals(lake: Lake, sym: str, low: str, high: str) -> pd.DataFrame:
    ltf = resample(lake, [sym], low, as_of=pd.Timestamp("2100-01-01", tz="UTC"))
    htf = resample(lake, [sym], high, as_of=pd.Timestamp("2100-01-01", tz="UTC"))
    return mtf_trend_signals(ltf, htf, fast=5, slow=13, trend=10)


def _naive(lake: Lake, sym: str, low: str, rule: str, origin: str) -> pd.DataFrame:
    """Look-ahead on purpose: each LTF bar sees the HTF bar that contains it, closes included."""
    ltf = resample(lake, [sym], low, as_of=pd.Timestamp("2100-01-01", tz="UTC"))
    s = ltf.set_index(pd.to_datetime(ltf["ts"], utc=True))["close"]
    h = s.resample(rule, origin=origin, label="left", closed="left").last().dropna()
    seen = h.reindex(s.index, method="ffill")  # the containing bar's close: known only at its end
    return pd.DataFrame({"close_ts": ltf["close_ts"].to_numpy(), "htf_close": seen.to_numpy()})


CASES = [
    (crypto_15m, "BINANCE:BTC/USDT", "15m", "4h", "4h", "epoch"),
    (equity_5m, "XYZ", "5m", "1h", "1h", "start_day"),
]


@pytest.mark.parametrize("make,sym,low,high,rule,origin", CASES, ids=["crypto-15m-4h", "equity-5m-1h"])
def test_higher_timeframe_is_used_only_after_it_closes(
    tmp_path, make, sym: str, low: str, high: str, rule: str, origin: str  # type: ignore[no-untyped-def]
) -> None:
    bars = make()
    full_lake = Lake(tmp_path / "full")
    full_lake.merge("bars", bars, BARS)
    full = _signals(full_lake, sym, low, high)
    assert full["filter"].any() and (~full["filter"]).any() and full["entry"].sum() >= 3  # the rule does things

    step = pd.Timedelta(low)
    end = pd.to_datetime(bars["ts"], utc=True) + step
    naive_full = _naive(full_lake, sym, low, rule, origin)
    naive_differs = 0
    rng = np.random.default_rng(5)
    # cut instants inside higher-timeframe bars: minutes :15/:45 (crypto) or off :00/:30 (equity) are never
    # the end of a 4h/1h bar, whether aligned to UTC hours or to the 9:30 session open
    inside = end.iloc[len(end) // 3 :]
    inside = inside[(inside.dt.minute % 30) != 0]
    cuts = sorted(rng.choice(inside.to_numpy(), size=6, replace=False))
    for cut in cuts:
        cut = pd.Timestamp(cut)
        part = Lake(tmp_path / f"cut_{cut.value}")
        part.merge("bars", bars[(end <= cut).to_numpy()], BARS)
        got = _signals(part, sym, low, high)
        want = full[pd.to_datetime(full["close_ts"], utc=True) <= cut].reset_index(drop=True)
        assert len(got) == len(want) > 0
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)
        # the last LTF bar never sees an HTF bar closing after it
        assert (pd.to_datetime(got["htf_ts"], utc=True) + pd.Timedelta(high) <= cut).all() or got["htf_ts"].isna().any()
        naive_cut = _naive(part, sym, low, rule, origin)
        k = len(naive_cut)
        naive_differs += int((naive_cut["htf_close"].to_numpy() != naive_full["htf_close"].to_numpy()[:k]).any())
    assert naive_differs == len(cuts)  # the same check catches an alignment that peeks at the forming bar
