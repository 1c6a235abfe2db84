"""Daily scanner: indicators against independent references, crosses on hand-made series, RSI context
dates, universe filters, scoring, the daily_signals table and the text/JSON/MOTD outputs."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from execution.indicators import add_indicators, ema, macd, rsi
from execution.report import default_motd_path, render_text, run_daily_scan, write_json, write_motd
from execution.scanner import (
    _crosses,
    _rsi_events,
    check_fresh,
    scan,
    trading_days_between,
    universe_filter,
    write_signals,
)
from execution.settings import ScanConfig
from quantlake.errors import ConfigError, InvalidDateError
from quantlake.tables import EQUITY_BARS


# ---------------------------------------------------------------------------------------------- references
def ref_ema(x: list[float], n: int) -> list[float]:
    """Textbook EMA: SMA of the first n values, then alpha = 2/(n+1) (a plain loop)."""
    out = [math.nan] * len(x)
    if len(x) < n:
        return out
    prev = sum(x[:n]) / n
    out[n - 1] = prev
    a = 2.0 / (n + 1)
    for i in range(n, len(x)):
        prev = a * x[i] + (1 - a) * prev
        out[i] = prev
    return out


def ref_rsi(x: list[float], n: int) -> list[float]:
    """Wilder's RSI from his book: first averages are simple means of n changes, then (prev*(n-1)+cur)/n."""
    out = [math.nan] * len(x)
    if len(x) < n + 1:
        return out
    ch = [x[i] - x[i - 1] for i in range(1, len(x))]
    g = sum(max(c, 0) for c in ch[:n]) / n
    lo = sum(max(-c, 0) for c in ch[:n]) / n

    def val(g: float, lo: float) -> float:
        if lo == 0:
            return 100.0 if g > 0 else 50.0
        return 100 - 100 / (1 + g / lo)

    out[n] = val(g, lo)
    for i in range(n, len(ch)):
        g = (g * (n - 1) + max(ch[i], 0)) / n
        lo = (lo * (n - 1) + max(-ch[i], 0)) / n
        out[i + 1] = val(g, lo)
    return out


def backtrader_indicators(close: np.ndarray) -> dict[str, np.ndarray]:
    """EMA(9), RSI(14) and MACD(12, 26, 9) computed by backtrader (a second engine)."""
    import backtrader as bt

    df = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6},
        index=pd.bdate_range("2020-01-01", periods=len(close)),
    )

    class Grab(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.e9 = bt.ind.EMA(self.data.close, period=9)
            self.r14 = bt.ind.RSI(self.data.close, period=14)
            self.m = bt.ind.MACD(self.data.close, period_me1=12, period_me2=26, period_signal=9)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(Grab)
    s = cerebro.run()[0]
    macd_line, signal = np.array(s.m.macd.array), np.array(s.m.signal.array)
    return {
        "ema9": np.array(s.e9.array),
        "rsi14": np.array(s.r14.array),
        "macd": macd_line,
        "signal": signal,
        "hist": macd_line - signal,
    }


def random_walk(n: int = 300, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))


def put_bars(lake, closes: dict[str, list[float]], start: str = "2024-01-02", volume=1e6) -> list[dt.date]:  # type: ignore[no-untyped-def]
    """Write close series (business days from ``start``) to equity_bars; returns the dates."""
    frames = []
    dates: list[dt.date] = []
    for sym, cl in closes.items():
        dates = [d.date() for d in pd.bdate_range(start, periods=len(cl))]
        vol = volume[sym] if isinstance(volume, dict) else [volume] * len(cl)
        frames.append(
            pd.DataFrame(
                {"symbol": sym, "date": dates, "open": cl, "high": cl, "low": cl, "close": cl,
                 "adj_close": cl, "volume": vol, "source": "test"}
            )
        )
    lake.merge("equity_bars", pd.concat(frames, ignore_index=True), EQUITY_BARS)
    return dates


