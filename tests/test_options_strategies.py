"""Strategies on hand-checkable worlds: the CBOE put-write P&L identity (option-price changes plus interest on
the collateral, recomputed here with ``bs_price``), the buy-write roll rule, managed exits of an iron
condor on written-out quotes, covered calls with roll and assignment, protective puts, the EMA-crossover
timing (EMAs recomputed with pandas) and the IV-rank router's routing and sizing."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from backtests.options.config import (
    Commissions,
    CoveredCallConfig,
    CreditSpreadExits,
    EmaCrossoverConfig,
    ExitRules,
    FillConfig,
    IronCondorConfig,
    IvRankRouterConfig,
    ProtectivePutConfig,
    PutWriteConfig,
    SizingConfig,
    StrikeRule,
    WidthRule,
)
from backtests.options.contracts import Contract, third_friday
from backtests.options.engine import EngineSettings
from backtests.options.orders import OptionOrder, OrderLeg
from backtests.options.runner import BacktestResult, simulate
from backtests.options.strategies import (
    BuyWrite,
    CoveredCall,
    EmaCrossover,
    IronCondor,
    IvRankRouter,
    ProtectivePut,
    PutWrite,
    route,
)
from backtests.options.strategies.scripted import ScriptedStrategy
from backtests.options.synthetic import BlackScholesChains, QuoteTable
from features.pricing import bs_greeks, bs_price

D = dt.date
NO_FEES = Commissions(per_contract=0.0, per_share=0.0)
MID = FillConfig(mode="mid")


def path(start: str, end: str, s0: float, amp: float = 0.04, drift: float = 0.0) -> pd.Series:
    idx = pd.bdate_range(start, end)
    i = np.arange(len(idx))
    return pd.Series(s0 * (1 + amp * np.sin(i / 6.0)) * (1 + drift) ** i, index=idx)


# ------------------------------------------------------------------------------------------ put-write
RATE, VOL = 0.04, 0.16


@pytest.fixture(scope="module")
def put_write() -> tuple[BacktestResult, pd.Series]:
    closes = path("2024-01-19", "2024-04-10", 4800.0)  # starts on a monthly expiration (third Friday)
    src = BlackScholesChains(closes, vol=VOL, rate=RATE, step=5.0, width=0.2)
    settings = EngineSettings(underlying="^GSPC", fill=MID, commissions=NO_FEES, delay="same_bar")
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, PutWrite(PutWriteConfig()), settings, 1e6)
    return res, closes


def test_put_write_pnl_is_option_price_changes_plus_interest(put_write: tuple[BacktestResult, pd.Series]) -> None:
    res, closes = put_write
    days = [d.date() for d in closes.index]
    rolls = [D(2024, 1, 19), D(2024, 2, 16), D(2024, 3, 15)]
    cash, n, strike, expiry, p_entry = 1e6, 0, 0.0, None, 0.0
    option_pnl = interest = 0.0
    for i, day in enumerate(days):
        s = float(closes.iloc[i])
        if i:
            earned = cash * math.expm1(RATE * (day - days[i - 1]).days / 365.0)
            cash += earned
            interest += earned
        if day in rolls:
            if n:  # the expiring put settles in cash at intrinsic value
                settle = max(strike - s, 0.0)
                cash -= n * 100 * settle
                option_pnl += -n * 100 * (settle - p_entry)
            strike = math.floor(s / 5.0) * 5.0  # listed strike at or just below the index
            expiry = third_friday(day.year + (day.month == 12), day.month % 12 + 1)
            n = math.floor(cash / (100 * strike))  # fully cash-secured
            p_entry = float(bs_price("P", s, strike, (expiry - day).days / 365.0, RATE, 0.0, VOL))
            cash += n * 100 * p_entry
    assert expiry is not None
    mark = float(bs_price("P", closes.iloc[-1], strike, (expiry - days[-1]).days / 365.0, RATE, 0.0, VOL))
    option_pnl += -n * 100 * (mark - p_entry)
    expected_equity = cash - n * 100 * mark
    assert res.metrics["final_equity"] == pytest.approx(expected_equity, rel=1e-10)
    assert res.metrics["final_equity"] - 1e6 == pytest.approx(option_pnl + interest, rel=1e-9)
    assert res.metrics["interest"] == pytest.approx(interest, rel=1e-9)
    assert res.metrics["margin_call_days"] == 0


def test_put_write_rolls_on_third_fridays_at_or_below_the_index(put_write: tuple[BacktestResult, pd.Series]) -> None:
    res, closes = put_write
    opens = res.fills[res.fills["action"] == "open"]
    assert list(opens["date"]) == [D(2024, 1, 19), D(2024, 2, 16), D(2024, 3, 15)]
    assert list(opens["expiry"]) == [D(2024, 2, 16), D(2024, 3, 15), D(2024, 4, 19)]
    for _, f in opens.iterrows():
        s = float(closes[pd.Timestamp(f["date"])])
        assert f["strike"] <= s < f["strike"] + 5.0 and f["right"] == "P"
    # leg-days: one modeled leg on every bar (the synthetic chain's rows are tagged modeled)
    assert res.leg_days == {"observed": 0, "modeled": len(closes)}


def test_buy_write_holds_index_units_and_writes_at_or_above() -> None:
    closes = path("2024-01-19", "2024-03-20", 4800.0)
    src = BlackScholesChains(closes, vol=VOL, rate=RATE, step=5.0, width=0.2)
    settings = EngineSettings(underlying="^GSPC", fill=MID, commissions=NO_FEES, delay="same_bar")
    from backtests.options.config import BuyWriteConfig

    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, BuyWrite(BuyWriteConfig()), settings, 1e6)
    opens = res.fills[res.fills["action"] == "open"]
    assert list(opens["date"]) == [D(2024, 1, 19), D(2024, 2, 16), D(2024, 3, 15)]
    s0 = float(closes.iloc[0])
    units = math.floor(1e6 / (100 * s0)) * 100
    assert res.daily.iloc[0]["shares"] == units
    first = opens.iloc[0]
    assert first["qty"] == -units / 100 and first["right"] == "C"
    assert first["strike"] >= s0 > first["strike"] - 5.0
    # covered by the index units: no margin beyond the units' value, delta = units - calls x 100 x call delta
    call_delta = float(bs_greeks("C", s0, first["strike"], 28 / 365, RATE, 0.0, VOL)["delta"])
    assert res.daily.iloc[0]["delta"] == pytest.approx(units - units * call_delta, rel=1e-9)


# ------------------------------------------------------------------------------------------ managed exits
IC_EXP = D(2024, 1, 19)
SP, LP = Contract("^GSPC", IC_EXP, 4500.0, "P"), Contract("^GSPC", IC_EXP, 4450.0, "P")
SC, LC = Contract("^GSPC", IC_EXP, 5000.0, "C"), Contract("^GSPC", IC_EXP, 5050.0, "C")
IC_DAYS = [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4), D(2024, 1, 5), D(2024, 1, 8), D(2024, 1, 9),
           D(2024, 1, 10), D(2024, 1, 11), D(2024, 1, 12), D(2024, 1, 16), D(2024, 1, 17)]
FLAT = (20.0, 12.0, 15.0, 8.0)  # short put, long put, short call, long call: credit 20 + 15 - 12 - 8 = 15


def ic_run(marks: dict[dt.date, tuple[float, float, float, float]], rules: ExitRules,
           regimes: list[str] | None = None) -> BacktestResult:
    rows = []
    for d in IC_DAYS:
        for c, px in zip((SP, LP, SC, LC), marks.get(d, FLAT), strict=True):
            rows.append({"quote_date": d, "expiry": c.expiry, "strike": c.strike, "right": c.right, "bid": px,
                         "ask": px})
    order = OptionOrder((OrderLeg(LP, 1), OrderLeg(SP, -1), OrderLeg(SC, -1), OrderLeg(LC, 1)), 2, "ic",
                        exits=rules)
    bars = pd.DataFrame({"close": 4750.0, "regime": regimes or ["low_vol"] * len(IC_DAYS)},
                        index=pd.to_datetime(IC_DAYS))
    settings = EngineSettings(underlying="^GSPC", fill=MID, commissions=NO_FEES)
    return simulate(bars, QuoteTable(pd.DataFrame(rows)), ScriptedStrategy({IC_DAYS[0]: [order]}), settings, 1e6)


def test_iron_condor_profit_target_half_the_credit() -> None:
    # day 3 (Jan 5): value 9 + 7 - 6 - 3 = 7 -> profit 8 >= 50 % x 15: close decided, filled Jan 8 at value 6
    res = ic_run({IC_DAYS[3]: (9.0, 6.0, 7.0, 3.0), IC_DAYS[4]: (8.0, 5.0, 6.0, 3.0)},
                 ExitRules(profit_target=0.5, stop_loss=2.0))
    pos = res.positions.iloc[0]
    assert (pos["exit_reason"], pos["closed"], pos["entry_net"]) == ("profit_target", IC_DAYS[4], -15.0)
    assert pos["pnl"] == pytest.approx((15.0 - 6.0) * 100 * 2)


def test_iron_condor_stop_at_two_times_credit() -> None:
    # day 2 value 40 (loss 25 < 30: hold), day 3 value 50 + 4 - 20 - 20... = 46 (loss 31 >= 2 x 15): stop
    res = ic_run({IC_DAYS[2]: (45.0, 20.0, 20.0, 5.0), IC_DAYS[3]: (50.0, 20.0, 20.0, 4.0),
                  IC_DAYS[4]: (55.0, 22.0, 20.0, 3.0)}, ExitRules(profit_target=0.5, stop_loss=2.0))
    pos = res.positions.iloc[0]
    assert (pos["exit_reason"], pos["closed"]) == ("stop_loss", IC_DAYS[4])
    assert pos["pnl"] == pytest.approx((15.0 - (55 + 20 - 22 - 3)) * 100 * 2)


def test_iron_condor_time_exit_at_80_percent() -> None:
    # entered Jan 3 (filled), expiry Jan 19: 16 days; 80 % = 12.8 days -> first bar with >= 12.8 elapsed: Jan 16
    res = ic_run({}, ExitRules(time_exit=0.8))
    pos = res.positions.iloc[0]
    assert (pos["exit_reason"], pos["opened"], pos["closed"]) == ("time_exit", IC_DAYS[1], IC_DAYS[10])
    assert pos["pnl"] == pytest.approx(0.0)


def test_iron_condor_regime_shift_exit() -> None:
    regimes = ["low_vol"] * 5 + ["iv_expansion"] * 6  # switches on Jan 9
    res = ic_run({}, CreditSpreadExits(profit_target=None, stop_loss=None, time_exit=None), regimes)
    pos = res.positions.iloc[0]
    assert (pos["exit_reason"], pos["closed"], pos["regime_at_entry"]) == ("regime_shift", IC_DAYS[6], "low_vol")


def test_iron_condor_strategy_builds_16_delta_shorts_and_wings() -> None:
    closes = path("2024-01-02", "2024-01-10", 4750.0, amp=0.0)
    src = BlackScholesChains(closes, vol=VOL, rate=RATE, step=5.0, width=0.25, spread_pct=0.02, min_half_spread=0.05)
    cfg = IronCondorConfig(width=WidthRule(points=50.0), sizing=SizingConfig(method="fixed", contracts=3))
    settings = EngineSettings(underlying="^GSPC", commissions=NO_FEES)
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, IronCondor(cfg), settings, 1e6)
    legs = res.fills[res.fills["action"] == "open"].set_index(["right", "qty"])
    expiry = D(2024, 2, 16)  # 45 DTE target from Jan 2: Feb 16 (45 days)
    assert set(legs["expiry"]) == {expiry}
    t = (expiry - D(2024, 1, 2)).days / 365.0
    strikes = np.arange(3560.0, 5940.0, 5.0)
    for right in ("P", "C"):
        delta = np.asarray(bs_greeks(right, 4750.0, strikes, t, RATE, 0.0, VOL)["delta"])
        short = strikes[np.argmin(np.abs(np.abs(delta) - 0.16))]
        assert legs.loc[(right, -3), "strike"] == short
        assert legs.loc[(right, 3), "strike"] == short + (50.0 if right == "C" else -50.0)
    assert res.fills.iloc[0]["date"] == D(2024, 1, 3)  # decided Jan 2, filled next bar


# ------------------------------------------------------------------------------------------ stock + options
def test_covered_call_rolls_and_is_assigned_then_rebuys() -> None:
    closes = path("2024-01-02", "2024-03-28", 100.0, amp=0.0, drift=0.004)  # steady rise: calls go ITM
    src = BlackScholesChains(closes, vol=0.25, rate=RATE, step=1.0, width=0.5)
    cfg = CoveredCallConfig(shares=300, call=StrikeRule(by="delta", value=0.30))
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=NO_FEES)
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, CoveredCall(cfg), settings, 100_000.0)
    first = res.fills.iloc[:2]
    assert list(first["action"]) == ["shares", "open"] and first.iloc[0]["qty"] == 300
    assert first.iloc[1]["qty"] == -3 and first.iloc[1]["right"] == "C"
    assigned = res.fills[res.fills["action"] == "assign"]
    assert len(assigned) >= 1
    day = assigned.iloc[0]["date"]
    after = res.fills[res.fills["date"] > day]
    assert after.iloc[0]["action"] == "shares" and after.iloc[0]["qty"] == 300  # bought back next bar
    assert res.daily["shares"].max() == 300 and res.metrics["margin_call_days"] == 0

    rolled = CoveredCallConfig(shares=300, call=StrikeRule(by="delta", value=0.30),
                               roll={"at_dte": 5})  # type: ignore[arg-type]
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, CoveredCall(rolled), settings, 100_000.0)
    closes_ = res.trades[res.trades["exit_reason"] == "roll"]
    assert len(closes_) >= 2 and (res.fills["action"] == "assign").sum() == 0
    for _, t in closes_.iterrows():
        assert (t["expiry"] - t["exit_date"]).days <= 5


def test_protective_put_limits_the_loss() -> None:
    closes = path("2024-01-02", "2024-02-14", 100.0, amp=0.0, drift=-0.006)  # steady fall
    src = BlackScholesChains(closes, vol=0.25, rate=RATE, step=1.0, width=0.5)
    cfg = ProtectivePutConfig(shares=200)
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=NO_FEES)
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, ProtectivePut(cfg), settings, 50_000.0)
    opened = res.fills[res.fills["action"] == "open"].iloc[0]
    s1 = float(closes.iloc[1])
    # shares first: bought Jan 3 (decided Jan 2); the puts are decided once the shares are held (Jan 3)
    assert res.fills.iloc[0]["action"] == "shares" and res.fills.iloc[0]["date"] == D(2024, 1, 3)
    assert opened["qty"] == 2 and opened["right"] == "P" and opened["date"] == D(2024, 1, 4)
    assert abs(opened["strike"] - s1 * 0.95) <= 0.5  # 5 % OTM on the decision day, nearest listed strike
    # the stock lost (s1 - s_T) x 200; the hedged account lost at most (s1 - K) x 200 + the premium
    s_t = float(closes.iloc[-1])
    loss = 50_000.0 - res.metrics["final_equity"]
    assert loss < (s1 - s_t) * 200
    assert loss <= (s1 - opened["strike"]) * 200 + opened["price"] * 200 + 1.0


# ------------------------------------------------------------------------------------------ EMA crossover
def bt_ema(x: pd.Series, n: int) -> pd.Series:
    """backtrader's EMA: seeded with the SMA of the first n values, then alpha = 2 / (n + 1)."""
    out = pd.Series(np.nan, index=x.index)
    alpha = 2.0 / (n + 1)
    out.iloc[n - 1] = x.iloc[:n].mean()
    for i in range(n, len(x)):
        out.iloc[i] = out.iloc[i - 1] + alpha * (x.iloc[i] - out.iloc[i - 1])
    return out


