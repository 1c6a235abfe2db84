"""Stress tests: full repricing against a Black-Scholes formula written here (scipy), Greeks approximation
against closed-form Greeks, historical replay against hand-computed paths in a small lake."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from quantlake.errors import ConfigError
from risk.book import Position
from risk.errors import InsufficientDataError, PricingInputError
from risk.stress import StressConfig, StressWindow, historical, hypothetical, render, stress_report

AS_OF = dt.date(2025, 1, 17)
EXPIRY = dt.date(2025, 4, 17)  # 90 days
T = 90 / 365


def bs(right: str, s: float, k: float, t: float, r: float, q: float, vol: float) -> float:
    d1 = (math.log(s / k) + (r - q + vol * vol / 2) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if right == "C":
        return s * math.exp(-q * t) * norm.cdf(d1) - k * math.exp(-r * t) * norm.cdf(d2)
    return k * math.exp(-r * t) * norm.cdf(-d2) - s * math.exp(-q * t) * norm.cdf(-d1)


def bs_greeks(right: str, s: float, k: float, t: float, r: float, q: float, vol: float) -> tuple[float, ...]:
    d1 = (math.log(s / k) + (r - q + vol * vol / 2) * t) / (vol * math.sqrt(t))
    delta = math.exp(-q * t) * (norm.cdf(d1) if right == "C" else norm.cdf(d1) - 1)
    gamma = math.exp(-q * t) * norm.pdf(d1) / (s * vol * math.sqrt(t))
    vega = s * math.exp(-q * t) * norm.pdf(d1) * math.sqrt(t)
    return delta, gamma, vega


def test_stock_only_book_moves_linearly() -> None:
    book = [Position(symbol="AAA", qty=100, price=50.0), Position(symbol="BBB", qty=-20, price=200.0)]
    cfg = StressConfig(spot_shocks=(-0.1, 0.05), vol_shocks=(0.0, 0.1), as_of=AS_OF)
    t = hypothetical(book, cfg, equity=10_000)
    # net notional 5,000 − 4,000 = 1,000; vol shocks do nothing without options (one row per spot shock)
    assert list(t["spot_shock"]) == [-0.1, 0.05]
    np.testing.assert_allclose(t["pnl"], [-100.0, 50.0])
    np.testing.assert_allclose(t["greeks_pnl"], [-100.0, 50.0])
    np.testing.assert_allclose(t["pnl_pct"], [-0.01, 0.005])


def test_options_fully_repriced_and_greeks_beside() -> None:
    r, q = 0.03, 0.01
    call = Position(
        symbol="SPY", right="C", strike=105, expiry=EXPIRY, qty=2, price=1.0, underlying_price=100, iv=0.2
    )
    short_put = Position(symbol="SPY", right="P", strike=95, expiry=EXPIRY, qty=-3, price=1.0, underlying_price=100,
                         iv=0.25)  # fmt: skip
    cfg = StressConfig(
        spot_shocks=(-0.2, -0.005, 0.1), vol_shocks=(0.0, 0.05), rate=r, dividend_yield=q, as_of=AS_OF,
        exercise="european",
    )
    t = hypothetical([call, short_put], cfg)
    assert len(t) == 6
    for row in t.itertuples():
        m, dv = row.spot_shock, row.vol_shock
        full = 200 * (bs("C", 100 * (1 + m), 105, T, r, q, 0.2 + dv) - bs("C", 100, 105, T, r, q, 0.2))
        full -= 300 * (bs("P", 100 * (1 + m), 95, T, r, q, 0.25 + dv) - bs("P", 100, 95, T, r, q, 0.25))
        assert row.pnl == pytest.approx(full, rel=1e-9, abs=1e-9)
        ds = 100 * m
        approx = 0.0
        for units, right, k, vol in ((200, "C", 105, 0.2), (-300, "P", 95, 0.25)):
            d, g, v = bs_greeks(right, 100, k, T, r, q, vol)
            approx += units * (d * ds + 0.5 * g * ds * ds + v * dv)
        assert row.greeks_pnl == pytest.approx(approx, rel=1e-9)
    small = t[(t.spot_shock == -0.005) & (t.vol_shock == 0)].iloc[0]
    big = t[(t.spot_shock == -0.2) & (t.vol_shock == 0)].iloc[0]
    assert abs(small.pnl - small.greeks_pnl) < 0.01 * abs(small.pnl)  # Taylor is good for small moves
    assert abs(big.pnl - big.greeks_pnl) > 0.05 * abs(big.pnl)  # ... and misses convexity for big ones


def test_volatility_implied_from_price_when_iv_missing() -> None:
    price = bs("P", 100, 100, T, 0.0, 0.0, 0.3)
    with_iv = Position(symbol="SPY", right="P", strike=100, expiry=EXPIRY, qty=1, price=price, underlying_price=100,
                       iv=0.3)  # fmt: skip
    no_iv = with_iv.model_copy(update={"iv": None})
    cfg = StressConfig(as_of=AS_OF, exercise="european")
    np.testing.assert_allclose(
        hypothetical([no_iv], cfg)["pnl"], hypothetical([with_iv], cfg)["pnl"], rtol=1e-8
    )
    below_intrinsic = no_iv.model_copy(update={"price": 0.5, "strike": 120.0})
    with pytest.raises(PricingInputError, match="120P"):
        hypothetical([below_intrinsic], cfg)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="spot_shocks"):
        StressConfig(spot_shocks=(-1.5,))
    with pytest.raises(ConfigError, match="end must be after start"):
        StressWindow(name="x", start=dt.date(2020, 3, 1), end=dt.date(2020, 2, 1))
    with pytest.raises(ConfigError, match="proxy"):
        StressConfig(proxy="not a symbol")


def _bars(symbol: str, dates: list[str], closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "date": pd.to_datetime(dates).date, "close": closes, "adj_close": closes,
                         "source": "test"})  # fmt: skip


def test_historical_replay_by_hand(lake) -> None:  # type: ignore[no-untyped-def]
    days = ["2021-03-01", "2021-03-02", "2021-03-03", "2021-03-04"]
    lake.merge("equity_bars", pd.concat([
        _bars("AAA", days, [50.0, 45.0, 40.0, 44.0]),
        _bars("^GSPC", days, [4000.0, 3800.0, 3600.0, 3700.0]),
        _bars("^VIX", days, [20.0, 30.0, 40.0, 35.0]),
        _bars("ZZZ", ["2021-03-03", "2021-03-04"], [10.0, 5.0]),  # listed mid-window: uses the proxy
    ]))  # fmt: skip
    window = StressWindow(name="test", start=dt.date(2021, 3, 1), end=dt.date(2021, 3, 4))
    cfg = StressConfig(windows=(window,), as_of=AS_OF, coverage_days=0, exercise="european")
    book = [
        Position(symbol="AAA", qty=100, price=50.0),
        Position(symbol="BBB", qty=10, price=200.0),  # no data at all: the proxy
        Position(symbol="ZZZ", qty=10, price=7.0),
        Position(
            symbol="AAA", right="P", strike=50, expiry=EXPIRY, qty=1, price=1.0, underlying_price=50.0, iv=0.3
        ),
    ]
    t = historical(book, lake, cfg, equity=50_000)
    assert len(t) == 1
    row = t.iloc[0]

    def pnl(aaa: float, gspc: float, vix_pts: float) -> float:
        stock = 100 * 50 * (aaa / 50 - 1) + 10 * 200 * (gspc / 4000 - 1) + 10 * 7 * (gspc / 4000 - 1)
        put = 100 * (bs("P", aaa, 50, T, 0, 0, 0.3 + vix_pts / 100) - bs("P", 50, 50, T, 0, 0, 0.3))
        return stock + put

    path = [pnl(50, 4000, 0), pnl(45, 3800, 10), pnl(40, 3600, 20), pnl(44, 3700, 15)]
    assert row.pnl == pytest.approx(path[-1], rel=1e-9)
    assert row.worst_pnl == pytest.approx(min(path), rel=1e-9)
    assert row.worst_date == pd.Timestamp("2021-03-03")
    assert row.pnl_pct == pytest.approx(path[-1] / 50_000)
    assert row.spot_shock == pytest.approx(3700 / 4000 - 1) and row.vol_shock == pytest.approx(0.15)
    assert "BBB: proxy ^GSPC" in row.data and "ZZZ: proxy ^GSPC" in row.data and "AAA: own" in row.data

    no_proxy = cfg.model_copy(update={"proxy": "^RUT"})
    with pytest.raises(InsufficientDataError, match="RUT"):
        historical(book, lake, no_proxy)


def test_default_windows_on_sample_data(sample_lake) -> None:  # type: ignore[no-untyped-def]
    book = [Position(symbol="SPY", qty=100, price=100.0), Position(symbol="MSFT", qty=10, price=100.0)]
    t = stress_report(book, sample_lake, StressConfig(as_of=AS_OF), equity=100_000)
    assert list(t["kind"]) == ["historical"] * 4 + ["hypothetical"] * 5
    first = sample_lake.query(
        "SELECT symbol, arg_min(coalesce(adj_close, close), date) AS a, arg_max(coalesce(adj_close, close), date) AS b "
        "FROM equity_bars "
        "WHERE symbol IN ('SPY', '^GSPC') AND date BETWEEN DATE '2008-09-01' AND DATE '2008-11-20' GROUP BY 1"
    ).set_index("symbol")
    spy = first.loc["SPY", "b"] / first.loc["SPY", "a"] - 1
    gspc = first.loc["^GSPC", "b"] / first.loc["^GSPC", "a"] - 1
    # MSFT's sample closes are 2010-2018: over autumn 2008 it moves by its beta to ^GSPC, estimated here on
    # the last 252 daily returns both have (up to AS_OF)
    closes = sample_lake.query(
        "SELECT date, symbol, coalesce(adj_close, close) AS px FROM equity_bars WHERE symbol IN ('MSFT', '^GSPC')"
    ).pivot(index="date", columns="symbol", values="px").sort_index()
    rets = closes.pct_change(fill_method=None).dropna().tail(252)
    beta = np.cov(rets["MSFT"], rets["^GSPC"], ddof=1)[0, 1] / rets["^GSPC"].var(ddof=1)
    autumn = t.iloc[0]
    assert autumn.scenario == "autumn 2008"
    assert autumn.pnl == pytest.approx(100 * 100 * spy + 10 * 100 * beta * gspc, rel=1e-9)
    assert "SPY: own" in autumn.data and f"MSFT: proxy ^GSPC × beta {beta:.2f} over 252 daily returns" in autumn.data
    assert -0.5 < spy < -0.3  # the autumn 2008 crash
    assert t.iloc[1].scenario == "Feb 2018 vol spike"
    march = t.iloc[2]  # no SPY sample data in 2020: both follow ^GSPC by their betas
    assert march.scenario == "March 2020"
    assert "SPY: proxy ^GSPC × beta" in march.data and march.pnl < -0.25 * 11_000
    rendered = render(t)
    assert rendered.row_count == len(t)
    assert "data for autumn 2008: " in str(rendered.caption) and "SPY: own" in str(rendered.caption)
    assert "data" not in [c.header for c in rendered.columns]  # sources go below the table, not in a column