# ---------------------------------------------------------------------------------------------- indicators
def test_indicators_equal_textbook_loops() -> None:
    x = random_walk(260)
    for n in (3, 9, 21, 50):
        np.testing.assert_allclose(ema(x, n), ref_ema(list(x), n), rtol=1e-12, equal_nan=True)
    for n in (2, 14):
        np.testing.assert_allclose(rsi(x, n), ref_rsi(list(x), n), rtol=1e-10, equal_nan=True)
    line, sig, hist = macd(x, 12, 26, 9)
    ref_line = np.array(ref_ema(list(x), 12)) - np.array(ref_ema(list(x), 26))
    ref_sig = np.full(len(x), np.nan)
    ref_sig[25:] = ref_ema(list(ref_line[25:]), 9)
    np.testing.assert_allclose(line, ref_line, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(sig, ref_sig, rtol=1e-10, equal_nan=True)
    assert np.isnan(sig[:33]).all() and not np.isnan(sig[33])  # first signal value at bar 34
    np.testing.assert_allclose(hist, ref_line - ref_sig, atol=1e-12, equal_nan=True)


def test_indicators_equal_backtrader() -> None:
    x = random_walk(300, seed=11)
    bt_ind = backtrader_indicators(x)
    line, sig, hist = macd(x)
    for mine, theirs in ((ema(x, 9), bt_ind["ema9"]), (rsi(x, 14), bt_ind["rsi14"]), (line, bt_ind["macd"]),
                         (sig, bt_ind["signal"]), (hist, bt_ind["hist"])):  # fmt: skip
        assert np.array_equal(np.isnan(mine), np.isnan(theirs))  # same warm-up
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_rsi_edge_cases_and_short_series() -> None:
    assert rsi(np.arange(1.0, 20.0), 14)[-1] == 100.0  # only gains
    assert rsi(np.full(20, 7.0), 14)[-1] == 50.0  # no change at all
    assert np.isnan(rsi(np.arange(1.0, 15.0), 14)).all()  # 14 closes = 13 changes: not enough
    assert np.isnan(ema(np.arange(5.0), 6)).all()


def test_add_indicators_per_symbol_does_not_mix_symbols() -> None:
    a, b = random_walk(80, 1), random_walk(60, 2)
    bars = pd.DataFrame(
        {"symbol": ["B"] * 60 + ["A"] * 80,
         "date": list(pd.bdate_range("2024-01-01", periods=60).date) + list(pd.bdate_range("2024-01-01", periods=80).date),
         "close": np.r_[b, a], "volume": np.r_[np.full(60, 2.0), np.arange(80.0)]}
    )
    out = add_indicators(bars, [5, 20], rsi_period=14, volume_window=4)
    got_a = out[out["symbol"] == "A"]
    np.testing.assert_allclose(got_a["ema_20"], ref_ema(list(a), 20), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out[out["symbol"] == "B"]["rsi"], ref_rsi(list(b), 14), rtol=1e-10, equal_nan=True)
    # average volume of the last 4 bars of A: 76..79 → 77.5, NaN for the first 3 bars of each symbol
    assert got_a["avg_volume"].iloc[-1] == pytest.approx(77.5)
    assert got_a["volume_ratio"].iloc[-1] == pytest.approx(79 / 77.5)
    assert got_a["avg_volume"].iloc[:3].isna().all()


# ---------------------------------------------------------------------------------------------- crosses
def test_crosses_need_the_other_side_of_zero() -> None:
    spread = pd.Series([np.nan, -1.0, -0.5, 0.0, 0.5, 0.0, 0.4, -0.1, 0.0, -0.2, 1.0])
    up, down = _crosses(spread, pd.Series(["X"] * len(spread)))
    # -,0,+ crosses up on the positive bar; +,0,+ is a touch; +,- crosses down; -,0,- is a touch
    assert list(np.flatnonzero(up)) == [4, 10]
    assert list(np.flatnonzero(down)) == [7]
    # the first bar of another symbol never crosses against the previous symbol's last value
    two = pd.Series([-1.0, 1.0, 2.0, 3.0])
    up2, _ = _crosses(two, pd.Series(["A", "A", "B", "B"]))
    assert list(np.flatnonzero(up2)) == [1]


HAND = [10.0] * 6 + [9.0, 12.0, 12.0, 8.0]  # EMA(3) vs EMA(6): bull cross on bar 7, bear cross on bar 9


def hand_config(**kw) -> ScanConfig:  # type: ignore[no-untyped-def]
    base = dict(min_price=1.0, max_price=1000.0, min_volume=0.0, volume_window=3, ema_pairs=[(3, 6)])
    return ScanConfig(**(base | kw))


def test_cross_on_a_hand_computed_series(lake) -> None:  # type: ignore[no-untyped-def]
    dates = put_bars(lake, {"HAND": HAND})
    res = scan(lake, hand_config(as_of=dates[7]))
    assert len(res.signals) == 1
    s = res.signals.iloc[0]
    # by hand: bar 6 fast = 10 + 0.5(9-10) = 9.5, slow = 10 + 2/7(9-10) = 9.714286 (below: bearish side)
    #          bar 7 fast = 9.5 + 0.5(12-9.5) = 10.75, slow = 9.714286 + 2/7(12-9.714286) = 10.367347
    slow6, slow7 = 10 - 2 / 7, 10 - 2 / 7 + 2 / 7 * (12 - (10 - 2 / 7))
    assert (s["symbol"], s["signal"], s["direction"], s["date"]) == ("HAND", "ema_3_6", "bull", dates[7])
    assert s["ema_fast"] == pytest.approx(10.75, abs=1e-12)
    assert s["ema_slow"] == pytest.approx(slow7, abs=1e-12)
    assert s["spread_pct"] == pytest.approx(100 * (10.75 - slow7) / 12, abs=1e-10)
    assert s["spread_change_pct"] == pytest.approx(100 * (10.75 - slow7) / 12 - 100 * (9.5 - slow6) / 9, abs=1e-10)
    # score: no MACD/RSI yet (10 bars), volume flat → only the cross points: 20 × min(1, 5.57 / 0.5) = 20
    assert not s["macd_confirms"] and s["score"] == 20.0 and s["rank"] == 1
    # the next bar (no sign change) has no signal; bar 9 is a bear cross
    assert scan(lake, hand_config(as_of=dates[8])).signals.empty
    bear = scan(lake, hand_config(as_of=dates[9])).signals
    assert list(bear["direction"]) == ["bear"]


def test_volume_points_and_universe_volume_filter(lake) -> None:  # type: ignore[no-untyped-def]
    vols = [1e6] * 7 + [2e6, 1e6, 1e6]
    dates = put_bars(lake, {"HAND": HAND}, volume={"HAND": vols})
    s = scan(lake, hand_config(as_of=dates[7])).signals.iloc[0]
    # average of the last 3 volumes = (1 + 1 + 2)/3 M; ratio 1.5 → 20 × 0.5 = 10 volume points
    assert s["avg_volume"] == pytest.approx(4e6 / 3)
    assert s["volume_ratio"] == pytest.approx(1.5)
    assert s["score"] == pytest.approx(30.0)
    res = scan(lake, hand_config(as_of=dates[7], min_volume=1.5e6))
    assert res.signals.empty
    assert res.universe.set_index("symbol").loc["HAND", "reason"] == "avg volume below 1,500,000"


def test_replay_finds_every_cross_of_the_reference(sample_lake) -> None:  # type: ignore[no-untyped-def]
    """Replay over 2017 on the sample data: the scanner's crosses are exactly those of textbook EMA loops
    over each symbol's closes, with the same EMA values."""
    cfg = ScanConfig(as_of=dt.date(2017, 12, 29), min_price=1.0, max_price=5000.0, allow_missing_volume=True,
                     ema_pairs=[(9, 21), (20, 50)])  # fmt: skip
    res = scan(sample_lake, cfg, start=dt.date(2017, 1, 1))
    bars = sample_lake.read("equity_bars", columns=["symbol", "date", "close"], where="date <= ?",
                            params=[dt.date(2017, 12, 29)])  # fmt: skip
    bars["date"] = pd.to_datetime(bars["date"]).dt.date
    expected = set()
    ema_values = {}
    for sym, g in bars.groupby("symbol"):
        if str(sym).startswith("^"):
            continue
        closes, days = list(g["close"]), list(g["date"])
        for fast, slow in cfg.ema_pairs:
            f, s = ref_ema(closes, fast), ref_ema(closes, slow)
            side = 0
            for i in range(len(closes)):
                d = f[i] - s[i]
                if math.isnan(d) or d == 0:
                    continue
                now = 1 if d > 0 else -1
                if side and now != side and days[i] >= dt.date(2017, 1, 1):
                    key = (days[i], sym, f"ema_{fast}_{slow}")
                    expected.add(key)
                    ema_values[key] = (f[i], s[i])
                side = now
    got = {(r.date, r.symbol, r.signal) for r in res.signals.itertuples()}
    assert len(expected) > 10
    assert got == expected
    for r in res.signals.itertuples():
        assert (r.ema_fast, r.ema_slow) == pytest.approx(ema_values[(r.date, r.symbol, r.signal)], rel=1e-10)
        assert r.macd_confirms == (r.macd_hist > 0 if r.direction == "bull" else r.macd_hist < 0)
    # ranks are 1..n per date, best score first
    for _, g in res.signals.groupby("date"):
        assert list(g["rank"]) == list(range(1, len(g) + 1))
        assert list(g["score"]) == sorted(g["score"], reverse=True)


def test_no_look_ahead(sample_lake) -> None:  # type: ignore[no-untyped-def]
    """A scan of a past date gives the same signals whether or not later bars exist."""
    cfg = ScanConfig(as_of=dt.date(2017, 6, 30), min_price=1.0, max_price=5000.0, allow_missing_volume=True)
    full = scan(sample_lake, cfg, start=dt.date(2017, 3, 1)).signals
    later = sample_lake.read("equity_bars", where="date > ?", params=[dt.date(2017, 6, 30)])
    assert len(later) > 0
    from quantlake.lake import Lake

    trimmed = Lake(sample_lake.root.parent / "trimmed")
    trimmed.merge("equity_bars", sample_lake.read("equity_bars", where="date <= ?",
                                                  params=[dt.date(2017, 6, 30)]), EQUITY_BARS)  # fmt: skip
    cut = scan(trimmed, cfg, start=dt.date(2017, 3, 1)).signals
    cols = [c for c in full.columns if c != "scanned_at"]
    pd.testing.assert_frame_equal(full[cols], cut[cols])


# ---------------------------------------------------------------------------------------------- RSI
def test_rsi_event_window_and_date() -> None:
    rsi_col = [50.0, 25.0, 28.0, 35.0, 40.0, 45.0, 50.0, 75.0, 60.0]
    d = list(pd.bdate_range("2024-03-01", periods=len(rsi_col)).date)
    ind = pd.DataFrame({"symbol": "X", "date": d, "rsi": rsi_col})
    label, when = _rsi_events(ind, ScanConfig(rsi_window=5))
    # crossed below 30 on bar 1: visible on bars 1..5 (5 bars), gone on bar 6; crossed above 70 on bar 7
    assert list(label) == [None, "crossed_below_30", *["crossed_below_30"] * 4, None, "crossed_above_70",
                           "crossed_above_70"]  # fmt: skip
    assert pd.Timestamp(when[5]).date() == d[1] and pd.isna(when[6]) and pd.Timestamp(when[8]).date() == d[7]
    label3, _ = _rsi_events(ind, ScanConfig(rsi_window=3))
    assert label3[3] == "crossed_below_30" and label3[4] is None
    label1, _ = _rsi_events(ind, ScanConfig(rsi_window=1))
    assert label1[1] == "crossed_below_30" and label1[2] is None


def test_rsi_context_on_a_scanned_signal(lake) -> None:  # type: ignore[no-untyped-def]
    """A sell-off (RSI(3) below 30) then a rally that turns EMA(3) over EMA(6): the bull signal carries
    the RSI event and its date (from the reference RSI) and earns the favourable 20 RSI points."""
    closes = [20.0, 20.5, 20.2, 20.6, 20.4, 20.8, 20.5, 19.0, 17.5, 18.0, 20.0, 22.0]
    dates = put_bars(lake, {"RSIX": closes})
    ref = ref_rsi(closes, 3)
    below = [i for i in range(1, len(closes)) if ref[i - 1] >= 30 > ref[i]]
    above = [i for i in range(1, len(closes)) if ref[i - 1] <= 95 < ref[i]]
    assert below == [7] and above == []  # RSI(3): 52.7 → 16.4 on bar 7
    cfg = hand_config(rsi_period=3, rsi_window=5, rsi_upper=95.0)
    res = scan(lake, cfg, start=dates[0])
    bull = res.signals[res.signals["direction"] == "bull"]
    assert len(bull) == 1
    s = bull.iloc[0]
    i = dates.index(s["date"])
    last_event = 7
    assert i == 11  # EMA(3) - EMA(6) turns positive on the last bar (-0.078 → +0.553 by the loops)
    assert s["rsi_event"] == "crossed_below_30" and s["rsi_event_date"] == dates[last_event]
    assert s["rsi"] == pytest.approx(ref[i], rel=1e-10)
    # score = MACD 0 (too short) + cross 20 × min(1, |Δ|/0.5) + volume 0 + RSI 20 (favourable event)
    assert s["score"] == pytest.approx(20 * min(1.0, abs(s["spread_change_pct"]) / 0.5) + 20.0)
    # with a 1-bar window the event is too old
    res1 = scan(lake, hand_config(rsi_period=3, rsi_window=4, rsi_upper=95.0), start=dates[0])
    s1 = res1.signals[res1.signals["direction"] == "bull"].iloc[0]
    assert s1["rsi_event"] is None or pd.isna(s1["rsi_event"])


# ---------------------------------------------------------------------------------------------- universe
def test_universe_filters_and_reasons() -> None:
    today = pd.DataFrame(
        {"symbol": ["OK", "CHEAP", "DEAR", "THIN", "NOVOL", "^IDX", "SMALL", "NOCAP"],
         "close": [50.0, 5.0, 500.0, 50.0, 50.0, 50.0, 50.0, 50.0],
         "avg_volume": [1e6, 1e6, 1e6, 1e3, np.nan, 1e6, 1e6, 1e6]}
    )
    caps = {"OK": 5e9, "CHEAP": 5e9, "DEAR": 5e9, "THIN": 5e9, "NOVOL": 5e9, "^IDX": 5e9, "SMALL": 1e8}
    u = universe_filter(today, ScanConfig(min_market_cap=1e9, market_caps=caps)).set_index("symbol")
    assert u["passed"].to_dict() == {k: k == "OK" for k in u.index}
    assert u.loc["CHEAP", "reason"] == "price below 10"
    assert u.loc["DEAR", "reason"] == "price above 100"
    assert u.loc["THIN", "reason"] == "avg volume below 500,000"
    assert u.loc["NOVOL", "reason"] == "no volume for 20 bars"
    assert u.loc["^IDX", "reason"] == "index"
    assert u.loc["SMALL", "reason"] == "market cap below 1,000,000,000"
    assert u.loc["NOCAP", "reason"] == "market cap unknown"
    relaxed = universe_filter(today, ScanConfig(allow_missing_volume=True, include_indices=True)).set_index("symbol")
    assert relaxed.loc["NOVOL", "passed"] and relaxed.loc["^IDX", "passed"] and relaxed.loc["NOCAP", "passed"]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"ScanConfig: min_price 50.0 is above max_price 10.0"):
        ScanConfig(min_price=50, max_price=10)
    with pytest.raises(ConfigError, match=r"fast must be shorter than slow"):
        ScanConfig(ema_pairs=[(21, 9)])
    with pytest.raises(ConfigError, match=r"ScanConfig.rsi_window"):
        ScanConfig(rsi_window=0)
    with pytest.raises(ConfigError, match=r"ScanConfig.symbols"):
        ScanConfig(symbols=["BAD SYMBOL!"])
    with pytest.raises(ConfigError, match=r"ScanConfig.nonsense"):
        ScanConfig.model_validate({"nonsense": 1})


