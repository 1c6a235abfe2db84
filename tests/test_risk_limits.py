"""Pre-trade limits: hand-computed figures per limit, and hypothesis properties of validate()."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlake.errors import ConfigError
from risk.book import book_max_loss, max_loss
from risk.limits import Account, ComboOrder, Limits, Order, Position, drawdown_multiplier, validate

EXP = dt.date(2026, 1, 16)
ACCT = Account(equity=100_000, cash=100_000, peak_equity=100_000)


def opt(right: str, strike: float, price: float, side: str, qty: float = 1, **kw: object) -> Order:
    return Order(
        symbol="SPY",
        right=right,
        strike=strike,
        expiry=EXP,
        price=price,
        side=side,
        qty=qty,
        underlying_price=400.0,
        **kw,
    )  # type: ignore[arg-type]


def test_max_loss_by_hand() -> None:
    assert max_loss([Order(symbol="AAPL", price=100, qty=10, side="buy")]) == 1_000  # to zero
    assert max_loss([Order(symbol="AAPL", price=100, qty=10, side="sell")]) == math.inf
    assert max_loss([Order(symbol="AAPL", price=100, qty=10, side="buy", stop_price=95)]) == 50
    assert max_loss([opt("C", 400, 5.0, "buy", 2)]) == 1_000  # premium 5 × 100 × 2
    assert max_loss([opt("P", 400, 5.0, "sell")]) == (400 - 5) * 100
    assert max_loss([opt("C", 400, 5.0, "sell")]) == math.inf
    # put credit spread 400/390 for 3.00 credit: (10 − 3) × 100
    assert max_loss([opt("P", 400, 5.0, "sell"), opt("P", 390, 2.0, "buy")]) == pytest.approx(700)
    # iron condor 370/380/420/430, credit (2−1)+(2−1) = 2: (10 − 2) × 100
    condor = [
        opt("P", 380, 2, "sell"),
        opt("P", 370, 1, "buy"),
        opt("C", 420, 2, "sell"),
        opt("C", 430, 1, "buy"),
    ]
    assert max_loss(condor) == pytest.approx(800)
    # covered call: 100 shares at 400 and a 420 call sold for 3: loses (400 − 3) × 100 if SPY goes to 0
    covered = [Order(symbol="SPY", price=400, qty=100, side="buy"), opt("C", 420, 3, "sell")]
    assert max_loss(covered) == pytest.approx(39_700)
    assert max_loss(condor, override=123.0) == 123.0
    # a book nets legs per underlying; explicit max_loss counts as given
    book = [
        Position(symbol="SPY", right="P", strike=400, expiry=EXP, price=5, qty=-2, underlying_price=400),
        Position(symbol="SPY", right="P", strike=390, expiry=EXP, price=2, qty=2, underlying_price=400),
        Position(symbol="GLD", price=120, qty=10, max_loss=300),
    ]
    assert book_max_loss(book) == pytest.approx(2 * 700 + 300)


def test_models_validate_fields() -> None:
    with pytest.raises(ConfigError, match="expiry"):
        Order(symbol="SPY", right="C", strike=400, price=1, qty=1, side="buy", underlying_price=400)
    with pytest.raises(ConfigError, match="underlying_price"):
        Order(symbol="SPY", right="C", strike=400, expiry=EXP, price=1, qty=1, side="buy")
    with pytest.raises(ConfigError, match=r"Order\.qty"):
        Order(symbol="SPY", price=1, qty=0, side="buy")
    with pytest.raises(ConfigError, match=r"Position\.qty"):
        Position(symbol="SPY", price=1, qty=0)
    with pytest.raises(ConfigError, match="symbol"):
        Order(symbol="no way!", price=1, qty=1, side="buy")
    with pytest.raises(ConfigError, match="drawdown_reduce_at must be below"):
        Limits(drawdown_reduce_at=0.3, drawdown_halt_at=0.2)
    with pytest.raises(ConfigError, match="max_gross_exposure"):
        Limits(max_gross_exposure=-1)
    assert opt("c", 400, 1, "BUY").multiplier == 100 and opt("C", 400, 1, "buy").right == "C"


def test_every_limit_by_hand_and_all_reasons_reported() -> None:
    """One order that breaks everything at once; each figure is computed here by hand."""
    book = [
        Position(symbol="MSFT", price=300, qty=100, sector="tech"),  # exposure 30,000
        Position(
            symbol="SPY",
            right="P",
            strike=380,
            expiry=EXP,
            price=4,
            qty=2,
            underlying_price=400,
            greeks={"delta": -0.25, "gamma": 0.01, "vega": 30.0},
        ),  # delta −0.25·400·200 = −20,000
    ]
    order = Order(symbol="AAPL", price=100, qty=1_500, side="buy", sector="tech")  # 150,000 notional
    limits = Limits(
        max_positions=2,
        max_risk_per_trade=0.02,
        max_portfolio_risk=1.0,
        max_gross_exposure=1.5,
        max_net_exposure=1.5,
        max_symbol_concentration=0.25,
        max_sector_concentration=0.5,
        max_delta=1.5,
        max_gamma=0.5,
        max_vega=0.5,
    )
    check = validate(order, Account(equity=100_000, peak_equity=112_000), book, limits)
    assert not check
    # gross (30,000 + 20,000 + 150,000)/100,000 = 2.0 > 1.5; net (30 − 20 + 150)/100 = 1.6 > 1.5;
    # AAPL 1.5 > 0.25; tech (30 + 150)/100 = 1.8 > 0.5; delta 1.6 > 1.5; 3 positions > 2;
    # trade risk 1.5 > 0.02 × 0.5 (drawdown 10.7 % ≥ 10 % halves the budget);
    # portfolio risk: MSFT 30,000 + put 800 + AAPL 150,000 = 1.808 > 1.0.
    # gamma: 0.01·400²·200/100 = 3,200 -> 0.032 (ok); vega 30·200/100 = 60 -> 0.0006 (ok)
    assert check.codes == {
        "max_gross_exposure",
        "max_net_exposure",
        "max_symbol_concentration",
        "max_sector_concentration",
        "max_delta",
        "max_positions",
        "max_risk_per_trade",
        "max_portfolio_risk",
    }
    m = check.metrics
    assert m["gross exposure"] == pytest.approx((0.5, 2.0))
    assert m["net exposure"] == pytest.approx((0.1, 1.6))
    assert m["portfolio risk"] == pytest.approx((0.308, 1.808))
    assert m["portfolio gamma"] == pytest.approx((0.032, 0.032))
    assert m["portfolio vega"] == pytest.approx((0.0006, 0.0006))
    assert check.size_multiplier == 0.5
    budget = next(b for b in check.reasons if b.code == "max_risk_per_trade")
    assert budget.limit == pytest.approx(0.01) and "reduced" in budget.message


def test_drawdown_reduce_and_halt() -> None:
    limits = Limits(drawdown_reduce_at=0.1, drawdown_reduce_factor=0.5, drawdown_halt_at=0.2)
    assert drawdown_multiplier(Account(equity=95, peak_equity=100), limits) == 1.0
    assert drawdown_multiplier(Account(equity=90, peak_equity=100), limits) == 0.5
    assert drawdown_multiplier(Account(equity=79, peak_equity=100), limits) == 0.0
    halted = Account(equity=75_000, peak_equity=100_000)
    buy = Order(symbol="SPY", price=400, qty=10, side="buy")
    check = validate(buy, halted, [], limits)
    assert check.codes == {"drawdown_halt_at"}
    # closing part of a position is always allowed, even halted
    book = [Position(symbol="SPY", price=400, qty=20)]
    assert validate(Order(symbol="SPY", price=400, qty=10, side="sell"), halted, book, limits)
    # ... but selling more than held opens a short: new risk
    assert not validate(Order(symbol="SPY", price=400, qty=30, side="sell"), halted, book, limits)


def test_reducing_an_existing_breach_is_allowed_but_deepening_it_is_not() -> None:
    book = [Position(symbol="SPY", price=400, qty=400)]  # gross 1.6 > 1.0 already
    acct = Account(equity=100_000)
    assert validate(Order(symbol="SPY", price=400, qty=100, side="sell"), acct, book)
    check = validate(Order(symbol="QQQ", price=300, qty=1, side="buy"), acct, book)
    assert check.codes == {"max_gross_exposure", "max_net_exposure"}


def test_combo_risk_and_greeks() -> None:
    g_short = {"delta": -0.5, "gamma": 0.02, "vega": 40.0}
    g_long = {"delta": -0.3, "gamma": 0.015, "vega": 35.0}
    spread = ComboOrder(
        legs=(opt("P", 400, 5, "sell", greeks=g_short), opt("P", 390, 2, "buy", greeks=g_long))
    )
    # risk 700 = 0.7 % of equity; dollar delta (0.5 − 0.3)·400·100 = 8,000 -> 0.08;
    # vega (−40 + 35)·100/100 = −5 per point -> 0.00005; gamma (−0.02 + 0.015)·400²·100/100 = −800 -> 0.008
    ok = validate(spread, ACCT, [], Limits(max_risk_per_trade=0.01, max_delta=0.1))
    assert ok and ok.metrics["trade_risk"][1] == pytest.approx(0.007)
    assert ok.metrics["portfolio delta"][1] == pytest.approx(0.08)
    bad = validate(spread, ACCT, [], Limits(max_risk_per_trade=0.005, max_delta=0.05, max_gamma=0.005))
    assert bad.codes == {"max_risk_per_trade", "max_delta", "max_gamma"}
    # an explicit max loss on the combo wins (e.g. a calendar)
    stated = spread.model_copy(update={"max_loss": 200.0})
    assert validate(stated, ACCT, [], Limits(max_risk_per_trade=0.005))


def test_missing_data_fails_closed_or_warns() -> None:
    no_greeks = opt("C", 400, 5, "buy")
    check = validate(no_greeks, ACCT, [], Limits(max_delta=1.0))
    assert check.codes == {"max_delta"} and "cannot check" in check.summary()
    lenient = validate(no_greeks, ACCT, [], Limits(max_delta=1.0, fail_on_missing_data=False))
    assert lenient and lenient.warnings
    check = validate(
        Order(symbol="SPY", price=1, qty=1, side="buy"), ACCT, [], Limits(max_sector_concentration=0.5)
    )
    assert check.codes == {"max_sector_concentration"}


def test_correlation_to_the_book() -> None:
    rng = np.random.default_rng(7)
    market = rng.normal(0, 0.01, 100)
    returns = pd.DataFrame(
        {
            "AAA": market + rng.normal(0, 0.002, 100),
            "BBB": market + rng.normal(0, 0.002, 100),
            "CCC": rng.normal(0, 0.01, 100),
        },
        index=pd.bdate_range("2024-01-01", periods=100),
    )
    book = [Position(symbol="AAA", price=50, qty=100)]
    limits = Limits(max_correlation=0.7)
    expected = np.corrcoef(returns["BBB"].tail(63), returns["AAA"].tail(63))[0, 1]
    assert expected > 0.9
    long_bbb = validate(Order(symbol="BBB", price=10, qty=10, side="buy"), ACCT, book, limits, returns)
    assert long_bbb.codes == {"max_correlation"}
    assert long_bbb.metrics["correlation"][1] == pytest.approx(expected)
    # a short in BBB hedges the book: correlation ≈ −expected
    assert validate(Order(symbol="BBB", price=10, qty=10, side="sell"), ACCT, book, limits, returns)
    assert validate(Order(symbol="CCC", price=10, qty=10, side="buy"), ACCT, book, limits, returns)
    missing = validate(Order(symbol="DDD", price=10, qty=10, side="buy"), ACCT, book, limits, returns)
    assert missing.codes == {"max_correlation"} and "DDD" in missing.summary()


# ------------------------------------------------------------------------------------ properties
SYMS = ("AAA", "BBB", "CCC")
stock_positions = st.lists(
    st.builds(
        lambda s, q, p: Position(symbol=s, qty=q, price=p),
        st.sampled_from(SYMS),
        st.integers(-500, 500).filter(bool).map(float),
        st.floats(1, 500),
    ),
    max_size=5,
    unique_by=lambda p: p.symbol,
)
stock_orders = st.builds(
    lambda s, q, p, side: Order(symbol=s, qty=q, price=p, side=side),
    st.sampled_from((*SYMS, "DDD")),
    st.integers(1, 800).map(float),
    st.floats(1, 500),
    st.sampled_from(("buy", "sell")),
)


def _gross(positions: list[Position], order: Order | None, equity: float) -> float:
    """Gross exposure written out independently: net notional per symbol, absolute, summed."""
    per: dict[str, float] = {}
    for p in positions:
        per[p.symbol] = per.get(p.symbol, 0.0) + p.qty * p.price
    if order is not None:
        per[order.symbol] = per.get(order.symbol, 0.0) + order.signed_qty * order.price
    return sum(abs(v) for v in per.values()) / equity


@settings(max_examples=250, deadline=None)
@given(book=stock_positions, order=stock_orders, limit=st.floats(0.1, 5.0), equity=st.floats(1e4, 1e6))
def test_never_passes_an_order_that_pushes_gross_exposure_over_the_limit(
    book: list[Position], order: Order, limit: float, equity: float
) -> None:
    limits = Limits.unlimited().model_copy(update={"max_gross_exposure": limit})
    check = validate(order, Account(equity=equity), book, limits)
    before, after = _gross(book, None, equity), _gross(book, order, equity)
    breaches = after > limit * (1 + 1e-9) + 1e-9 and after > before + 1e-9
    assert check.passed == (not breaches)
    assert ("max_gross_exposure" in check.codes) == breaches


@settings(max_examples=60, deadline=None)
@given(
    price=st.floats(1, 1000),
    qty=st.integers(1, 1000).map(float),
    stop_pct=st.floats(0.01, 0.5),
    use_option=st.booleans(),
    equity=st.floats(1e3, 1e7),
)
def test_defined_risk_order_on_empty_book_with_generous_limits_passes(
    price: float, qty: float, stop_pct: float, use_option: bool, equity: float
) -> None:
    huge = 1e12
    limits = Limits(
        max_positions=10,
        max_risk_per_trade=huge,
        max_portfolio_risk=huge,
        max_gross_exposure=huge,
        max_net_exposure=huge,
        max_symbol_concentration=huge,
        max_sector_concentration=huge,
        max_delta=huge,
        max_gamma=huge,
        max_vega=huge,
        max_correlation=1.0,
    )
    if use_option:
        order = Order(
            symbol="SPY",
            right="C",
            strike=price,
            expiry=EXP,
            price=price / 20,
            qty=qty,
            side="buy",
            underlying_price=price,
            sector="etf",
            greeks={"delta": 0.5, "gamma": 0.01, "vega": 20},
        )
    else:
        order = Order(
            symbol="SPY", price=price, qty=qty, side="buy", stop_price=price * (1 - stop_pct), sector="etf"
        )
    check = validate(order, Account(equity=equity, peak_equity=equity), [], limits)
    assert check.passed, check.summary()
    assert check.reasons == () and check.size_multiplier == 1.0


LIMIT_FIGURES = (
    "max_positions",
    "max_risk_per_trade",
    "max_portfolio_risk",
    "max_gross_exposure",
    "max_net_exposure",
    "max_symbol_concentration",
    "max_sector_concentration",
    "max_delta",
)


@settings(max_examples=100, deadline=None)
@given(
    price=st.floats(5, 500),
    qty=st.integers(1, 2000).map(float),
    stop_frac=st.floats(0.02, 0.3),
    broken=st.sets(st.sampled_from(LIMIT_FIGURES)),
    equity=st.floats(1e4, 1e6),
)
def test_failure_reasons_are_complete(
    price: float, qty: float, stop_frac: float, broken: set[str], equity: float
) -> None:
    """Set each chosen limit just below the order's figure and the others just above: the reasons must be
    exactly the chosen set.  Figures for a long stock order with a stop on an empty book, by hand:
    1 position; risk = qty·price·stop_frac/equity; everything else = qty·price/equity."""
    notional = qty * price / equity
    risk = qty * price * stop_frac / equity
    figure = {name: notional for name in LIMIT_FIGURES}
    figure["max_risk_per_trade"] = figure["max_portfolio_risk"] = risk
    values = {}
    for name in LIMIT_FIGURES:
        if name == "max_positions":
            values[name] = None if name in broken else 1  # 1 position fits; "break" below by adding one held
            continue
        values[name] = figure[name] * (0.9 if name in broken else 1.1)
    limits = Limits.unlimited().model_copy(update=values)
    book: list[Position] = []
    if "max_positions" in broken:  # a held position (with its own tiny risk) makes the order the 2nd of max 1
        limits = limits.model_copy(update={"max_positions": 1})
        book = [Position(symbol="ZZZ", qty=1, price=1e-6, max_loss=0.0, sector="other")]
    order = Order(
        symbol="SPY", price=price, qty=qty, side="buy", stop_price=price * (1 - stop_frac), sector="etf"
    )
    check = validate(order, Account(equity=equity), book, limits)
    assert check.codes == broken, check.summary()
    assert check.passed == (not broken)


LEG = st.tuples(
    st.sampled_from(["AAA", "BBB", "CCC"]),
    st.sampled_from([None, "C", "P"]),
    st.sampled_from([90.0, 100.0, 110.0]),
    st.integers(-5, 5).filter(bool).map(float),
    st.floats(0.5, 120.0),
)


@settings(max_examples=150, deadline=None)
@given(legs=st.lists(LEG, min_size=1, max_size=12))
def test_book_max_loss_equals_the_per_underlying_payoff_minimum(legs: list[tuple]) -> None:  # type: ignore[type-arg]
    """The vectorized book maximum loss against a brute force: per underlying, the P&L at expiry on a fine
    price grid (0 .. 3 × the highest strike) and the slope beyond it (unlimited if negative)."""
    book = [
        Position(symbol=s, right=r, strike=k if r else None, expiry=EXP if r else None, qty=q, price=p,
                 underlying_price=100.0 if r else None)
        for s, r, k, q, p in legs
    ]  # fmt: skip
    want = 0.0
    for sym in {s for s, *_ in legs}:
        group = [p for p in book if p.symbol == sym]
        grid = np.concatenate([np.linspace(0, 330, 3301), [90.0, 100.0, 110.0]])
        pnl = np.zeros_like(grid)
        slope = 0.0
        for p in group:
            mult = p.multiplier
            if p.right is None:
                value, dslope = grid, 1.0
            elif p.right == "C":
                value, dslope = np.maximum(grid - p.strike, 0.0), 1.0
            else:
                value, dslope = np.maximum(p.strike - grid, 0.0), 0.0
            pnl += (value - p.price) * p.qty * mult
            slope += dslope * p.qty * mult
        want += math.inf if slope < -1e-12 else max(0.0, -pnl.min())
    got = book_max_loss(book)
    assert got == want or got == pytest.approx(want, rel=1e-9, abs=1e-6)


def test_a_defined_risk_spread_counts_by_its_max_loss_not_its_legs_notional() -> None:
    """Issue 12: a 5-wide put spread on a $450 underlying in a $10k account risks 500 less the credit, not
    2 × 45,000 of notional (9× gross leverage without Greeks, 3.6× with them)."""
    acct = Account(equity=10_000, cash=10_000, peak_equity=10_000)
    exp = dt.date(2026, 2, 20)

    def leg(strike: float, price: float, side: str, **kw: object) -> Order:
        return Order(symbol="SPY", right="P", strike=strike, expiry=exp, price=price, side=side, qty=1,
                     underlying_price=450.0, **kw)  # type: ignore[arg-type]

    spread = ComboOrder(legs=(leg(450, 4.6, "sell"), leg(445, 3.0, "buy")))
    check = validate(spread, acct, [], Limits())
    assert check, check.summary()
    assert check.metrics["gross exposure"][1] == pytest.approx((5 - 1.6) * 100 / 10_000)  # 0.034
    assert check.metrics["trade_risk"][1] == pytest.approx(0.034)
    with_greeks = ComboOrder(legs=(leg(450, 4.6, "sell", greeks={"delta": -0.45}),
                                   leg(445, 3.0, "buy", greeks={"delta": -0.35})))
    check = validate(with_greeks, acct, [], Limits())
    assert check and check.metrics["gross exposure"][1] == pytest.approx(0.034)
    # net exposure stays delta-adjusted: (0.45 − 0.35) · 450 · 100 = 4,500 -> 0.45
    assert check.metrics["net exposure"][1] == pytest.approx(0.45)
    # the same spread already held (legs in the book) is counted the same way
    held = [Position(symbol="SPY", right="P", strike=450, expiry=exp, price=4.6, qty=-1, underlying_price=450.0),
            Position(symbol="SPY", right="P", strike=445, expiry=exp, price=3.0, qty=1, underlying_price=450.0)]
    again = validate(ComboOrder(legs=(leg(440, 2.0, "sell"), leg(435, 1.2, "buy"))), acct, held, Limits())
    assert again.metrics["gross exposure"][0] == pytest.approx(0.034)
    # book max loss of both spreads: payoff minimum at S = 0: 340 + (5 − 0.8)·100 = 760
    assert again.metrics["gross exposure"][1] == pytest.approx(0.076)
    # a naked short put is still a leveraged position: (450 − 4.6) · 100 = 44,540 of risk, 4.45× equity
    naked = validate(leg(450, 4.6, "sell"), acct, [], Limits())
    assert naked.codes == {"max_gross_exposure", "max_net_exposure"}
    # a long put alone keeps its delta-adjusted exposure (a hedge is not counted by its premium)
    long_put = validate(leg(445, 3.0, "buy", greeks={"delta": -0.35}), acct, [], Limits.unlimited())
    assert long_put.metrics["gross exposure"][1] == pytest.approx(0.35 * 450 * 100 / 10_000)


def test_portfolio_theta_limit() -> None:
    """Theta per day of the book: Σ theta (per year) · qty · 100 / 365, over equity."""
    short_put = opt("P", 400, 5.0, "sell", 10, greeks={"delta": -0.4, "theta": -36.5})  # short: +0.1/day/share
    check = validate(short_put, ACCT, [], Limits.unlimited().model_copy(update={"max_theta": 0.001}))
    # 10 contracts · 100 · 36.5 / 365 = 100 per day -> 0.001 of 100,000: at the limit, passes
    assert check and check.metrics["portfolio theta"][1] == pytest.approx(0.001)
    bigger = short_put.model_copy(update={"qty": 11})
    assert validate(bigger, ACCT, [], Limits.unlimited().model_copy(update={"max_theta": 0.001})).codes == {
        "max_theta"}
