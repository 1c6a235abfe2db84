"""The hourly scanner: signals on the latest CLOSED bar, checked against a plain EMA loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from execution.intraday_scan import intraday_config, scan_interval
from quantlake.lake import Lake
from quantlake.tables import BARS

SYM = "BINANCE:BTC/USDT"


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    """SMA-seeded EMA, one value at a time (the reference)."""
    out = np.full(len(x), np.nan)
    out[n - 1] = x[:n].mean()
    a = 2.0 / (n + 1)
    for i in range(n, len(x)):
        out[i] = a * x[i] + (1 - a) * out[i - 1]
    return out


@pytest.fixture()
def crypto_lake(lake: Lake) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=24 * 20, freq="15min", tz="UTC")
    rng = np.random.default_rng(4)
    c = 100 * np.exp(np.cumsum(np.sin(np.arange(len(ts)) / 37.0) * 0.004 + rng.normal(0, 0.002, len(ts))))
    df = pd.DataFrame({"symbol": SYM, "interval": "15m", "ts": ts.astype("datetime64[us, UTC]"),
                       "date": ts.date, "open": c, "high": c * 1.001, "low": c * 0.999, "close": c,
                       "adj_close": c, "volume": 10.0, "source": "test"})
    lake.merge("bars", df, BARS)
    return df


def test_hourly_signals_match_a_plain_ema_loop_and_skip_the_forming_bar(lake: Lake, crypto_lake: pd.DataFrame) -> None:
    closes = crypto_lake.set_index("ts")["close"].resample("1h", label="left", closed="left").last()
    spread = _ema(closes.to_numpy(), 9) - _ema(closes.to_numpy(), 21)
    side = np.sign(spread)
    crosses = [i for i in range(22, len(side)) if side[i] != side[i - 1] and side[i - 1] != 0]
    assert len(crosses) >= 2
    cfg = intraday_config({"ema_pairs": [[9, 21]]})
    for i in crosses[:2]:
        bar_open = closes.index[i]
        # 40 minutes into the NEXT hour: that bar is forming, the crossing bar is the latest closed one
        res = scan_interval(lake, "1h", [SYM], cfg, as_of=bar_open + pd.Timedelta("1h40min"))
        assert res.bar_close == bar_open + pd.Timedelta("1h")
        assert res.signals["signal"].tolist() == ["ema_9_21"]
        assert res.signals["direction"].iloc[0] == ("bull" if side[i] > 0 else "bear")
        # one minute before the crossing bar closes, it is not scanned: the latest closed bar has no cross
        early = scan_interval(lake, "1h", [SYM], cfg, as_of=bar_open + pd.Timedelta("59min"), write=False)
        assert early.bar_close == bar_open and early.signals.empty
    stored = lake.read("intraday_signals")
    assert len(stored) == 2 and set(stored["interval"]) == {"1h"}
