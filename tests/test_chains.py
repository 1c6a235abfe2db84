"""Modeled option chains, the expiry calendar, the vol surface and the observed/modeled provider."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import QuantLib as ql

from features.calendar import is_trading_day, listed_expiries, monthly_expiry, nyse_holidays, third_friday
from features.chains import (
    CHAIN_COLUMNS,
    ChainModelConfig,
    ChainProvider,
    RateCurve,
    SkewParams,
    bey_to_continuous,
    model_chain,
)
from features.pricing import bs_greeks, bs_price, implied_vol
from features.vol_surface import SSVISurface
from quantlake.errors import ConfigError, InvalidSymbolError, UserInputError
from quantlake.tables import OPTION_QUOTES

D = dt.date


# ----------------------------------------------------------------------------------------------- calendar
def test_third_friday_monthly_expiries_known_dates() -> None:
    # standard monthly expirations (CBOE): April 2018, March 2020, December 2021
    assert third_friday(2018, 4) == D(2018, 4, 20) == monthly_expiry(2018, 4)
    assert third_friday(2020, 3) == D(2020, 3, 20) == monthly_expiry(2020, 3)
    assert third_friday(2021, 12) == D(2021, 12, 17) == monthly_expiry(2021, 12)
    # Good Friday on the third Friday: options expired on Thursday 2019-04-18 and 2022-04-14
    assert monthly_expiry(2019, 4) == D(2019, 4, 18)
    assert monthly_expiry(2022, 4) == D(2022, 4, 14)
    assert all(third_friday(y, m).weekday() == 4 and 15 <= third_friday(y, m).day <= 21
               for y in range(2000, 2031) for m in range(1, 13))  # fmt: skip


def test_nyse_holidays_2018_and_2022() -> None:
    # NYSE's published holidays, with 2018-12-05 (the national day of mourning for President Bush)
    assert nyse_holidays(D(2018, 1, 1), D(2018, 12, 31)) == [
        D(2018, 1, 1), D(2018, 1, 15), D(2018, 2, 19), D(2018, 3, 30), D(2018, 5, 28), D(2018, 7, 4),
        D(2018, 9, 3), D(2018, 11, 22), D(2018, 12, 5), D(2018, 12, 25),
    ]  # fmt: skip
    # 2022: New Year's Day on a Saturday is not observed; Juneteenth observed on Monday 20 June
    assert nyse_holidays(D(2022, 1, 1), D(2022, 12, 31)) == [
        D(2022, 1, 17), D(2022, 2, 21), D(2022, 4, 15), D(2022, 5, 30), D(2022, 6, 20), D(2022, 7, 4),
        D(2022, 9, 5), D(2022, 11, 24), D(2022, 12, 26),
    ]  # fmt: skip
    assert not is_trading_day(D(2018, 3, 30)) and is_trading_day(D(2018, 4, 27))


def test_listed_expiries_weeklies_and_monthlies() -> None:
    exp = listed_expiries(D(2018, 4, 27), weeklies=4, months=3)  # a Friday: its own expiry is not listed
    assert list(exp["expiry"]) == [D(2018, 5, 4), D(2018, 5, 11), D(2018, 5, 18), D(2018, 5, 25),
                                   D(2018, 6, 15), D(2018, 7, 20)]  # fmt: skip
    assert list(exp["kind"]) == ["weekly", "weekly", "monthly", "weekly", "monthly", "monthly"]
    # the week of Good Friday 2019 expires on Thursday
    assert D(2019, 4, 18) in set(listed_expiries(D(2019, 4, 15), weeklies=2, months=1)["expiry"])


# ----------------------------------------------------------------------------------------------- surface
def test_surface_atm_term_structure_and_skew() -> None:
    s = SSVISurface(atm_ref=0.15, long_run=0.22, kappa=2.0, rho=-0.7, eta=1.0, gamma=0.5)
    assert float(s.atm_vol(30 / 365)) == pytest.approx(0.15, rel=1e-12)  # calibrated at the VIX horizon
    assert float(s.atm_vol(30.0)) == pytest.approx(0.22, abs=0.005)  # reverts to the long-run level
    T = np.array([7, 30, 91, 365, 730]) / 365
    assert np.all(np.diff(s.atm_variance(T) * T) > 0)  # ATM total variance increases
    # closed-form ATM skew of SSVI: dsigma/dk = rho * phi(theta) * sigma_atm / 2
    for t in T:
        theta = float(s.atm_variance(t)) * t
        phi = 1.0 / (theta**0.5 * (1 + theta) ** 0.5)
        h = 1e-5
        fd = float(s.implied_vol(h, t) - s.implied_vol(-h, t)) / (2 * h)
        assert fd == pytest.approx(-0.7 * phi * float(s.atm_vol(t)) / 2, rel=1e-6)
    # no calendar arbitrage: total variance increases with T at every log-moneyness
    k = np.linspace(-0.6, 0.4, 41)[:, None]
    w = s.total_variance(k, np.linspace(1 / 365, 2, 60)[None, :])
    assert np.all(np.diff(w, axis=1) > 0)


def test_surface_rejects_arbitrage_parameters() -> None:
    with pytest.raises(ConfigError, match="eta"):
        SSVISurface(0.2, 0.2, rho=-0.9, eta=1.5)
    with pytest.raises(ConfigError, match="atm_ref"):
        SSVISurface(-0.1, 0.2)
    with pytest.raises(ConfigError, match=r"skew\.eta|eta"):
        ChainModelConfig.build(index_skew={"rho": -0.9, "eta": 1.5})
    with pytest.raises(ConfigError, match="weeklies"):
        ChainModelConfig.build(weeklies=-1)
    assert SkewParams(rho=-0.5, eta=1.2).eta == 1.2


# ----------------------------------------------------------------------------------------------- model_chain
@pytest.fixture(scope="module")
def spy_chain() -> pd.DataFrame:
    curve = RateCurve((2.0, 10.0), (0.02, 0.025))
    return model_chain("SPY", D(2017, 6, 1), 241.76, 0.09, curve, 0.018, long_run_vol=0.14)


def test_model_chain_columns_and_tags(spy_chain: pd.DataFrame) -> None:
    c = spy_chain
    assert list(c.columns) == CHAIN_COLUMNS
    assert list(c.columns[: len(OPTION_QUOTES.schema.names)]) == OPTION_QUOTES.schema.names
    assert (c["source"] == "modeled").all()
    assert not c.duplicated(["expiry", "strike", "right"]).any()
    assert set(c["right"]) == {"C", "P"}
    assert c["expiry"].nunique() == 4 + 12 - 1  # 4 weeklies (one is June's monthly) and 12 monthlies
    # SPY trades near 242: $1 strikes around the money
    near = c[(c["expiry"] == c["expiry"].min()) & (c["strike"].between(235, 250))]["strike"].unique()
    assert np.all(np.diff(np.sort(near)) == 1.0)
    assert c["contract"].iloc[0].startswith("SPY170602C")


def test_model_chain_mid_is_black_scholes_at_model_iv(spy_chain: pd.DataFrame) -> None:
    c = spy_chain
    T = np.array([(e - D(2017, 6, 1)).days for e in c["expiry"]]) / 365
    np.testing.assert_allclose(
        c["mid"], bs_price(c["right"], 241.76, c["strike"], T, c["rate"], 0.018, c["model_iv"]), rtol=1e-14
    )
    # independently with QuantLib for a handful of rows
    today = ql.Date(1, 6, 2017)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    for i in np.linspace(0, len(c) - 1, 12).astype(int):
        row = c.iloc[i]
        e = row["expiry"]
        proc = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(241.76)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, 0.018, dc)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, float(row["rate"]), dc)),
            ql.BlackVolTermStructureHandle(
                ql.BlackConstantVol(today, ql.NullCalendar(), float(row["iv"]), dc)
            ),
        )
        opt = ql.VanillaOption(
            ql.PlainVanillaPayoff(
                ql.Option.Call if row["right"] == "C" else ql.Option.Put, float(row["strike"])
            ),
            ql.EuropeanExercise(ql.Date(e.day, e.month, e.year)),
        )
        opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
        assert row["mid"] == pytest.approx(opt.NPV(), rel=1e-11, abs=1e-12)
    # and the model vol is what the price implies wherever the price carries vol information.  The BS
    # price itself is only exact to a few ulps of S (~3e-14 here), so the vol is recoverable to about
    # 3e-14 / vega: 1e-9 needs vega >= 1e-4.  Below that (1-day deep in-the-money options, vega down to
    # 1e-14) implied_vol returns a vol that reprices the mid exactly, or NaN, never something else.
    iv = implied_vol(c["mid"], c["right"], 241.76, c["strike"], T, c["rate"], 0.018)
    vega = np.asarray(bs_greeks(c["right"], 241.76, c["strike"], T, c["rate"], 0.018, c["model_iv"])["vega"])
    informative = vega >= 1e-4
    assert informative.mean() > 0.99
    np.testing.assert_allclose(iv[informative], c["model_iv"][informative], rtol=0, atol=1e-9)
    assert np.isnan(iv).sum() <= 3 and np.all(vega[np.isnan(iv)] < 1e-6)
    ok = ~np.isnan(iv)
    repriced = bs_price(c["right"][ok], 241.76, c["strike"][ok], T[ok], c["rate"][ok], 0.018, iv[ok])
    np.testing.assert_allclose(repriced, c["mid"][ok], rtol=0, atol=1e-12)


def test_model_chain_put_call_parity(spy_chain: pd.DataFrame) -> None:
    c = spy_chain
    calls = c[c["right"] == "C"].set_index(["expiry", "strike"])
    puts = c[c["right"] == "P"].set_index(["expiry", "strike"])
    assert calls.index.equals(puts.index)
    T = np.array([(e - D(2017, 6, 1)).days for e, _ in calls.index]) / 365
    K = calls.index.get_level_values("strike").to_numpy()
    forward_value = 241.76 * np.exp(-0.018 * T) - K * np.exp(-calls["rate"].to_numpy() * T)
    np.testing.assert_allclose(calls["mid"].to_numpy() - puts["mid"].to_numpy(), forward_value, atol=1e-10)
    # rates follow the curve: 2y rate (flat) for every listed expiry here (< 2 years)
    assert np.allclose(c["rate"], 0.02)


def test_model_chain_quotes_bracket_mid_on_ticks(spy_chain: pd.DataFrame) -> None:
    c = spy_chain
    bid, ask, mid = c["bid"].to_numpy(), c["ask"].to_numpy(), c["mid"].to_numpy()
    assert np.all(bid >= 0) and np.all(bid <= mid) and np.all(mid <= ask) and np.all(ask > bid)
    tick = np.where(mid < 3.0, 0.01, 0.05)
    assert np.allclose(np.round(bid / tick), bid / tick, atol=1e-6)
    assert np.allclose(np.round(ask / tick), ask / tick, atol=1e-6)
    # the spread is at least max(tick, 1 vol point of vega + 2 % of mid), and no more than 2 ticks wider
    from features.pricing import bs_greeks

    T = np.array([(e - D(2017, 6, 1)).days for e in c["expiry"]]) / 365
    vega = bs_greeks(c["right"], 241.76, c["strike"], T, c["rate"], 0.018, c["model_iv"])["vega"]
    model = np.maximum(tick, 0.01 * vega + 0.02 * mid)
    assert np.all(ask - bid >= model - 1e-9) and np.all(ask - bid <= model + 2 * tick + 1e-9)
    # an ATM 1-month SPY option: 1 vol point of vega is ~0.27, 2% of ~2.5 is 0.05 -> ~0.3 wide
    atm = c[(c["expiry"] == D(2017, 6, 16)) & (c["strike"] == 242) & (c["right"] == "C")].iloc[0]
    assert 0.2 < atm["ask"] - atm["bid"] < 0.4


def test_model_chain_no_butterfly_arbitrage(spy_chain: pd.DataFrame) -> None:
    for _, g in spy_chain[spy_chain["right"] == "C"].groupby("expiry"):
        g = g.sort_values("strike")
        k, v = g["strike"].to_numpy(), g["mid"].to_numpy()
        slope = np.diff(v) / np.diff(k)
        assert np.all(slope <= 1e-12)  # call prices fall with the strike
        assert np.all(np.diff(slope) >= -1e-9)  # and are convex in it


def test_strike_spacing_by_price_level() -> None:
    def spacing(spot: float) -> float:
        c = model_chain("X", D(2017, 6, 1), spot, 0.2, 0.01, 0.0, config=ChainModelConfig(max_strikes=5000))
        first = c[c["expiry"] == c["expiry"].min()]["strike"].to_numpy()
        return float(np.min(np.diff(np.unique(first))))

    assert spacing(12.0) == 0.5
    assert spacing(150.0) == 1.0
    assert spacing(400.0) == 1.0
    assert spacing(700.0) == 5.0
    assert spacing(2400.0) == 5.0
    assert spacing(12500.0) == 50.0
    # the cap coarsens the grid instead of listing thousands of strikes
    c = model_chain("^GSPC", D(2017, 6, 1), 2400.0, 0.3, 0.01, 0.0, config=ChainModelConfig(max_strikes=60))
    assert c.groupby(["expiry", "right"]).size().max() <= 60


def test_model_chain_rejects_bad_inputs() -> None:
    with pytest.raises(UserInputError, match="spot"):
        model_chain("SPY", D(2017, 6, 1), -1.0, 0.2, 0.01, 0.0)
    with pytest.raises(UserInputError, match="atm_vol"):
        model_chain("SPY", D(2017, 6, 1), 100.0, float("nan"), 0.01, 0.0)


# ----------------------------------------------------------------------------------------------- provider
def _bars(symbol: str, closes: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "date": [d.date() for d in closes.index], "close": closes.to_numpy(),
                         "source": "test"})  # fmt: skip


def _world(end: str = "2018-06-29") -> dict[str, pd.DataFrame]:
    """A small lake: SPY and AAPL random walks, ^VIX, ^GDAXI closes, DGS2/DGS10 and a DAX chain on 2018-04-27."""
    days = pd.bdate_range("2017-01-02", end)
    rng = np.random.default_rng(7)
    spy = pd.Series(240 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days)))), index=days)
    aapl = pd.Series(120 * np.exp(np.cumsum(rng.normal(0, 0.02, len(days)))), index=days)
    vix = pd.Series(np.clip(13 + np.cumsum(rng.normal(0, 0.5, len(days))), 9, 40), index=days)
    dax = pd.Series(12500 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days)))), index=days)
    bars = pd.concat([_bars("SPY", spy), _bars("AAPL", aapl), _bars("^VIX", vix), _bars("^GDAXI", dax)])
    macro = pd.concat([
        pd.DataFrame({"series_id": s, "date": [d.date() for d in days], "realtime_start": [d.date() for d in days],
                      "value": v + 0.001 * np.arange(len(days)), "source": "test"})
        for s, v in (("DGS2", 1.5), ("DGS10", 2.5))
    ])  # fmt: skip
    quotes = pd.DataFrame({
        "quote_date": D(2018, 4, 27), "underlying": "^GDAXI", "root": "^GDAXI", "expiry": D(2018, 7, 20),
        "strike": [12000.0, 12000.0, 13000.0, 13000.0], "right": ["C", "P", "C", "P"],
        "last": [820.0, 300.0, 140.0, 610.0], "vendor_iv": [0.16, 0.17, np.nan, 0.14],
        "underlying_price": 12500.47, "contract": ["a", "b", "c", "d"], "source": "sample",
    })  # fmt: skip
    return {"equity_bars": bars, "macro_series": macro, "option_quotes": quotes}


def _fill(lake, world: dict[str, pd.DataFrame]) -> None:  # type: ignore[no-untyped-def]
    for name, frame in world.items():
        lake.merge(name, frame)


def test_observed_else_modeled(lake) -> None:  # type: ignore[no-untyped-def]
    world = _world()
    _fill(lake, world)
    cp = ChainProvider(lake)
    obs = cp.chain("^GDAXI", D(2018, 4, 27))  # the DAX date: observed quotes win
    assert len(obs) == 4 and (obs["source"] == "sample").all()
    assert list(obs.columns) == CHAIN_COLUMNS
    np.testing.assert_allclose(obs["mid"], [820.0, 300.0, 140.0, 610.0])  # no bid/ask: the last price
    assert obs["iv"].iloc[0] == 0.16
    assert 0.05 < obs["iv"].iloc[2] < 0.5  # no vendor IV: implied from the price
    later = cp.chain("^GDAXI", D(2018, 4, 30))  # no quotes: modeled from the ^GDAXI close
    assert len(later) > 100 and (later["source"] == "modeled").all()
    assert cp.chain("^GDAXI", "2018-04-30", mode="observed").empty
    assert list(cp.chain("^GDAXI", "2018-04-30", mode="observed").columns) == CHAIN_COLUMNS
    forced = cp.chain("^GDAXI", D(2018, 4, 27), mode="modeled")
    assert (forced["source"] == "modeled").all()
    assert cp.chain("SPY", D(2018, 4, 27))["source"].eq("modeled").all()
    assert cp.chain("SPY", D(2018, 4, 28)).empty  # a Saturday: no close, no chain
    with pytest.raises(UserInputError, match="mode"):
        cp.chain("SPY", D(2018, 4, 27), mode="both")
    with pytest.raises(InvalidSymbolError):
        cp.chain("MSFT", D(2018, 4, 27))


def test_market_state_inputs_by_hand(lake) -> None:  # type: ignore[no-untyped-def]
    world = _world()
    _fill(lake, world)
    cp = ChainProvider(lake)
    day = D(2018, 3, 15)
    bars = world["equity_bars"]
    # SPY: ATM from the VIX close that day, 0.9 * VIX / 100; long-run the last year's mean of that proxy
    s = cp.market_state("SPY", day)
    assert s is not None
    vix = bars[(bars["symbol"] == "^VIX") & (bars["date"] <= day)]["close"].to_numpy()
    assert s.atm_vol == pytest.approx(0.9 * vix[-1] / 100)
    assert s.long_run_vol == pytest.approx(0.9 * vix[-252:].mean() / 100)
    assert s.vol_source == "^VIX" and s.dividend_yield == 0.018
    # rates: the day's DGS2/DGS10 (percent, semiannual) as continuous decimals
    macro = world["macro_series"]
    y2 = macro[(macro["series_id"] == "DGS2") & (macro["date"] == day)]["value"].iloc[0]
    assert float(s.rates(0.5)) == pytest.approx(2 * math.log(1 + y2 / 200), rel=1e-12)
    assert float(bey_to_continuous(2.0)) == pytest.approx(0.0199007, abs=1e-7)
    # AAPL: 1.1 x (0.5 x 20-day + 0.5 x 60-day realized vol), written out
    a = cp.market_state("AAPL", day)
    assert a is not None
    closes = bars[(bars["symbol"] == "AAPL") & (bars["date"] <= day)]["close"].to_numpy()
    r = np.log(closes[1:] / closes[:-1])
    rv20 = np.sqrt(((r[-20:] - r[-20:].mean()) ** 2).sum() / 19 * 252)
    rv60 = np.sqrt(((r[-60:] - r[-60:].mean()) ** 2).sum() / 59 * 252)
    assert a.atm_vol == pytest.approx(1.1 * (0.5 * rv20 + 0.5 * rv60), rel=1e-12)
    assert a.vol_source == "realized" and a.dividend_yield == 0.0


def test_rates_default_and_vintages(lake) -> None:  # type: ignore[no-untyped-def]
    world = _world()
    world.pop("macro_series")
    _fill(lake, world)
    state = ChainProvider(lake, ChainModelConfig(default_rate=0.031)).market_state("SPY", D(2018, 3, 15))
    assert state is not None and state.rate_source == "default" and float(state.rates(1.0)) == 0.031
    # a value for the day that became known only later (realtime_start after the day) is not used
    lake.merge("macro_series", pd.DataFrame({
        "series_id": ["DGS2", "DGS2"], "date": [D(2018, 3, 14), D(2018, 3, 15)],
        "realtime_start": [D(2018, 3, 14), D(2018, 3, 20)], "value": [1.0, 9.0], "source": "test",
    }))  # fmt: skip
    s = ChainProvider(lake).market_state("SPY", D(2018, 3, 15))
    assert s is not None and float(s.rates(1.0)) == pytest.approx(2 * math.log(1 + 1.0 / 200))


def test_no_look_ahead_truncated_future(lake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A chain on day d is identical whether or not the lake holds anything after d; the future is made
    wildly different (VIX 80, SPY halved, rates 9 %) so that any leak would show."""
    from quantlake.lake import Lake

    cut = D(2018, 3, 15)
    world = _world()
    _fill(lake, world)
    shock = {k: v.copy() for k, v in world.items()}
    eb, ms = shock["equity_bars"], shock["macro_series"]
    eb.loc[(eb["symbol"] == "^VIX") & (eb["date"] > cut), "close"] = 80.0
    eb.loc[(eb["symbol"] == "SPY") & (eb["date"] > cut), "close"] *= 0.5
    ms.loc[ms["date"] > cut, "value"] = 9.0
    shocked = Lake(tmp_path / "shocked")
    _fill(shocked, shock)
    truncated = Lake(tmp_path / "truncated")
    _fill(truncated, {
        "equity_bars": world["equity_bars"][world["equity_bars"]["date"] <= cut],
        "macro_series": world["macro_series"][world["macro_series"]["date"] <= cut],
        "option_quotes": world["option_quotes"][world["option_quotes"]["quote_date"] <= cut],
    })  # fmt: skip
    for sym in ("SPY", "AAPL", "^GDAXI"):
        for day in (D(2018, 1, 2), D(2018, 3, 14), cut):
            ref = ChainProvider(truncated).chain(sym, day)
            assert len(ref) > 0
            pd.testing.assert_frame_equal(ChainProvider(lake).chain(sym, day), ref)
            pd.testing.assert_frame_equal(ChainProvider(shocked).chain(sym, day), ref)
    # ...and the shocked future does change the chain after the cut
    after = D(2018, 3, 16)
    assert (
        not ChainProvider(shocked)
        .chain("SPY", after)["mid"]
        .equals(ChainProvider(lake).chain("SPY", after)["mid"])
    )


def test_sample_lake_dax_observed_spy_modeled(sample_lake) -> None:  # type: ignore[no-untyped-def]
    cp = ChainProvider(sample_lake)
    dax = cp.chain("^GDAXI", D(2018, 4, 27))
    assert len(dax) == 85 and not (dax["source"] == "modeled").any()
    assert set(dax["expiry"]) == {D(2018, 7, 20)}
    assert dax["vendor_iv"].between(0.05, 0.6).all() and (dax["iv"] == dax["vendor_iv"]).all()
    spy = cp.chain("SPY", D(2017, 6, 1))  # no observed US chains in the sample: modeled, ATM from ^VIX
    assert (spy["source"] == "modeled").all()
    state = cp.market_state("SPY", D(2017, 6, 1))
    assert state is not None and state.vol_source == "^VIX" and state.rate_source == "DGS2/DGS10"
    assert 0.05 < state.atm_vol < 0.15  # VIX was near 10 in June 2017
    near = spy[(spy["expiry"] == D(2017, 6, 16)) & (spy["right"] == "C")]
    atm_iv = near.iloc[(near["strike"] - state.spot).abs().argmin()]["model_iv"]
    assert atm_iv == pytest.approx(state.atm_vol, abs=0.01)
