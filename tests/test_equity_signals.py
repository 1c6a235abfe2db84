"""Indicators and strategy signals of backtests.equity against backtrader's indicators, hand-worked cases and
independent pandas/statsmodels computations (no vectorbt here: these run in a second or two)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.equity import indicators as ind
from backtests.equity.data import Bars
from backtests.equity.strategies import STRATEGIES
from backtests.equity.strategies.pairs import rolling_hedge, spread_position


def synthetic_bars(n: int = 400, n_sym: int = 2, seed: int = 3) -> Bars:
    """Random-walk OHLCV; symbol 1 starts 60 bars late (leading NaNs)."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0.0004, 0.018, (n, n_sym)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.006, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.008, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.008, close.shape)))
    vol = rng.integers(1_000, 100_000, close.shape).astype(float)
    arrays = [open_, high, low, close, vol]
    if n_sym > 1:
        for a in arrays:
            a[:60, 1] = np.nan
    idx = pd.bdate_range("2015-01-01", periods=n)
    return Bars(idx, tuple(f"S{i}" for i in range(n_sym)), *arrays)


def bt_lines(bars: Bars, col: int, build: Any) -> dict[str, np.ndarray]:
    """Values of backtrader indicators built by ``build(strategy)`` over one symbol (its own rows only)."""
    import backtrader as bt

    alive = ~np.isnan(bars.close[:, col])
    df = pd.DataFrame(
        {f: getattr(bars, f)[alive, col] for f in ("open", "high", "low", "close", "volume")},
        index=bars.index[alive],
    )

    class Probe(bt.Strategy):
        def __init__(self) -> None:
            self.probe = build(self)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(Probe)
    strat = cerebro.run()[0]
    out = {}
    for name, line in strat.probe.items():
        vals = np.asarray(line.array, dtype=float)
        full = np.full(len(bars.index), np.nan)
        full[alive] = vals[: alive.sum()]
        out[name] = full
    return out


def assert_same(ours: np.ndarray, ref: np.ndarray, tol: float = 1e-9) -> None:
    both = ~np.isnan(ref)
    # defined on the same rows (backtrader leaves its warm-up rows NaN exactly as we do)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours[both], ref[both], rtol=tol, atol=tol)


BARS = synthetic_bars()


@pytest.mark.parametrize("col", [0, 1])
def test_moving_averages_rsi_macd_match_backtrader(col: int) -> None:
    import backtrader as bt

    def build(s: Any) -> dict[str, Any]:
        macd = bt.ind.MACD(s.data.close, period_me1=12, period_me2=26, period_signal=9)
        bb = bt.ind.BollingerBands(s.data.close, period=20, devfactor=2.0)
        return {
            "ema10": bt.ind.EMA(s.data.close, period=10).lines[0],
            "sma30": bt.ind.SMA(s.data.close, period=30).lines[0],
            "rsi14": bt.ind.RSI(s.data.close, period=14, safediv=True).lines[0],
            "macd": macd.macd,
            "signal": macd.signal,
            "bb_lo": bb.bot,
            "bb_mid": bb.mid,
            "atr14": bt.ind.ATR(s.data, period=14).lines[0],
        }

    ref = bt_lines(BARS, col, build)
    c = BARS.close
    assert_same(ind.ema(c, 10)[:, col], ref["ema10"])
    assert_same(ind.sma(c, 30)[:, col], ref["sma30"])
    assert_same(ind.rsi(c, 14)[:, col], ref["rsi14"])
    line, sig, _ = ind.macd(c, 12, 26, 9)
    assert_same(line[:, col], ref["macd"])
    assert_same(sig[:, col], ref["signal"])
    lo, mid, _ = ind.bollinger(c, 20, 2.0)
    assert_same(mid[:, col], ref["bb_mid"])
    assert_same(lo[:, col], ref["bb_lo"], tol=1e-7)  # backtrader's StdDev is sqrt(E[x²] - E[x]²)
    assert_same(ind.atr(BARS.high, BARS.low, c, 14)[:, col], ref["atr14"])


def test_crosses_and_within_by_hand() -> None:
    a = np.array([[1.0], [2.0], [3.0], [2.0], [2.0], [1.0], [3.0]])
    b = np.full_like(a, 2.0)
    assert ind.crossed_above(a, b)[:, 0].tolist() == [False, False, True, False, False, False, True]
    # 3 -> 2 is not below (equal); 2 -> 1 is the cross below
    assert ind.crossed_below(a, b)[:, 0].tolist() == [False, False, False, False, False, True, False]
    m = np.array([[0], [1], [0], [0], [0], [1]], dtype=bool)
    assert ind.within(m, 3)[:, 0].tolist() == [False, True, True, True, False, True]
    roc = ind.roc(np.array([[10.0], [11.0], [12.1], [9.68]]), 2)
    np.testing.assert_allclose(roc[2:, 0], [0.21, 9.68 / 11 - 1])
    assert np.isnan(roc[:2, 0]).all()


