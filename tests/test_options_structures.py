"""Butterflies, calendars and the IV-rank router's debit spreads on a Black-Scholes world: every entry price
is recomputed here with ``bs_price`` on the fill day and every exit from the expiry payoff written out by hand
(or ``bs_price`` on the exit day), then compared with the engine's positions."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from backtests.options.config import (
    ButterflyConfig,
    CalendarConfig,
    Commissions,
    DteWindow,
    FillConfig,
    IvRankRouterConfig,
    SizingConfig,
    WidthRule,
)
from backtests.options.contracts import Contract
from backtests.options.engine import EngineSettings
from backtests.options.orders import OrderLeg
from backtests.options.runner import BacktestResult, simulate
from backtests.options.strategies import Butterfly, Calendar, IvRankRouter
from backtests.options.strategies.base import max_loss_per_share
from backtests.options.synthetic import BlackScholesChains
from features.pricing import bs_price

D = dt.date
RATE, VOL = 0.04, 0.18
NO_FEES = Commissions(per_contract=0.0, per_share=0.0)
FRONT, BACK = D(2024, 2, 16), D(2024, 3, 15)
HOLD = {"profit_target": None, "stop_loss": None, "time_exit": None, "dte_exit": None}  # to expiry


def flat_then(last: float, end: str = "2024-02-16", level: float = 4750.0) -> pd.Series:
    idx = pd.bdate_range("2024-01-02", end)
    s = pd.Series(level, index=idx)
    s.iloc[-1] = last
    return s


def run(closes: pd.Series, strategy: object, cash: float = 1e6, **bars: object) -> BacktestResult:
    src = BlackScholesChains(closes, vol=VOL, rate=RATE, step=5.0, width=0.2)
    settings = EngineSettings(underlying="^GSPC", fill=FillConfig(mode="mid"), commissions=NO_FEES)
    frame = pd.DataFrame({"close": closes, "rate": RATE, **bars})
    return simulate(frame, src, strategy, settings, cash)  # type: ignore[arg-type]


def bs(right: str, spot: float, strike: float, day: dt.date, expiry: dt.date) -> float:
    return float(bs_price(right, spot, strike, (expiry - day).days / 365.0, RATE, 0.0, VOL))


def test_long_call_butterfly_pays_its_expiry_payoff_minus_the_debit() -> None:
    closes = flat_then(4770.0)
    cfg = ButterflyConfig(style="call", width=WidthRule(points=95.0), exits=HOLD,  # type: ignore[arg-type]
                          sizing=SizingConfig(method="fixed", contracts=2))
    res = run(closes, Butterfly(cfg))
    legs = res.fills[res.fills["action"] == "open"].sort_values("strike")
    # decided Jan 2 (spot 4750): expiry Feb 16 (45 days, the monthly nearest the 30-day target in 20..50),
    # center the strike nearest the spot, wings 95 points away (4655 and 4845 are listed on the 5-point grid)
    assert list(legs["strike"]) == [4655.0, 4750.0, 4845.0] and list(legs["qty"]) == [2, -4, 2]
    assert set(legs["expiry"]) == {FRONT} and set(legs["date"]) == {D(2024, 1, 3)}
    day = D(2024, 1, 3)
    debit = bs("C", 4750, 4655, day, FRONT) - 2 * bs("C", 4750, 4750, day, FRONT) + bs("C", 4750, 4845, day, FRONT)
    payoff = (4770 - 4655) - 2 * (4770 - 4750) + 0.0  # at the Feb 16 close
    pos = res.positions.iloc[0]
    assert pos["entry_net"] == pytest.approx(debit, rel=1e-12)
    assert pos["closed"] == FRONT and pos["exit_reason"] == "expiry"
    assert pos["pnl"] == pytest.approx(2 * 100 * (payoff - debit), rel=1e-10)
    settled = res.trades.set_index("strike")["exit_price"]
    assert list(settled.sort_index()) == [115.0, 20.0, 0.0]


def test_iron_butterfly_sized_on_width_minus_credit() -> None:
    closes = flat_then(4770.0)
    cfg = ButterflyConfig(style="iron", width=WidthRule(points=95.0), exits=HOLD,  # type: ignore[arg-type]
                          sizing=SizingConfig(method="risk", risk_fraction=0.01))
    res = run(closes, Butterfly(cfg))
    legs = res.fills[res.fills["action"] == "open"]
    # sized on Jan 2's mid: credit of the short straddle minus the wings, max loss 95 - credit per share
    d0 = D(2024, 1, 2)
    credit0 = (bs("P", 4750, 4750, d0, FRONT) + bs("C", 4750, 4750, d0, FRONT)
               - bs("P", 4750, 4655, d0, FRONT) - bs("C", 4750, 4845, d0, FRONT))
    n = math.floor(1e6 * 0.01 / ((95.0 - credit0) * 100))
    assert n >= 1
    book = {(r.right, r.strike): r.qty for r in legs.itertuples()}
    assert book == {("P", 4655.0): n, ("P", 4750.0): -n, ("C", 4750.0): -n, ("C", 4845.0): n}
    d1 = D(2024, 1, 3)
    credit = (bs("P", 4750, 4750, d1, FRONT) + bs("C", 4750, 4750, d1, FRONT)
              - bs("P", 4750, 4655, d1, FRONT) - bs("C", 4750, 4845, d1, FRONT))
    pos = res.positions.iloc[0]
    assert pos["entry_net"] == pytest.approx(-credit, rel=1e-12)
    assert pos["pnl"] == pytest.approx(n * 100 * (credit - 20.0), rel=1e-10)  # the short call ends 20 in the money


def test_max_loss_of_packages_by_hand() -> None:
    def leg(k: float, right: str, ratio: int) -> OrderLeg:
        return OrderLeg(Contract("X", FRONT, k, right), ratio)  # type: ignore[arg-type]

    fly = [leg(90, "C", 1), leg(100, "C", -2), leg(110, "C", 1)]
    assert max_loss_per_share(fly, 2.5) == pytest.approx(2.5)  # a long butterfly risks its debit
    broken = [leg(90, "C", 1), leg(100, "C", -2), leg(115, "C", 1)]  # upper wing 15: -5 above 115
    assert max_loss_per_share(broken, 2.0) == pytest.approx(7.0)
    iron = [leg(90, "P", 1), leg(100, "P", -1), leg(100, "C", -1), leg(110, "C", 1)]
    assert max_loss_per_share(iron, -6.0) == pytest.approx(4.0)  # width 10 - credit 6
    assert max_loss_per_share([leg(100, "C", -1)], -3.0) == math.inf  # a naked call
    cal = [OrderLeg(Contract("X", FRONT, 100, "C"), -1), OrderLeg(Contract("X", BACK, 100, "C"), 1)]
    assert max_loss_per_share(cal, 1.7) == pytest.approx(1.7)


def test_calendar_closes_before_the_front_expiry_at_its_black_scholes_value() -> None:
    closes = flat_then(4750.0, end="2024-02-20")
    cfg = CalendarConfig(front=DteWindow(min=20, max=50, target=30), back=DteWindow(min=60, max=100, target=75),
                         exits={**HOLD, "dte_exit": 2},  # type: ignore[arg-type]
                         sizing=SizingConfig(method="fixed", contracts=3))
    res = run(closes, Calendar(cfg))
    legs = res.fills[(res.fills["action"] == "open") & (res.fills["date"] == D(2024, 1, 3))].set_index("expiry")
    assert legs.loc[FRONT, "qty"] == -3 and legs.loc[BACK, "qty"] == 3
    assert legs.loc[FRONT, "strike"] == legs.loc[BACK, "strike"] == 4750.0
    d1, exit_day = D(2024, 1, 3), D(2024, 2, 15)  # Feb 14 has 2 days left on the front: close filled Feb 15
    debit = bs("C", 4750, 4750, d1, BACK) - bs("C", 4750, 4750, d1, FRONT)
    value = bs("C", 4750, 4750, exit_day, BACK) - bs("C", 4750, 4750, exit_day, FRONT)
    pos = res.positions.iloc[0]
    assert (pos["exit_reason"], pos["closed"]) == ("dte_exit", exit_day)
    assert pos["entry_net"] == pytest.approx(debit, rel=1e-12)
    assert pos["pnl"] == pytest.approx(3 * 100 * (value - debit), rel=1e-10)
    assert value > debit  # flat spot and vol: the front month decays faster


def test_calendar_left_with_its_back_month_is_closed_next_bar() -> None:
    closes = flat_then(4760.0, end="2024-02-21")
    cfg = CalendarConfig(front=DteWindow(min=20, max=50, target=30), back=DteWindow(min=60, max=100, target=75),
                         exits=HOLD, sizing=SizingConfig(method="fixed", contracts=1))  # type: ignore[arg-type]
    closes.loc["2024-02-16":] = 4760.0
    res = run(closes, Calendar(cfg))
    first = res.trades[res.trades["position_id"] == 1].set_index("expiry")
    # the short front call settles at intrinsic 10 on Feb 16; the back call is closed on the next bar (the
    # synthetic business-day calendar has Feb 19)
    assert first.loc[FRONT, "exit_action"] == "cash_settle" and first.loc[FRONT, "exit_price"] == pytest.approx(10.0)
    assert first.loc[BACK, "exit_date"] == D(2024, 2, 19) and first.loc[BACK, "exit_reason"] == "legs_expired"
    assert first.loc[BACK, "exit_price"] == pytest.approx(bs("C", 4760, 4750, D(2024, 2, 19), BACK), rel=1e-12)


@pytest.mark.parametrize(("structure", "book"), [
    ("call_debit_spread", {("C", 4750.0): 2, ("C", 4845.0): -2}),
    ("put_debit_spread", {("P", 4750.0): 2, ("P", 4655.0): -2}),
    ("debit_spreads", {("C", 4750.0): 2, ("C", 4845.0): -2, ("P", 4750.0): 2, ("P", 4655.0): -2}),
])
def test_router_buys_debit_spreads_when_iv_is_low_and_expanding(structure: str, book: dict) -> None:
    closes = flat_then(4750.0, end="2024-01-10")
    cfg = IvRankRouterConfig(buy_structure=structure, debit_width=WidthRule(points=95.0),  # type: ignore[arg-type]
                             base=SizingConfig(method="fixed", contracts=2))
    res = run(closes, IvRankRouter(cfg), regime="iv_expansion", iv_rank=0.03)  # high confidence, regime x 0.5
    first = res.fills[res.fills["action"] == "open"]
    first = first[first["date"] == first["date"].min()]
    assert {(r.right, r.strike): r.qty for r in first.itertuples()} == {k: v // 2 for k, v in book.items()}
    # the debit is the most the package can lose: a debit spread is never wider than its width
    debit = float((first["qty"] * first["price"]).sum())
    assert 0 < debit < 95.0 * len(book) // 2
    assert res.extra["decisions"]["buy"] >= 1
    np.testing.assert_array_equal(sorted(first["expiry"].unique()), [FRONT])