def test_ema_crossover_buys_a_call_next_bar_on_the_monthly_expiry() -> None:
    idx = pd.bdate_range("2024-01-02", "2024-05-31")
    x = np.arange(len(idx), dtype=float)
    closes = pd.Series(100.0 - 0.15 * x + 0.004 * x**2, index=idx)  # falls, then turns up
    fast, slow = bt_ema(closes, 5), bt_ema(closes, 20)
    diff = fast - slow
    cross_up = [idx[i].date() for i in range(20, len(idx)) if diff.iloc[i - 1] < 0 < diff.iloc[i]]
    assert len(cross_up) == 1
    src = BlackScholesChains(closes, vol=0.3, rate=RATE, step=1.0, width=0.5, months=4)
    cfg = EmaCrossoverConfig(fast=5, slow=20, min_dte=30, sizing=SizingConfig(method="fixed", contracts=2),
                             exits=ExitRules())
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=NO_FEES)
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, EmaCrossover(cfg), settings, 100_000.0)
    calls = res.fills[(res.fills["action"] == "open") & (res.fills["right"] == "C")]
    assert len(calls) == 1
    signal_day = cross_up[0]
    nxt = idx[idx.get_loc(pd.Timestamp(signal_day)) + 1].date()
    c = calls.iloc[0]
    assert c["date"] == nxt and c["qty"] == 2
    # first third Friday at least 30 days after the signal day; strike nearest the spot that day
    m = 0
    while (third_friday(signal_day.year + (signal_day.month + m - 1) // 12,
                        (signal_day.month + m - 1) % 12 + 1) - signal_day).days < 30:
        m += 1
    assert c["expiry"] == third_friday(signal_day.year + (signal_day.month + m - 1) // 12,
                                       (signal_day.month + m - 1) % 12 + 1)
    assert c["strike"] == round(float(closes[pd.Timestamp(signal_day)]))


