"""Contract selection: third-Friday calendar, expiry by DTE window, strike by delta (checked against
QuantLib's Black-Scholes delta), by % OTM, at the money, spread wings."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from backtests.options import selection as sel
from backtests.options.config import DteWindow, StrikeRule
from backtests.options.contracts import monthly_expiries, next_monthly_expiry, settlement_dates, third_friday
from backtests.options.quotes import ChainSnapshot, Market
from backtests.options.synthetic import BlackScholesChains

D = dt.date
TODAY = D(2024, 1, 10)
SPOT, VOL, RATE, DIV = 4783.0, 0.15, 0.045, 0.015


@pytest.fixture(scope="module")
def chain() -> pd.DataFrame:
    src = BlackScholesChains(pd.Series({pd.Timestamp(TODAY): SPOT}), vol=VOL, rate=RATE, dividend_yield=DIV,
                             step=5.0, width=0.2, months=4)
    return ChainSnapshot(src.chain("^GSPC", TODAY), Market(TODAY, SPOT, RATE, DIV), "^GSPC").frame()


def test_third_fridays() -> None:
    assert [third_friday(2024, m) for m in (1, 2, 3)] == [D(2024, 1, 19), D(2024, 2, 16), D(2024, 3, 15)]
    assert third_friday(2025, 4) == D(2025, 4, 18)  # Good Friday
    assert monthly_expiries(D(2024, 1, 19), D(2024, 3, 14)) == [D(2024, 1, 19), D(2024, 2, 16)]
    assert next_monthly_expiry(D(2024, 1, 19)) == D(2024, 1, 19)
    assert next_monthly_expiry(D(2024, 1, 19), min_days=1) == D(2024, 2, 16)
    assert next_monthly_expiry(D(2024, 1, 10), min_days=30) == D(2024, 2, 16)
    cal = np.array(["2025-04-16", "2025-04-17", "2025-04-21"], dtype="datetime64[D]")
    assert settlement_dates([D(2025, 4, 18), D(2025, 5, 16)], cal) == [D(2025, 4, 17), None]


def test_expiry_by_dte_window(chain: pd.DataFrame) -> None:
    # monthlies from Jan 10: Jan 19 (9 days), Feb 16 (37), Mar 15 (65), Apr 19 (100)
    assert sel.pick_expiry(chain, DteWindow(min=30, max=70, target=45)) == D(2024, 2, 16)
    assert sel.pick_expiry(chain, DteWindow(min=30, max=70, target=60)) == D(2024, 3, 15)
    assert sel.pick_expiry(chain, DteWindow(min=10, max=20)) is None
    assert sel.monthly_expiry(chain, min_dte=38) == D(2024, 3, 15)


def _ql_delta(right: str, strike: float, expiry: dt.date) -> float:
    import QuantLib as ql

    today = ql.Date(TODAY.day, TODAY.month, TODAY.year)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot = ql.QuoteHandle(ql.SimpleQuote(SPOT))
    r = ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, dc))
    q = ql.YieldTermStructureHandle(ql.FlatForward(today, DIV, dc))
    v = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), VOL, dc))
    process = ql.BlackScholesMertonProcess(spot, q, r, v)
    kind = ql.Option.Call if right == "C" else ql.Option.Put
    opt = ql.VanillaOption(ql.PlainVanillaPayoff(kind, strike),
                           ql.EuropeanExercise(ql.Date(expiry.day, expiry.month, expiry.year)))
    opt.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return float(opt.delta())


@pytest.mark.parametrize(("right", "target"), [("C", 0.30), ("P", 0.16), ("P", 0.30), ("C", 0.10)])
def test_strike_by_delta_matches_quantlib(chain: pd.DataFrame, right: str, target: float) -> None:
    expiry = D(2024, 2, 16)
    strikes = np.arange(3830.0, 5740.0, 5.0)
    ql_deltas = np.array([_ql_delta(right, k, expiry) for k in strikes])
    expected = strikes[int(np.argmin(np.abs(np.abs(ql_deltas) - target)))]
    got = sel.by_delta(chain, "^GSPC", expiry, right, target)  # type: ignore[arg-type]
    assert got is not None and got.strike == expected and got.right == right
    row = chain[(chain["expiry"] == expiry) & (chain["strike"] == expected) & (chain["right"] == right)].iloc[0]
    assert row["delta"] == pytest.approx(_ql_delta(right, expected, expiry), abs=1e-10)


def test_strike_by_moneyness_and_atm(chain: pd.DataFrame) -> None:
    e = D(2024, 2, 16)
    assert sel.by_moneyness(chain, "^GSPC", e, "P", SPOT, 0.05).strike == 4545.0  # 4783 x 0.95 = 4543.85
    assert sel.by_moneyness(chain, "^GSPC", e, "C", SPOT, 0.05).strike == 5020.0  # 5022.15
    assert sel.at_the_money(chain, "^GSPC", e, "C", SPOT).strike == 4785.0
    assert sel.at_the_money(chain, "^GSPC", e, "C", SPOT, "at_or_above").strike == 4785.0
    assert sel.at_the_money(chain, "^GSPC", e, "P", SPOT, "at_or_below").strike == 4780.0
    rule = StrikeRule(by="pct_otm", value=0.10)
    assert sel.by_rule(chain, "^GSPC", e, "P", SPOT, rule).strike == 4305.0  # 4304.7


def test_wings(chain: pd.DataFrame) -> None:
    e = D(2024, 2, 16)
    short_put = sel.at_the_money(chain, "^GSPC", e, "P", 4600.0)
    short_call = sel.at_the_money(chain, "^GSPC", e, "C", 4900.0)
    assert sel.wing(chain, short_put, 50.0).strike == 4550.0
    assert sel.wing(chain, short_call, 0.02 * SPOT).strike == 4995.0  # 4900 + 95.66 -> nearest listed 4995
    assert sel.wing(chain, short_put, 10_000.0).strike == chain["strike"].min()
