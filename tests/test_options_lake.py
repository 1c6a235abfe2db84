"""Backtests on the sample lake through ``features.chains.ChainProvider`` (the production chain source):

* a put-write on ^GSPC's modeled chains fills at the bid of the row the chain itself lists (looked up here
  directly from the provider), at the strike at or below the close, on the next monthly expiry;
* observed quotes are used when the lake has them and every leg-day is counted observed or modeled
  (^GDAXI's real option snapshot, with a few written-in ^GDAXI bars to trade against);
* strategies that read the regime fail with a clear error when ``features_regime`` is missing, and route on
  it when it is there (a small features_regime table written here).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from backtests.options.config import parse_config
from backtests.options.contracts import Contract, third_friday
from backtests.options.errors import MarketDataError
from backtests.options.orders import OptionOrder, OrderLeg
from backtests.options.runner import run_backtest
from backtests.options.strategies.scripted import ScriptedStrategy
from features.pricing import bs_price

D = dt.date
NO_FEES = {"per_contract": 0.0, "per_share": 0.0}


def test_put_write_on_modeled_gspc_chains_fills_at_the_chain_bid(sample_lake) -> None:  # type: ignore[no-untyped-def]
    from features.chains import ChainProvider

    cfg = parse_config({"name": "pw", "underlying": "^GSPC", "start": "2016-01-01", "end": "2016-04-30",
                        "strategy": {"kind": "put_write"}, "commissions": NO_FEES})
    res = run_backtest(cfg, sample_lake)
    opens = res.fills[res.fills["action"] == "open"]
    assert list(opens["date"]) == [D(2016, 1, 15), D(2016, 2, 19), D(2016, 3, 18), D(2016, 4, 15)]
    closes = sample_lake.read("equity_bars", columns=["date", "close"], where="symbol = '^GSPC'")
    close = dict(zip(pd.to_datetime(closes["date"]).dt.date, closes["close"], strict=True))
    provider = ChainProvider(sample_lake)
    for f in opens.itertuples():
        chain = provider.chain("^GSPC", f.date)
        nxt = third_friday(f.date.year + (f.date.month == 12), f.date.month % 12 + 1)
        puts = chain[(chain["right"] == "P") & (chain["expiry"] == nxt)]
        strike = puts["strike"][puts["strike"] <= close[f.date]].max()  # CBOE PUT: at or just below
        row = puts[puts["strike"] == strike].iloc[0]
        assert (f.expiry, f.strike) == (nxt, strike)
        # fully cash-secured: as many puts as the equity covers at 100 x strike each
        equity = res.daily.loc[f.date, "equity"]
        assert -f.qty * 100 * strike <= equity < (1 - f.qty) * 100 * strike
        assert f.price == row["bid"] and f.source == "modeled"  # a market sale gets the bid
        assert f.iv == pytest.approx(row["iv"], rel=1e-12)
    # one modeled leg held at every close from the first write on
    held_days = int((res.daily.index >= D(2016, 1, 15)).sum())
    assert res.leg_days == {"observed": 0, "modeled": held_days}
    # every expiry settled in cash at the close's intrinsic value
    settled = res.trades[res.trades["exit_reason"] == "expiry"]
    for t in settled.itertuples():
        assert t.exit_price == pytest.approx(max(t.strike - close[t.exit_date], 0.0))


def _gdaxi_lake(lake):  # type: ignore[no-untyped-def]
    """Synthetic ^GDAXI closes around the real 2018-04-27 snapshot (whose index level is 12,500.47)."""
    days = pd.bdate_range("2018-01-02", "2018-05-04")
    days = days[days != pd.Timestamp("2018-05-01")]  # Labour Day, Xetra closed
    i = np.arange(len(days), dtype=float)
    close = 12_400.0 + 150.0 * np.sin(i / 7.0)
    close[list(days).index(pd.Timestamp("2018-04-27"))] = 12_500.47
    lake.merge("equity_bars", pd.DataFrame({
        "symbol": "^GDAXI", "date": days.date, "open": close, "high": close, "low": close, "close": close,
        "adj_close": close, "volume": 0.0, "source": "test",
    }))
    return dict(zip(days.date, close, strict=True))


def test_observed_quotes_are_used_and_leg_days_counted(sample_lake) -> None:  # type: ignore[no-untyped-def]
    closes = _gdaxi_lake(sample_lake)
    exp = D(2018, 7, 20)
    c12700 = Contract("^GDAXI", exp, 12700.0, "C")  # observed on Apr 26 only (last 227.3, vendor IV 13.12 %)
    c12500 = Contract("^GDAXI", exp, 12500.0, "C")  # observed on Apr 27 only (last 333.3, vendor IV 13.97 %)
    script = {D(2018, 4, 26): [OptionOrder((OrderLeg(c12700, 1),), 1, "a")],
              D(2018, 4, 27): [OptionOrder((OrderLeg(c12500, 1),), 2, "b")]}
    cfg = parse_config({"name": "dax", "underlying": "^GDAXI", "start": "2018-04-26", "end": "2018-05-04",
                        "strategy": {"kind": "put_write"}, "market": {"rate": {"constant": 0.0}},
                        "commissions": NO_FEES})
    strategy = ScriptedStrategy(script, delay="same_bar")
    res = run_backtest(cfg, sample_lake, strategy=strategy)
    opens = res.fills[res.fills["action"] == "open"].set_index("tag")
    # a quote with only a last trade fills at that price (bid = ask = last); its IV is the vendor's
    assert (opens.loc["a", "price"], opens.loc["a", "source"]) == (227.3, "observed")
    assert (opens.loc["b", "price"], opens.loc["b", "source"]) == (333.3, "observed")
    assert opens.loc["a", "iv"] == pytest.approx(0.1312, abs=1e-12) and opens.loc["b", "iv"] == pytest.approx(0.1397)
    # Apr 27: the observed chain lacks 12700C, so it is priced by Black-Scholes at its last IV (modeled);
    # the bar's rate is 0 (market.rate.constant) and ^GDAXI's dividend yield 0
    s = closes[D(2018, 4, 27)]
    mark_a = float(bs_price("C", s, 12700.0, (exp - D(2018, 4, 27)).days / 365.0, 0.0, 0.0, 0.1312))
    d = res.daily
    assert d.loc[D(2018, 4, 27), "options_value"] == pytest.approx(100 * mark_a + 2 * 100 * 333.3, rel=1e-12)
    # leg-days at each close: Apr 26 one observed; Apr 27 one observed (12500C) and one modeled (12700C);
    # Apr 30, May 2, 3, 4: no observed chain -> the modeled chain prices both legs
    later = int((d.index > D(2018, 4, 27)).sum())
    assert later == 4
    assert res.leg_days == {"observed": 2, "modeled": 1 + 2 * later}
    assert res.metrics["leg_days_observed_share"] == pytest.approx(2 / (3 + 2 * later))


def test_chain_source_observed_fails_naming_the_leg_and_modeled_ignores_quotes(sample_lake) -> None:  # type: ignore[no-untyped-def]
    from backtests.options.errors import ChainError

    _gdaxi_lake(sample_lake)
    c12700 = Contract("^GDAXI", D(2018, 7, 20), 12700.0, "C")  # quoted on Apr 26 only
    base = {"name": "dax", "underlying": "^GDAXI", "start": "2018-04-26", "end": "2018-05-04",
            "strategy": {"kind": "put_write"}, "market": {"rate": {"constant": 0.0}}, "commissions": NO_FEES}

    def run(source: str):  # type: ignore[no-untyped-def]
        script = {D(2018, 4, 26): [OptionOrder((OrderLeg(c12700, 1),), 1, "a")]}
        cfg = parse_config({**base, "chain": {"source": source}})
        return run_backtest(cfg, sample_lake, strategy=ScriptedStrategy(script, delay="same_bar"))

    with pytest.raises(ChainError, match=r"chain.source observed: no quote for \^GDAXI 2018-07-20 12700C on "
                                         r"2018-04-27"):
        run("observed")
    modeled = run("modeled")
    assert modeled.leg_days["observed"] == 0 and modeled.fills.iloc[0]["source"] == "modeled"
    assert modeled.fills.iloc[0]["price"] != 227.3  # the observed last trade is not used
    auto = run("auto")
    assert auto.leg_days["observed"] == 1 and auto.leg_days["modeled"] == len(auto.daily) - 1
    # configs written before chain.source still load: chains.mode observed_else_modeled is auto
    legacy = parse_config({**base, "chains": {"mode": "observed_else_modeled"}})
    assert legacy.chain.source == "auto"
    assert parse_config({**base, "chains": {"mode": "observed"}}).chain.source == "observed"


def test_regime_strategies_need_features_regime(sample_lake) -> None:  # type: ignore[no-untyped-def]
    base = {"underlying": "^GSPC", "start": "2016-01-01", "end": "2016-02-28"}
    with pytest.raises(MarketDataError, match=r"iv_rank_router needs the market regime .* no features_regime"):
        run_backtest(parse_config({**base, "strategy": {"kind": "iv_rank_router"}}), sample_lake)
    with pytest.raises(MarketDataError, match=r"strategy\.exits\.exit_regimes=\['iv_expansion'\]"):
        run_backtest(parse_config({**base, "strategy": {"kind": "iron_condor"}}), sample_lake)
    with pytest.raises(MarketDataError, match=r"market\.require_regime=true"):
        run_backtest(parse_config({**base, "strategy": {"kind": "put_write"}, "market": {"require_regime": True}}),
                     sample_lake)
    # without regime settings the condor runs (and its regime column is "unknown")
    res = run_backtest(parse_config({**base, "strategy": {"kind": "iron_condor", "exits": {"exit_regimes": []}}}),
                       sample_lake)
    assert res.metrics["positions"] + len(res.open_positions) > 0 and set(res.daily["regime"]) == {"unknown"}


def test_router_reads_regime_and_iv_rank_from_features_regime(sample_lake) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from quantlake.tables import TableSpec

    days = pd.bdate_range("2016-01-04", "2016-02-26").date
    flip = D(2016, 1, 20)
    regime = ["neutral" if d < flip else "iv_contraction" for d in days]
    rank = [90.0 if d < flip else 85.0 for d in days]  # percent, as sql/features_regime.sql writes it
    spec = TableSpec(name="features_regime", keys=("symbol", "date"), schema=pa.schema([
        ("symbol", pa.string()), ("date", pa.date32()), ("vix", pa.float64()), ("vix_rank_252", pa.float64()),
        ("regime", pa.string())]), date_column="date")
    sample_lake.merge("features_regime", pd.DataFrame(
        {"symbol": "^VIX", "date": days, "vix": 20.0, "vix_rank_252": rank, "regime": regime}), spec=spec)
    cfg = parse_config({"name": "router", "underlying": "^GSPC", "start": "2016-01-04", "end": "2016-02-26",
                        "strategy": {"kind": "iv_rank_router", "base": {"method": "fixed", "contracts": 2}},
                        "commissions": NO_FEES})
    res = run_backtest(cfg, sample_lake)
    assert res.extra["has_regime"] and res.daily.loc[D(2016, 1, 19), "regime"] == "neutral"
    assert res.daily.loc[flip, "iv_rank"] == pytest.approx(0.85)
    opens = res.fills[res.fills["action"] == "open"]
    # neutral: stand aside; the first iv_contraction day (rank 0.85 >= strong 0.8: high confidence, regime
    # multiplier 1.0) decides an iron condor of 2 x 1.0 x 1.0 units, filled next bar
    assert opens["date"].min() == D(2016, 1, 21)
    first = opens[opens["date"] == D(2016, 1, 21)]
    assert sorted(first["qty"]) == [-2, -2, 2, 2] and set(first["right"]) == {"P", "C"}
    assert res.extra["decisions"]["aside"] >= 11  # every neutral bar before the flip


def test_modeling_fewer_expiries_changes_no_number(sample_lake) -> None:  # type: ignore[no-untyped-def]
    from backtests.options.runner import chain_months, default_chain_source

    cfg = parse_config({"name": "ic", "underlying": "^GSPC", "start": "2016-01-01", "end": "2016-03-31",
                        "strategy": {"kind": "iron_condor", "exits": {"exit_regimes": []}}})
    assert chain_months(cfg.strategy.dte.max) == 3  # type: ignore[union-attr]
    short = run_backtest(cfg, sample_lake)  # the default: a 3-month modeled chain
    full = run_backtest(cfg, sample_lake, chains=default_chain_source(sample_lake, None))  # 12 months
    assert len(short.fills) > 8
    pd.testing.assert_frame_equal(short.fills, full.fills)
    pd.testing.assert_frame_equal(short.daily, full.daily)


def test_iv_rank_is_the_underlyings_own_where_it_exists_and_says_so(sample_lake) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from features.tables import SURFACE
    from quantlake.tables import TableSpec

    days = pd.bdate_range("2016-01-04", "2016-02-26").date
    own_from = D(2016, 2, 1)  # the underlying's rank exists from here (its chains' history got long enough)
    regime_spec = TableSpec(name="features_regime", keys=("symbol", "date"), schema=pa.schema([
        ("symbol", pa.string()), ("date", pa.date32()), ("vix", pa.float64()), ("vix_rank_252", pa.float64()),
        ("regime", pa.string())]), date_column="date")
    sample_lake.merge("features_regime", pd.DataFrame(
        {"symbol": "^VIX", "date": days, "vix": 20.0, "vix_rank_252": 10.0, "regime": "iv_contraction"}),
        spec=regime_spec)
    surface = pd.DataFrame({"underlying": "^GSPC", "date": days,
                            "iv_rank_252": [np.nan if d < own_from else 90.0 for d in days],
                            "regime": [None if d < own_from else "iv_contraction" for d in days]})
    full = SURFACE.schema.empty_table().to_pandas()
    sample_lake.merge("features_surface", pd.concat([full, surface], ignore_index=True), spec=SURFACE)
    base = {"name": "router", "underlying": "^GSPC", "start": "2016-01-04", "end": "2016-02-26",
            "strategy": {"kind": "iv_rank_router", "base": {"method": "fixed", "contracts": 2}},
            "commissions": NO_FEES}
    res = run_backtest(parse_config(base), sample_lake)
    d = res.daily
    # VIX rank 10 % before the underlying's own exists, its own 90 % after; each bar names its source
    assert d.loc[D(2016, 1, 29), "iv_rank"] == pytest.approx(0.10) and d.loc[D(2016, 1, 29), "iv_rank_source"] == "^VIX"
    assert d.loc[own_from, "iv_rank"] == pytest.approx(0.90) and d.loc[own_from, "iv_rank_source"] == "^GSPC"
    n_own = int((d.index >= own_from).sum())
    assert res.metrics["iv_rank_days_underlying"] == n_own
    assert res.metrics["iv_rank_days_vix"] == len(d) - n_own
    # rank 10 % in iv_contraction: stand aside; rank 90 %: sell premium, decided on the first own-rank day
    opens = res.fills[res.fills["action"] == "open"]
    assert opens["date"].min() == D(2016, 2, 2)
    # only the VIX's rank: never sells (10 %); only the underlying's: nothing before Feb 1 either
    vix_only = run_backtest(parse_config({**base, "market": {"iv_rank": "vix"}}), sample_lake)
    assert (vix_only.fills["action"] == "open").sum() == 0 and set(vix_only.daily["iv_rank_source"]) == {"^VIX"}
    own_only = run_backtest(parse_config({**base, "market": {"iv_rank": "underlying"}}), sample_lake)
    assert own_only.daily.loc[D(2016, 1, 29), "iv_rank_source"] == "" and np.isnan(
        own_only.daily.loc[D(2016, 1, 29), "iv_rank"])
    # the HV/IV rule set labels bars from features_surface: unknown without the rank (stand aside) before Feb 1
    hv = run_backtest(parse_config({**base, "market": {"regime_rules": "hv_iv"}}), sample_lake)
    assert hv.daily.loc[D(2016, 1, 29), "regime"] == "unknown" and hv.daily.loc[own_from, "regime"] == "iv_contraction"
    assert hv.fills[hv.fills["action"] == "open"]["date"].min() == D(2016, 2, 2)