# ------------------------------------------------------------------------------------------ IV-rank router
def test_route_truth_table() -> None:
    cfg = IvRankRouterConfig()
    assert route(cfg, "neutral", 0.95) == ("aside", "low")
    assert route(cfg, "iv_contraction", 0.9) == ("sell", "high")
    assert route(cfg, "high_vol", 0.6) == ("sell", "medium")
    assert route(cfg, "iv_expansion", 0.6) == ("aside", "low")  # rich vol but expanding: do not sell
    assert route(cfg, "iv_expansion", 0.03) == ("buy", "high")
    assert route(cfg, "iv_expansion", 0.15) == ("buy", "medium")
    assert route(cfg, "low_vol", 0.15) == ("aside", "low")  # cheap but no expansion signal
    assert route(cfg, "high_vol", float("nan")) == ("aside", "low")


@pytest.mark.parametrize(
    ("regime", "rank", "structure", "units"),
    [
        ("neutral", 0.95, None, 0),
        ("iv_contraction", 0.90, "sell", 4),  # 4 x regime 1.0 x high 1.0
        ("iv_contraction", 0.60, "sell", 2),  # 4 x 1.0 x medium 0.5
        ("high_vol", 0.60, "sell", 1),  # 4 x 0.5 x 0.5
        ("iv_expansion", 0.03, "buy", 2),  # 4 x 0.5 x high 1.0
    ],
)
def test_router_sizes_by_regime_and_confidence(regime: str, rank: float, structure: str | None, units: int) -> None:
    closes = path("2024-01-02", "2024-01-12", 4750.0, amp=0.0)
    src = BlackScholesChains(closes, vol=VOL, rate=RATE, step=5.0, width=0.25)
    cfg = IvRankRouterConfig(base=SizingConfig(method="fixed", contracts=4))
    bars = pd.DataFrame({"close": closes, "rate": RATE, "regime": regime, "iv_rank": rank})
    settings = EngineSettings(underlying="^GSPC", commissions=NO_FEES)
    res = simulate(bars, src, IvRankRouter(cfg), settings, 1e6)
    opens = res.fills[res.fills["action"] == "open"]
    if structure is None:
        assert opens.empty and res.extra["decisions"]["aside"] == len(closes)
        return
    first = opens[opens["date"] == opens["date"].min()]
    if structure == "sell":
        assert len(first) == 4 and sorted(first["qty"]) == [-units, -units, units, units]
    else:
        assert len(first) == 2 and set(first["qty"]) == {units}
        assert first["strike"].nunique() == 1  # a straddle


def test_put_write_rolls_on_the_thursday_before_good_friday() -> None:
    closes = path("2025-03-21", "2025-04-25", 5600.0)  # April 2025's expiry (Apr 18) was Good Friday
    closes = closes.drop(pd.Timestamp("2025-04-18"))
    src = BlackScholesChains(closes, vol=VOL, rate=RATE, step=5.0, width=0.2)
    settings = EngineSettings(underlying="^GSPC", fill=MID, commissions=NO_FEES, delay="same_bar")
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, PutWrite(PutWriteConfig()), settings, 1e6)
    opens = res.fills[res.fills["action"] == "open"]
    assert list(opens["date"]) == [D(2025, 3, 21), D(2025, 4, 17)]
    assert list(opens["expiry"]) == [D(2025, 4, 18), D(2025, 5, 16)]  # the Thursday writes May, not April
    settled = res.trades.iloc[0]
    assert (settled["exit_date"], settled["exit_reason"]) == (D(2025, 4, 17), "expiry")
