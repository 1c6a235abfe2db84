"""Option-book stress by full revaluation: a short put spread through autumn 2008 against a hand revaluation
with QuantLib, American exercise, beta mapping of an underlying without history, per-leg and per-underlying
P&L, and the Greeks ladder (1 day and at expiry) by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import QuantLib as ql

from features.binomial import american_price
from risk.book import Position
from risk.stress import StressConfig, StressWindow, greeks_ladder, historical_detail, stress_detail

AS_OF = dt.date(2008, 8, 29)
EXPIRY = dt.date(2008, 12, 19)


def ql_european(right: str, spot: float, strike: float, as_of: dt.date, expiry: dt.date, r: float, q: float,
                vol: float) -> float:
    """Black-Scholes-Merton price from QuantLib's analytic engine (an independent implementation)."""
    today = ql.Date(as_of.day, as_of.month, as_of.year)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc, ql.Continuous)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc, ql.Continuous)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)),
    )
    option = ql.EuropeanOption(
        ql.PlainVanillaPayoff(ql.Option.Put if right == "P" else ql.Option.Call, strike),
        ql.EuropeanExercise(ql.Date(expiry.day, expiry.month, expiry.year)),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return float(option.NPV())


def test_short_put_spread_autumn_2008_matches_a_hand_full_revaluation(sample_lake) -> None:  # type: ignore[no-untyped-def]
    """Ten short 1250/1200 ^GSPC put spreads held on 29 Aug 2008, replayed through the autumn-2008 window: the
    loss equals pricing both legs by hand (QuantLib) at the window's last close and vol.  The issue's old
    stand-in (beta × S&P 500 on the strategy's returns) said -2 %."""
    closes = sample_lake.query(
        "SELECT date, symbol, coalesce(adj_close, close) AS px FROM equity_bars WHERE symbol IN ('^GSPC', '^VIX') "
        "AND date BETWEEN DATE '2008-08-29' AND DATE '2008-11-20'"
    ).pivot(index="date", columns="symbol", values="px").sort_index()
    spot = float(closes.loc[pd.Timestamp(AS_OF), "^GSPC"])
    window = closes[closes.index >= pd.Timestamp("2008-09-01")]
    move = window["^GSPC"].iloc[-1] / window["^GSPC"].iloc[0] - 1
    dvol = (window["^VIX"].iloc[-1] - window["^VIX"].iloc[0]) / 100
    r, q, iv_short, iv_long = 0.02, 0.02, 0.22, 0.25
    book = [
        Position(symbol="^GSPC", right="P", strike=1250, expiry=EXPIRY, qty=-10, price=30.0,
                 underlying_price=spot, iv=iv_short),
        Position(symbol="^GSPC", right="P", strike=1200, expiry=EXPIRY, qty=10, price=20.0,
                 underlying_price=spot, iv=iv_long),
    ]
    cfg = StressConfig(as_of=AS_OF, rate=r, dividend_yield=q, windows=(StressWindow(
        name="autumn 2008", start=dt.date(2008, 9, 1), end=dt.date(2008, 11, 20)),))
    detail = historical_detail(book, sample_lake, cfg, equity=250_000)
    row = detail.table.iloc[0]

    def leg(strike: float, iv: float, s: float, d: float) -> float:
        return ql_european("P", s, strike, AS_OF, EXPIRY, r, q, iv + d)

    hand = -1000 * (leg(1250, iv_short, spot * (1 + move), dvol) - leg(1250, iv_short, spot, 0.0))
    hand += 1000 * (leg(1200, iv_long, spot * (1 + move), dvol) - leg(1200, iv_long, spot, 0.0))
    assert move < -0.3 and dvol > 0.3  # the crash and the vol spike are in the sample data
    assert row.pnl == pytest.approx(hand, rel=0.01)  # the bound ...
    assert row.pnl == pytest.approx(hand, rel=1e-7)  # ... and in fact the same prices
    assert row.pnl < -0.95 * 50 * 1000 + 10 * 1000 * (30 - 20)  # close to the spread's maximum loss
    assert row.pnl_pct == pytest.approx(hand / 250_000, rel=1e-7)
    # per leg and per underlying at the window's end
    legs = detail.by_leg.loc["autumn 2008"]
    assert legs.sum() == pytest.approx(row.pnl, rel=1e-12)
    assert legs.iloc[0] == pytest.approx(-1000 * (leg(1250, iv_short, spot * (1 + move), dvol)
                                                  - leg(1250, iv_short, spot, 0.0)), rel=1e-7)
    assert detail.by_underlying.loc["autumn 2008", "^GSPC"] == pytest.approx(row.pnl, rel=1e-12)
    assert row.data.startswith("^GSPC: own")


def test_equity_options_are_american_and_index_options_european() -> None:
    """Exercise ``auto``: a deep in-the-money put on a stock is worth its early-exercise premium more."""
    pos = Position(symbol="AAA", right="P", strike=150, expiry=dt.date(2009, 8, 29), qty=1, price=50.0,
                   underlying_price=100.0, iv=0.3)
    cfg = StressConfig(as_of=AS_OF, rate=0.05, spot_shocks=(-0.1,), vol_shocks=(0.0,), windows=())
    t = stress_detail([pos], None, cfg).table
    t_years = (dt.date(2009, 8, 29) - AS_OF).days / 365
    amer = [float(american_price("P", s, 150, t_years, 0.05, 0.0, 0.3, steps=201)) for s in (90.0, 100.0)]
    assert t.iloc[0].pnl == pytest.approx(100 * (amer[0] - amer[1]), rel=1e-12)
    euro = stress_detail([pos], None, cfg.model_copy(update={"exercise": "european"})).table.iloc[0].pnl
    bs = [ql_european("P", s, 150, AS_OF, dt.date(2009, 8, 29), 0.05, 0.0, 0.3) for s in (90.0, 100.0)]
    assert euro == pytest.approx(100 * (bs[0] - bs[1]), rel=1e-9)
    assert amer[1] > bs[1] + 1  # early exercise is worth something here
    index = pos.model_copy(update={"symbol": "^SPX"})  # cash-settled index option: European
    assert stress_detail([index], None, cfg).table.iloc[0].pnl == pytest.approx(euro, rel=1e-12)


def _bars(symbol: str, dates: pd.DatetimeIndex, closes: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "date": dates.date, "close": closes, "adj_close": closes,
                         "source": "test"})