# ---------------------------------------------------------------------------------------------- dates
def test_trading_days_between_counts_nyse_days() -> None:
    assert trading_days_between(dt.date(2024, 6, 28), dt.date(2024, 7, 1)) == 1  # Fri → Mon
    assert trading_days_between(dt.date(2024, 7, 3), dt.date(2024, 7, 5)) == 1  # July 4th closed
    assert trading_days_between(dt.date(2024, 7, 5), dt.date(2024, 7, 5)) == 0
    assert trading_days_between(dt.date(2024, 12, 20), dt.date(2025, 1, 3)) == 8  # Dec 25, Jan 1 closed


def test_stale_data_and_missing_dates(lake) -> None:  # type: ignore[no-untyped-def]
    from execution.errors import StaleDataError

    dates = put_bars(lake, {"HAND": HAND})  # 2024-01-02 .. 2024-01-15
    assert check_fresh(lake, 1, today=dt.date(2024, 1, 16)) == dates[-1]
    # 2024-01-15 was a holiday (the synthetic bars do not care); 16, 17, 18 are three trading days
    with pytest.raises(StaleDataError, match=r"latest bar is 2024-01-15, 3 trading day\(s\) before 2024-01-18"):
        check_fresh(lake, 2, today=dt.date(2024, 1, 18))
    with pytest.raises(InvalidDateError, match=r"no bars on 2024-01-06.*latest trading date in equity_bars is 2024-01-15"):
        scan(lake, hand_config(as_of=dt.date(2024, 1, 6)))
    with pytest.raises(InvalidDateError, match="after as_of"):
        scan(lake, hand_config(as_of=dates[3]), start=dates[5])