def test_sma_cross_signals_layout_and_values() -> None:
    combos = pd.DataFrame({"fast": [5, 10, 5], "slow": [20, 20, 40]})
    sig = STRATEGIES["sma_cross"].fn(BARS, combos)
    n_sym = len(BARS.symbols)
    assert sig.entries.shape == (len(BARS.index), len(combos) * n_sym)
    for c, (f, s) in enumerate(combos.itertuples(index=False)):
        for j in range(n_sym):
            close = pd.Series(BARS.close[:, j])
            d = close.rolling(f).mean() - close.rolling(s).mean()
            up = (d > 0) & (d.shift() <= 0)
            down = (d < 0) & (d.shift() >= 0)
            np.testing.assert_array_equal(sig.entries[:, c * n_sym + j], up.to_numpy())
            np.testing.assert_array_equal(sig.exits[:, c * n_sym + j], down.to_numpy())
    assert sig.entries.any() and sig.exits.any()


def test_ema_cross_filters_only_remove_entries() -> None:
    base = {"fast": 8, "slow": 21, "rsi_window": 14, "rsi_upper": 70.0, "rsi_lower": 30.0, "rsi_lookback": 5,
            "macd_fast": 12, "macd_slow": 26, "macd_signal": 9}  # fmt: skip
    combos = pd.DataFrame(
        [
            {**base, "rsi_filter": "off", "macd_confirm": False},
            {**base, "rsi_filter": "not_overbought", "macd_confirm": True},
            {**base, "rsi_filter": "oversold", "macd_confirm": False},
        ]
    )
    sig = STRATEGIES["ema_cross"].fn(BARS, combos)
    n = len(BARS.symbols)
    plain, filtered, oversold = (sig.entries[:, k * n : (k + 1) * n] for k in range(3))
    assert (filtered <= plain).all() and (oversold <= plain).all()
    assert filtered.sum() < plain.sum()
    # hand rule for combination 1: MACD above its signal and no RSI cross above 70 within 5 bars
    line, sl, _ = ind.macd(BARS.close, 12, 26, 9)
    r = ind.rsi(BARS.close, 14)
    up = ind.crossed_above(r, 70.0)
    for j in range(n):
        for t in np.flatnonzero(plain[:, j]):
            recent = up[max(0, t - 4) : t + 1, j].any()
            assert filtered[t, j] == (bool(line[t, j] > sl[t, j]) and not recent)
    exits = sig.exits[:, :n]
    np.testing.assert_array_equal(exits, sig.exits[:, n : 2 * n])  # filters never touch exits


def test_tsmom_and_rsi_reversion_by_hand() -> None:
    combos = pd.DataFrame({"lookback": [20], "threshold": [0.05], "allow_short": [True]})
    sig = STRATEGIES["tsmom"].fn(BARS, combos)
    mom = pd.Series(BARS.close[:, 0]).pct_change(20)
    assert sig.short_entries is not None and sig.short_exits is not None
    np.testing.assert_array_equal(sig.entries[:, 0], ((mom > 0.05) & (mom.shift() <= 0.05)).to_numpy())
    np.testing.assert_array_equal(sig.short_entries[:, 0], ((mom < -0.05) & (mom.shift() >= -0.05)).to_numpy())
    rs = STRATEGIES["rsi_reversion"].fn(BARS, pd.DataFrame({"window": [14], "lower": [30.0], "exit_level": [55.0]}))
    r = pd.Series(ind.rsi(BARS.close, 14)[:, 0])
    np.testing.assert_array_equal(rs.entries[:, 0], ((r < 30) & (r.shift() >= 30)).to_numpy())
    np.testing.assert_array_equal(rs.exits[:, 0], ((r > 55) & (r.shift() <= 55)).to_numpy())


def test_ma_atr_stop_is_k_atr_over_close() -> None:
    combos = pd.DataFrame({"ma_window": [20], "ma_kind": ["ema"], "atr_window": [10], "atr_mult": [2.5],
                           "trailing": [False]})  # fmt: skip
    sig = STRATEGIES["ma_atr_trend"].fn(BARS, combos)
    atr = ind.atr(BARS.high, BARS.low, BARS.close, 10)
    assert sig.sl_stop is not None
    np.testing.assert_allclose(sig.sl_stop[100:, 0], 2.5 * atr[100:, 0] / BARS.close[100:, 0])
    assert not np.asarray(sig.sl_trail).any()