def test_an_underlying_without_window_history_moves_by_its_beta(lake) -> None:  # type: ignore[no-untyped-def]
    """CCC's history (before the window) moves exactly twice the proxy's daily returns: beta 2, so over a window
    it was not listed in, CCC falls twice the proxy's fall; a symbol without any history keeps beta 1."""
    rng = np.random.default_rng(3)
    days = pd.bdate_range("2020-01-01", periods=200)
    proxy_r = rng.normal(0, 0.01, len(days))
    proxy = 100 * np.cumprod(1 + proxy_r)
    ccc = 50 * np.cumprod(1 + 2 * proxy_r)
    window = pd.bdate_range("2021-03-01", periods=5)
    wproxy = np.array([100.0, 95.0, 90.0, 92.0, 88.0])
    lake.merge("equity_bars", pd.concat([
        _bars("^GSPC", days, proxy), _bars("CCC", days[:150], ccc[:150]), _bars("^GSPC", window, wproxy),
    ]))
    cfg = StressConfig(as_of=dt.date(2021, 6, 1), vol_index=None, coverage_days=0, windows=(StressWindow(
        name="w", start=window[0].date(), end=window[-1].date()),))
    book = [Position(symbol="CCC", qty=100, price=10.0), Position(symbol="DDD", qty=10, price=10.0)]
    row = historical_detail(book, lake, cfg, equity=10_000).table.iloc[0]
    fall = 88 / 100 - 1
    assert row.pnl == pytest.approx(100 * 10 * 2 * fall + 10 * 10 * fall, rel=1e-6)
    assert "CCC: proxy ^GSPC × beta 2.00 over 149 daily returns" in row.data
    assert "DDD: proxy ^GSPC × beta 1: too little history" in row.data


def test_greeks_ladder_by_hand() -> None:
    """Short 1 put (100 strike, 30 days) and long 100 shares: 1-day P&L by full revaluation, the Greeks'
    Taylor estimate, and the expiry payoff."""
    expiry = AS_OF + dt.timedelta(days=30)
    book = [Position(symbol="^XYZ", right="P", strike=100, expiry=expiry, qty=-1, price=2.0, underlying_price=100,
                     iv=0.25), Position(symbol="^XYZ", qty=100, price=100.0)]
    cfg = StressConfig(as_of=AS_OF, rate=0.01)
    ladder = greeks_ladder(book, cfg)
    assert list(ladder.index) == pytest.approx([-0.3, -0.25, -0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2,
                                                0.25, 0.3])
    now = ql_european("P", 100, 100, AS_OF, expiry, 0.01, 0.0, 0.25)
    tomorrow = AS_OF + dt.timedelta(days=1)
    for m, row in ladder.iterrows():
        s = 100 * (1 + m)
        one_day = -100 * (ql_european("P", s, 100, tomorrow, expiry, 0.01, 0.0, 0.25) - now) + 100 * (s - 100)
        assert row.pnl_1d == pytest.approx(one_day, rel=1e-9, abs=1e-9)
        at_expiry = -100 * (max(100 - s, 0.0) - now) + 100 * (s - 100)
        assert row.pnl_expiry == pytest.approx(at_expiry, rel=1e-9, abs=1e-9)
        assert row.difference_1d == pytest.approx(row.pnl_1d - row.greeks_1d)
    assert abs(ladder.loc[0.0, "difference_1d"]) < 0.05 * abs(ladder.loc[0.0, "pnl_1d"]) + 1  # theta ≈ exact
    assert ladder.loc[-0.3, "difference_1d"] > 100  # a 30 % fall: the short put's gamma misses a lot