# ---------------------------------------------------------------------------------------------- table + outputs
def test_daily_signals_rescan_replaces_only_its_dates_and_symbols(lake) -> None:  # type: ignore[no-untyped-def]
    dates = put_bars(lake, {"HAND": HAND, "TWIN": HAND})
    full = scan(lake, hand_config(as_of=dates[9]), start=dates[0])
    c1 = write_signals(lake, full)
    stored = lake.read("daily_signals")
    assert len(stored) == 4 and set(stored["symbol"]) == {"HAND", "TWIN"} and c1.version == 0
    # rescan of one symbol on one date: the other symbol's rows stay, nothing is duplicated
    one = scan(lake, hand_config(as_of=dates[9], symbols=["HAND"]))
    write_signals(lake, one)
    again = lake.read("daily_signals")
    assert len(again) == 4
    # a rescan that finds nothing on its date removes that date's stale rows (only for its symbols)
    empty = scan(lake, hand_config(as_of=dates[9], symbols=["HAND"], ema_pairs=[(10, 11)]))
    assert empty.signals.empty
    write_signals(lake, empty)
    left = lake.read("daily_signals")
    assert sorted(zip(left["symbol"], pd.to_datetime(left["date"]).dt.date, strict=True)) == sorted(
        [("HAND", dates[7]), ("TWIN", dates[7]), ("TWIN", dates[9])]
    )
    assert lake.version("daily_signals") == 2