def test_pairs_hedge_ratio_is_rolling_ols_and_position_by_hand() -> None:
    rng = np.random.default_rng(0)
    x = 40 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    y = 0.5 * x**1.3 * np.exp(rng.normal(0, 0.02, 300))
    beta, z = rolling_hedge(y[:, None], x[:, None], 60)
    for t in (59, 150, 299):
        ly, lx = np.log(y[t - 59 : t + 1]), np.log(x[t - 59 : t + 1])
        slope, icpt = np.polyfit(lx, ly, 1)
        resid = ly - (icpt + slope * lx)
        assert beta[t, 0] == pytest.approx(slope, rel=1e-8)
        assert z[t, 0] == pytest.approx(resid[-1] / resid.std(), rel=1e-6)
    assert np.isnan(beta[58, 0])
    zz = np.array([0, -2.5, -1, -0.2, 0, 2.5, 1, 0.3, 0])[:, None]
    pos = spread_position(zz, entry_z=2.0, exit_z=0.5, start=0)[:, 0]
    assert pos.tolist() == [0, 1, 1, 0, 0, -1, -1, 0, 0]
    assert spread_position(zz, 2.0, 0.5, start=3)[:, 0].tolist() == [0, 0, 0, 0, 0, -1, -1, 0, 0]


def test_universe_mask_by_hand() -> None:
    from backtests.equity.config import UniverseConfig
    from backtests.equity.filters import universe_mask

    idx = pd.bdate_range("2020-01-01", periods=4)
    close = np.array([[9.0, 50.0], [11.0, 150.0], [12.0, 60.0], [np.nan, 60.0]])
    vol = np.array([[1e6, 10.0], [1e6, 10.0], [1e6, 10.0], [np.nan, 10.0]])
    bars = Bars(idx, ("A", "B"), close, close, close, close, vol)
    m = universe_mask(bars, UniverseConfig(min_price=10, max_price=100))
    assert m.tolist() == [[False, True], [True, False], [True, True], [False, True]]
    m = universe_mask(bars, UniverseConfig(min_dollar_volume=5e6, window=2))
    assert m.tolist() == [[False, False], [True, False], [True, False], [False, False]]


def test_regime_filter_needs_the_feature_table(lake) -> None:  # type: ignore[no-untyped-def]
    from backtests.equity.config import RegimeConfig
    from backtests.equity.filters import read_regimes, regime_mask
    from quantlake.errors import UserInputError

    bars = Bars(pd.bdate_range("2021-01-04", periods=3), ("SPY",), *(np.ones((3, 1)),) * 5)
    cfg = RegimeConfig(allow=["low_vol"], symbol="SPY")
    with pytest.raises(UserInputError, match=r"features_regime.*does not exist.*quantlake features build"):
        read_regimes(lake, cfg, bars)
    regimes = pd.DataFrame({"SPY": ["low_vol", "high_vol", None]}, index=bars.index)
    assert regime_mask(regimes, cfg)[:, 0].tolist() == [True, False, False]


def test_bars_never_fill_a_missing_day_and_group_by_calendar() -> None:
    from backtests.equity.data import calendar_groups

    df = pd.DataFrame(
        {
            "symbol": ["A", "A", "B", "B", "B", "C", "C"],
            "date": [dt.date(2021, 1, 4), dt.date(2021, 1, 6), dt.date(2021, 1, 4), dt.date(2021, 1, 5),
                     dt.date(2021, 1, 6), dt.date(2021, 1, 4), dt.date(2021, 1, 6)],
            "open": [1.0, 3.0, 5.0, 5.0, 5.0, 7.0, 7.0],
            "high": [1.0, 3.0, 5.0, 5.0, 5.0, 7.0, 7.0],
            "low": [1.0, 3.0, 5.0, 5.0, 5.0, 7.0, 7.0],
            "close": [1.5, 3.5, 5.0, 5.0, 5.0, 7.0, 7.0],
            "volume": [10.0, 10.0, 1.0, 1.0, 1.0, 2.0, 2.0],
        }
    )  # fmt: skip
    bars = Bars.from_frame(df)
    assert np.isnan(bars.close[1, 0]) and np.isnan(bars.open[1, 0]) and np.isnan(bars.volume[1, 0])
    assert bars.alive[:, 0].tolist() == [True, False, True]
    groups = calendar_groups(bars.alive)  # A and C share a calendar, B has its own
    assert [(r.tolist(), c.tolist()) for r, c in groups] == [([0, 2], [0, 2]), ([0, 1, 2], [1])]
    a = bars.take([0]).at_rows(groups[0][0])
    assert a.close[:, 0].tolist() == [1.5, 3.5] and list(a.index.day) == [4, 6]