def test_outputs_json_text_motd(lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    dates = put_bars(lake, {"HAND": HAND, "FLAT": [10.0] * 10})
    motd = tmp_path / "motd"
    motd.write_text("Welcome to the box.\n")
    out = run_daily_scan(lake, hand_config(as_of=dates[7]), json_dir=tmp_path / "scan", motd=motd, email=False)
    data = json.loads(out.json_path.read_text())  # type: ignore[union-attr]
    assert out.json_path.name == "signals_2024-01-11.json" and (tmp_path / "scan" / "latest.json").exists()
    assert data["as_of"] == "2024-01-11" and data["summary"]["universe"] == 2
    assert [(s["symbol"], s["direction"], s["rank"]) for s in data["signals"]] == [("HAND", "bull", 1)]
    assert data["signals"][0]["rsi"] is None  # NaN becomes null, valid JSON
    assert data["config"]["ema_pairs"] == [[3, 6]]
    text = render_text(out.result)
    assert text.splitlines()[0] == "quantlake scan 2024-01-11: 1 signal(s) in a universe of 2 (of 2 symbols with bars)"
    assert "HAND" in text.splitlines()[2] and "bull" in text.splitlines()[2]
    first = motd.read_text()
    assert first.startswith("Welcome to the box.\n# >>> quantlake scan >>>\nquantlake scan 2024-01-11")
    # a second scan replaces the block and keeps the rest
    run_daily_scan(lake, hand_config(as_of=dates[9]), json_dir=tmp_path / "scan", motd=motd, email=False,
                   store=False)  # fmt: skip
    second = motd.read_text()
    assert second.count("# >>> quantlake scan >>>") == 1 and "2024-01-11" not in second
    assert second.startswith("Welcome to the box.\n") and "quantlake scan 2024-01-15" in second
    # the MOTD location: env override, else $QUANTLAKE_HOME/motd; never /etc/motd unless configured
    monkeypatch.setenv("QUANTLAKE_MOTD_PATH", str(tmp_path / "m2"))
    assert default_motd_path() == tmp_path / "m2"
    monkeypatch.delenv("QUANTLAKE_MOTD_PATH")
    monkeypatch.setenv("QUANTLAKE_HOME", str(tmp_path / "qlhome"))
    assert default_motd_path() == tmp_path / "qlhome" / "motd"  # even as root, with /etc/motd writable
    assert write_motd("hello", tmp_path / "new" / "motd").read_text() == (
        "# >>> quantlake scan >>>\nhello\n# <<< quantlake scan <<<\n"
    )


def test_unwritable_motd_does_not_fail_the_scan(lake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dates = put_bars(lake, {"HAND": HAND})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run_daily_scan(lake, hand_config(as_of=dates[7]), json_dir=tmp_path, motd=blocker / "motd", email=False)
    assert out.motd_path is None and out.motd_error and str(blocker) in out.motd_error
    assert out.json_path is not None and out.commit is not None


def test_write_json_is_atomic_and_overwrites(lake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dates = put_bars(lake, {"HAND": HAND})
    res = scan(lake, hand_config(as_of=dates[7]))
    p1 = write_json(res, tmp_path / "out")
    p2 = write_json(res, tmp_path / "out")
    assert p1 == p2
    assert sorted(x.name for x in (tmp_path / "out").iterdir()) == ["latest.json", "signals_2024-01-11.json"]


def test_indicators_equal_features_technical(sample_lake) -> None:  # type: ignore[no-untyped-def]
    """The scanner's indicators equal the feature table's (DuckDB + numba kernels, a separate
    implementation) on every sample bar, and crosscheck() reports a disagreement when there is one."""
    import dataclasses

    from execution.scanner import crosscheck
    from features.build import build_features

    build_features(sample_lake, tables=["features_technical"])
    feats = sample_lake.read("features_technical", columns=["symbol", "date", "ema_12", "ema_50", "rsi_14", "macd",
                                                            "macd_signal", "macd_hist"])  # fmt: skip
    bars = sample_lake.read("equity_bars", columns=["symbol", "date", "close", "volume"], where="close IS NOT NULL")
    mine = add_indicators(bars, [12, 50]).merge(feats, on=["symbol", "date"], how="inner")
    assert len(mine) > 30_000
    for a, b in (("ema_12_x", "ema_12_y"), ("ema_50_x", "ema_50_y"), ("rsi", "rsi_14"), ("macd_x", "macd_y"),
                 ("macd_signal_x", "macd_signal_y"), ("macd_hist_x", "macd_hist_y")):  # fmt: skip
        np.testing.assert_allclose(mine[a], mine[b], rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=a)
    cfg = ScanConfig(as_of=dt.date(2018, 6, 27), allow_missing_volume=True, max_price=300.0, ema_pairs=[(12, 26)],
                     rsi_window=5)  # fmt: skip
    replay = scan(sample_lake, cfg, start=dt.date(2018, 1, 2))
    day = max(replay.signals["date"])  # the last day with a signal: crosscheck compares that day's rows
    res = scan(sample_lake, cfg.model_copy(update={"as_of": day}))
    assert len(res.signals) >= 1 and res.crosscheck == []
    bad = res.signals.copy()
    bad.loc[bad["date"] == res.as_of, "rsi"] += 1.0
    found = crosscheck(sample_lake, dataclasses.replace(res, signals=bad))
    assert found and all(" rsi: scanner " in line and "vs features_technical" in line for line in found)
