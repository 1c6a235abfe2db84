"""Engine mechanics with hand-worked numbers: fills at bid/ask, commissions, a two-trade example, expiry
(cash settlement, worthless expiry, exercise and assignment into shares), margin rejection, limit orders,
interest on cash.  Quotes are written out in the tests; every expected number is computed here by hand."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from backtests.options.config import Commissions, FillConfig, InterestConfig, MarginConfig
from backtests.options.contracts import Contract
from backtests.options.engine import EngineSettings
from backtests.options.orders import OptionOrder, OrderLeg, ShareOrder
from backtests.options.runner import BacktestResult, simulate
from backtests.options.strategies.scripted import ScriptedStrategy, close_tag
from backtests.options.synthetic import QuoteTable

D = dt.date
NO_FEES = Commissions(per_contract=0.0, per_share=0.0)


def bars(closes: dict[dt.date, float], rate: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"close": list(closes.values()), "rate": rate}, index=pd.to_datetime(list(closes)))


def quotes(rows: list[tuple[dt.date, Contract, float, float]]) -> QuoteTable:
    return QuoteTable(pd.DataFrame([
        {"quote_date": d, "expiry": c.expiry, "strike": c.strike, "right": c.right, "bid": b, "ask": a}
        for d, c, b, a in rows
    ]))


def run(closes: dict[dt.date, float], table: QuoteTable, script: dict, cash: float, rate: float = 0.0,
        **kw: object) -> BacktestResult:
    settings = EngineSettings(underlying=kw.pop("underlying", "^GSPC"),  # type: ignore[arg-type]
                              interest=InterestConfig(on_cash=rate != 0.0), **kw)  # type: ignore[arg-type]
    strategy = ScriptedStrategy(script, delay=settings.delay)
    return simulate(bars(closes, rate), table, strategy, settings, cash)


def open_(tag: str, units: int, *legs: tuple[Contract, int]) -> OptionOrder:
    return OptionOrder(tuple(OrderLeg(c, r) for c, r in legs), units, tag)


# ------------------------------------------------------------------------------------------ two trades
CALL = Contract("^GSPC", D(2024, 2, 16), 4700.0, "C")
PUT = Contract("^GSPC", D(2024, 2, 16), 4600.0, "P")
DAYS = [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4), D(2024, 1, 5), D(2024, 1, 8), D(2024, 1, 9)]
CLOSES = dict(zip(DAYS, [4700.0, 4710.0, 4720.0, 4730.0, 4720.0, 4710.0], strict=True))
CALL_Q = [(60.00, 61.00), (62.00, 63.00), (65.50, 66.50), (70.00, 71.00), (68.00, 69.00), (67.00, 68.00)]
PUT_Q = [(40.00, 41.00), (39.00, 40.00), (37.00, 38.00), (35.00, 36.00), (36.50, 37.50), (38.00, 39.00)]
TWO_TRADE_QUOTES = [(d, CALL, *q) for d, q in zip(DAYS, CALL_Q, strict=True)] + [
    (d, PUT, *q) for d, q in zip(DAYS, PUT_Q, strict=True)]


@pytest.fixture(scope="module")
def two_trades() -> BacktestResult:
    script = {
        DAYS[0]: [open_("long_call", 2, (CALL, 1))],  # decided Jan 2, fills Jan 3 at the ask 63.00
        DAYS[2]: [close_tag("long_call")],  # decided Jan 4, fills Jan 5 at the bid 70.00
        DAYS[3]: [open_("short_put", 3, (PUT, -1))],  # decided Jan 5, fills Jan 8 at the bid 36.50
        DAYS[4]: [close_tag("short_put")],  # decided Jan 8, fills Jan 9 at the ask 39.00
    }
    return run(CLOSES, quotes(TWO_TRADE_QUOTES), script, 2_000_000.0,
               commissions=Commissions(per_contract=0.65, per_share=0.0))


def test_two_trade_example_pnl_by_hand(two_trades: BacktestResult) -> None:
    # trade 1: 2 calls bought at 63.00, sold at 70.00; 0.65 per contract on each side
    pnl_1 = (70.00 - 63.00) * 2 * 100 - 2 * 0.65 - 2 * 0.65  # = 1397.40
    # trade 2: 3 puts sold at 36.50, bought back at 39.00
    pnl_2 = (36.50 - 39.00) * 3 * 100 - 3 * 0.65 - 3 * 0.65  # = -753.90
    assert pnl_1 == pytest.approx(1397.40) and pnl_2 == pytest.approx(-753.90)
    pos = two_trades.positions.set_index("tag")
    assert pos.loc["long_call", "pnl"] == pytest.approx(pnl_1, abs=1e-9)
    assert pos.loc["short_put", "pnl"] == pytest.approx(pnl_2, abs=1e-9)
    assert two_trades.metrics["final_equity"] == pytest.approx(2_000_000.0 + pnl_1 + pnl_2, abs=1e-6)
    assert two_trades.metrics["fees"] == pytest.approx(4 * 0.65 + 6 * 0.65)


def test_two_trade_example_fills_next_bar_at_bid_ask(two_trades: BacktestResult) -> None:
    t = two_trades.trades.set_index("tag")
    assert (t.loc["long_call", "entry_date"], t.loc["long_call", "entry_price"]) == (DAYS[1], 63.00)
    assert (t.loc["long_call", "exit_date"], t.loc["long_call", "exit_price"]) == (DAYS[3], 70.00)
    assert (t.loc["short_put", "entry_date"], t.loc["short_put", "entry_price"]) == (DAYS[4], 36.50)
    assert (t.loc["short_put", "exit_date"], t.loc["short_put", "exit_price"]) == (DAYS[5], 39.00)
    assert t.loc["long_call", "qty"] == 2 and t.loc["short_put", "qty"] == -3
    assert t.loc["long_call", "entry_fees"] == pytest.approx(1.30)
    # IV and delta recorded at entry and exit: a call's delta in (0, 1), a put's in (-1, 0)
    assert 0 < t.loc["long_call", "entry_delta"] < 1 and -1 < t.loc["short_put", "exit_delta"] < 0
    assert 0.03 < t.loc["long_call", "entry_iv"] < 1.0


def test_daily_equity_marks_at_mid(two_trades: BacktestResult) -> None:
    d = two_trades.daily
    # Jan 4: 2 calls held (bought at 63.00 + 1.30 fees), marked at mid (65.50 + 66.50) / 2 = 66.00
    expected = 2_000_000.0 - 2 * 100 * 63.00 - 1.30 + 2 * 100 * 66.00
    assert d.loc[DAYS[2], "equity"] == pytest.approx(expected)
    assert d.loc[DAYS[2], "options_value"] == pytest.approx(13_200.0)


def test_mid_fills_with_slippage() -> None:
    script = {DAYS[0]: [open_("c", 1, (CALL, 1))], DAYS[2]: [close_tag("c")]}
    res = run(CLOSES, quotes(TWO_TRADE_QUOTES), script, 1_000_000.0, commissions=NO_FEES,
              fill=FillConfig(mode="mid", slippage=0.05))
    t = res.trades.iloc[0]
    assert t["entry_price"] == pytest.approx(62.50 + 0.05)  # mid of 62/63, plus slippage on a buy
    assert t["exit_price"] == pytest.approx(70.50 - 0.05)  # mid of 70/71, minus slippage on a sale
    assert t["pnl"] == pytest.approx((70.45 - 62.55) * 100)


# ------------------------------------------------------------------------------------------ commissions
def test_commissions_per_contract_per_share_and_minimum() -> None:
    script = {DAYS[0]: [ShareOrder(150, "buy"), open_("c", 3, (CALL, 1))]}
    fees = Commissions(per_contract=0.65, per_share=0.005, min_per_order=1.00)
    res = run(CLOSES, quotes(TWO_TRADE_QUOTES), script, 1_000_000.0, commissions=fees)
    f = res.fills.set_index("action")
    assert f.loc["shares", "fees"] == pytest.approx(1.00)  # 150 * 0.005 = 0.75 < minimum 1.00
    assert f.loc["open", "fees"] == pytest.approx(3 * 0.65)  # 1.95 > minimum
    # cash: 150 shares at the close 4710 and 3 calls at the ask 63.00, plus fees
    assert res.daily.loc[DAYS[1], "cash"] == pytest.approx(1_000_000 - 150 * 4710 - 3 * 100 * 63.00 - 1.00 - 1.95)


# ------------------------------------------------------------------------------------------ expiry
EXP = D(2024, 2, 16)  # third Friday


def test_index_options_cash_settle_itm_and_expire_otm() -> None:
    days = [D(2024, 2, 13), D(2024, 2, 14), D(2024, 2, 15), D(2024, 2, 16), D(2024, 2, 20)]
    closes = dict(zip(days, [5000.0, 5010.0, 4990.0, 5005.0, 5020.0], strict=True))
    long_call_itm = Contract("^GSPC", EXP, 4900.0, "C")
    short_call_otm = Contract("^GSPC", EXP, 5100.0, "C")
    short_put_itm = Contract("^GSPC", EXP, 5100.0, "P")
    long_put_otm = Contract("^GSPC", EXP, 4900.0, "P")
    q = {long_call_itm: (101.0, 103.0), short_call_otm: (3.0, 4.0), short_put_itm: (99.0, 101.0),
         long_put_otm: (1.0, 2.0)}
    table = quotes([(d, c, b, a) for d in days[:4] for c, (b, a) in q.items()])
    script = {days[0]: [open_("lc", 1, (long_call_itm, 1)), open_("sc", 1, (short_call_otm, -1)),
                        open_("sp", 1, (short_put_itm, -1)), open_("lp", 1, (long_put_otm, 1))]}
    res = run(closes, table, script, 1_000_000.0, commissions=NO_FEES, delay="same_bar")
    t = res.trades.set_index("tag")
    # settlement at the expiry date's close 5005: calls 4900 ITM by 105, puts 5100 ITM by 95
    assert (t.loc["lc", "exit_action"], t.loc["lc", "exit_price"], t.loc["lc", "exit_date"]) == (
        "cash_settle", 105.0, EXP)
    assert (t.loc["sp", "exit_action"], t.loc["sp", "exit_price"]) == ("cash_settle", 95.0)
    assert (t.loc["sc", "exit_action"], t.loc["sc", "exit_price"]) == ("expire", 0.0)
    assert (t.loc["lp", "exit_action"], t.loc["lp", "exit_price"]) == ("expire", 0.0)
    premiums = -103.0 + 3.0 + 99.0 - 2.0  # paid ask on buys, got bid on sales (per share)
    settlement = 105.0 - 95.0
    assert res.metrics["final_equity"] == pytest.approx(1_000_000 + 100 * (premiums + settlement))
    assert t.loc["lc", "pnl"] == pytest.approx(100 * (105.0 - 103.0))
    assert t.loc["sp", "pnl"] == pytest.approx(-100 * (95.0 - 99.0))
    assert res.daily.loc[days[-1], "open_positions"] == 0 and res.daily.loc[days[-1], "shares"] == 0


def test_expiry_on_a_holiday_settles_the_trading_day_before() -> None:
    good_friday = D(2025, 4, 18)  # third Friday of April 2025; the exchange was closed
    days = [D(2025, 4, 15), D(2025, 4, 16), D(2025, 4, 17), D(2025, 4, 21)]
    closes = dict(zip(days, [5400.0, 5300.0, 5280.0, 5150.0], strict=True))
    put = Contract("^GSPC", good_friday, 5350.0, "P")
    table = quotes([(d, put, 60.0, 62.0) for d in days[:3]])
    res = run(closes, table, {days[0]: [open_("p", 1, (put, 1))]}, 100_000.0, commissions=NO_FEES,
              delay="same_bar")
    t = res.trades.iloc[0]
    assert t["exit_date"] == D(2025, 4, 17) and t["exit_price"] == pytest.approx(5350.0 - 5280.0)


def test_short_put_assigned_into_shares_at_the_strike() -> None:
    days = [D(2024, 2, 12), D(2024, 2, 14), D(2024, 2, 16), D(2024, 2, 20)]
    closes = dict(zip(days, [51.0, 49.0, 46.0, 47.0], strict=True))
    put = Contract("XYZ", EXP, 50.0, "P")
    table = quotes([(days[0], put, 1.20, 1.30), (days[1], put, 1.90, 2.00), (days[2], put, 3.95, 4.05)])
    res = run(closes, table, {days[0]: [open_("csp", 2, (put, -1))]}, 20_000.0, underlying="XYZ",
              settlement="physical", delay="same_bar",
              commissions=Commissions(per_contract=0.65, per_share=0.005, exercise_fee=5.0))
    t = res.trades.iloc[0]
    assert (t["exit_action"], t["exit_price"], t["exit_fees"]) == ("assign", 4.0, 10.0)  # intrinsic 50 - 46
    d = res.daily
    assert d.loc[EXP, "shares"] == 200  # 2 contracts x 100 delivered to us
    # cash: premium 2 x 100 x 1.20, commission 1.30, then 200 shares paid at the strike 50, exercise fees 10
    cash = 20_000 + 240.0 - 1.30 - 200 * 50.0 - 10.0
    assert d.loc[EXP, "cash"] == pytest.approx(cash)
    assert d.loc[EXP, "equity"] == pytest.approx(cash + 200 * 46.0)
    assert res.positions.iloc[0]["pnl"] == pytest.approx(2 * 100 * (1.20 - 4.00) - 1.30 - 10.0)
    assert d.loc[days[-1], "equity"] == pytest.approx(cash + 200 * 47.0)  # the shares then move with XYZ


def test_covered_call_called_away_and_protective_put_exercised() -> None:
    days = [D(2024, 2, 12), D(2024, 2, 16), D(2024, 2, 20)]
    closes = dict(zip(days, [50.0, 55.0, 56.0], strict=True))
    call = Contract("XYZ", EXP, 52.0, "C")
    table = quotes([(days[0], call, 1.00, 1.10)])
    res = run(closes, table, {days[0]: [ShareOrder(100, "buy"), open_("cc", 1, (call, -1))]}, 10_000.0,
              underlying="XYZ", settlement="physical", delay="same_bar", commissions=NO_FEES)
    assert res.trades.iloc[0]["exit_action"] == "assign"
    assert res.daily.loc[EXP, "shares"] == 0
    # bought 100 at 50, sold the call at 1.00, delivered the shares at 52
    assert res.daily.loc[EXP, "cash"] == pytest.approx(10_000 - 5_000 + 100 + 5_200)

    closes = dict(zip(days, [50.0, 40.0, 41.0], strict=True))
    put = Contract("XYZ", EXP, 48.0, "P")
    table = quotes([(days[0], put, 0.80, 0.90)])
    res = run(closes, table, {days[0]: [ShareOrder(100, "buy"), open_("pp", 1, (put, 1))]}, 10_000.0,
              underlying="XYZ", settlement="physical", delay="same_bar", commissions=NO_FEES)
    assert res.trades.iloc[0]["exit_action"] == "exercise"
    assert res.daily.loc[EXP, "shares"] == 0
    assert res.daily.loc[EXP, "cash"] == pytest.approx(10_000 - 5_000 - 90 + 4_800)  # shares sold at 48


def test_long_call_exercised_into_shares() -> None:
    days = [D(2024, 2, 12), D(2024, 2, 16)]
    call = Contract("XYZ", EXP, 45.0, "C")
    table = quotes([(days[0], call, 5.90, 6.10)])
    res = run(dict(zip(days, [50.0, 53.0], strict=True)), table, {days[0]: [open_("lc", 3, (call, 1))]},
              50_000.0, underlying="XYZ", settlement="physical", delay="same_bar", commissions=NO_FEES)
    assert res.daily.loc[EXP, "shares"] == 300
    assert res.daily.loc[EXP, "cash"] == pytest.approx(50_000 - 3 * 610.0 - 300 * 45.0)


# ------------------------------------------------------------------------------------------ margin
def test_cash_secured_put_beyond_buying_power_is_rejected() -> None:
    days = [D(2024, 1, 2), D(2024, 1, 3)]
    put = Contract("XYZ", EXP, 95.0, "P")
    table = quotes([(d, put, 2.00, 2.10) for d in days])
    script = {days[0]: [open_("p1", 1, (put, -1)), open_("p2", 1, (put, -1))]}
    res = run(dict(zip(days, [100.0, 100.0], strict=True)), table, script, 10_000.0, underlying="XYZ",
              settlement="physical", delay="same_bar", commissions=NO_FEES)
    # first put: needs 95 x 100 = 9,500 in cash, the account has 10,000 + 200 premium: accepted
    # second: needs 19,000 against 10,400: rejected, nothing opened
    assert list(res.fills["tag"]) == ["p1"]
    rej = res.rejections.iloc[0]
    assert (rej["tag"], rej["reason"]) == ("p2", "insufficient buying power")
    assert rej["requirement"] == pytest.approx(2 * (9_500.0 - 205.0))  # each: 100 K - mark (mid 2.05)
    # i.e. cash after the sale (10,000 + 2 x 200) minus the 2 x 9,500 it must hold
    assert rej["excess_after"] == pytest.approx(10_400.0 - 19_000.0)
    assert res.metrics["rejections"] == 1


@pytest.mark.parametrize(("cash", "accepted"), [(450.0, True), (350.0, False)])
def test_put_credit_spread_needs_width_minus_credit(cash: float, accepted: bool) -> None:
    days = [D(2024, 1, 2), D(2024, 1, 3)]
    short, long = Contract("XYZ", EXP, 95.0, "P"), Contract("XYZ", EXP, 90.0, "P")
    table = quotes([(d, c, b, a) for d in days for c, b, a in ((short, 2.00, 2.00), (long, 1.00, 1.00))])
    script = {days[0]: [open_("pcs", 1, (long, 1), (short, -1))]}
    res = run(dict(zip(days, [100.0, 100.0], strict=True)), table, script, cash, underlying="XYZ",
              settlement="physical", delay="same_bar", commissions=NO_FEES)
    # width 5 - credit 1 = 4 per share: 400 of buying power
    assert (len(res.rejections) == 0) == accepted
    assert res.daily.iloc[0]["requirement"] == pytest.approx(400.0 if accepted else 0.0)


def test_naked_call_reg_t_requirement() -> None:
    days = [D(2024, 1, 2), D(2024, 1, 3)]
    call = Contract("XYZ", EXP, 110.0, "C")
    table = quotes([(d, call, 1.00, 1.10) for d in days])
    res = run(dict(zip(days, [100.0, 100.0], strict=True)), table, {days[0]: [open_("nc", 2, (call, -1))]},
              100_000.0, underlying="XYZ", settlement="physical", delay="same_bar", commissions=NO_FEES,
              margin=MarginConfig())
    # Reg-T per share: premium 1.05 (mark) + max(20% x 100 - 10 OTM, 10% x 100) = 1.05 + 10
    # on equity the short call's value (-1.05) already counts, so the requirement is 2 x 100 x 10 = 2,000
    assert res.daily.iloc[0]["requirement"] == pytest.approx(2 * 100 * 10.0)
    assert res.daily.iloc[0]["excess"] == pytest.approx(100_000 + 200 * 1.00 - 200 * 1.05 - 2_000.0)


# ------------------------------------------------------------------------------------------ limit orders
@pytest.mark.parametrize(("rule", "filled"), [("natural", False), ("mid", True)])
def test_limit_order_fill_rule(rule: str, filled: bool) -> None:
    days = [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4)]
    table = quotes([(days[0], CALL, 10.00, 11.00), (days[1], CALL, 9.90, 11.00), (days[2], CALL, 9.00, 9.50)])
    fill = FillConfig(mode="limit", limit_offset=0.0, limit_fill=rule, limit_ttl_bars=1)  # type: ignore[arg-type]
    # limit = Jan 2's mid 10.50; on Jan 3 the mid is 10.45 (<= limit) but the ask 11.00 (> limit)
    res = run(dict(zip(days, [4700.0] * 3, strict=True)), table, {days[0]: [open_("c", 1, (CALL, 1))]},
              1_000_000.0, commissions=NO_FEES, fill=fill)
    if filled:
        assert len(res.fills) == 1 and res.fills.iloc[0]["price"] == pytest.approx(10.50)
        assert res.fills.iloc[0]["date"] == days[1]
    else:  # cancelled after one bar, not filled on Jan 4 although the ask fell to 9.50
        assert res.fills.empty and res.metrics["unfilled_limits"] == 1


def test_limit_package_price_is_split_over_legs() -> None:
    days = [D(2024, 1, 2), D(2024, 1, 3)]
    table = quotes([(d, c, b, a) for d in days for c, b, a in ((CALL, 10.0, 11.0), (PUT, 4.0, 4.4))])
    fill = FillConfig(mode="limit", limit_offset=0.5, limit_fill="natural", limit_ttl_bars=1)
    # buy call, sell put: mid net 10.50 - 4.20 = 6.30, natural 11.00 - 4.00 = 7.00, limit 6.65 (same bar:
    # natural 7.00 > 6.65, not filled; next bar the same quotes: cancelled)
    res = run(dict(zip(days, [4700.0] * 2, strict=True)), table,
              {days[0]: [open_("rr", 1, (CALL, 1), (PUT, -1))]}, 1_000_000.0, commissions=NO_FEES, fill=fill,
              delay="same_bar")
    assert res.fills.empty
    fill = FillConfig(mode="limit", limit_offset=1.0, limit_fill="natural", limit_ttl_bars=1)
    res = run(dict(zip(days, [4700.0] * 2, strict=True)), table,
              {days[0]: [open_("rr", 1, (CALL, 1), (PUT, -1))]}, 1_000_000.0, commissions=NO_FEES, fill=fill,
              delay="same_bar")
    px = res.fills.set_index("right")["price"]
    assert px["C"] - px["P"] == pytest.approx(7.00)  # the package at its natural price


# ------------------------------------------------------------------------------------------ interest
def test_interest_on_cash_over_a_weekend() -> None:
    days = [D(2024, 1, 5), D(2024, 1, 8)]  # Friday -> Monday: 3 calendar days
    res = run(dict(zip(days, [100.0, 100.0], strict=True)), quotes([]), {}, 100_000.0, rate=0.05,
              underlying="XYZ")
    assert res.daily.loc[days[1], "cash"] == pytest.approx(100_000 * math.exp(0.05 * 3 / 365))


def test_limit_gapped_through_fills_at_the_better_natural_price() -> None:
    days = [D(2024, 1, 2), D(2024, 1, 3)]
    table = quotes([(days[0], CALL, 10.00, 11.00), (days[1], CALL, 9.00, 9.40)])
    fill = FillConfig(mode="limit", limit_offset=0.0, limit_fill="natural", limit_ttl_bars=1)
    # limit = Jan 2's mid 10.50; on Jan 3 the ask is 9.40: a marketable buy limit pays 9.40, not 10.50
    res = run(dict(zip(days, [4700.0] * 2, strict=True)), table, {days[0]: [open_("c", 1, (CALL, 1))]},
              1_000_000.0, commissions=NO_FEES, fill=fill)
    assert res.fills.iloc[0]["price"] == pytest.approx(9.40) and res.fills.iloc[0]["date"] == days[1]


def test_mid_fill_uses_the_chains_mid_column() -> None:
    days = [D(2024, 1, 2), D(2024, 1, 3)]
    rows = [{"quote_date": d, "expiry": CALL.expiry, "strike": CALL.strike, "right": "C", "bid": 10.0, "ask": 11.0,
             "mid": 10.37} for d in days]  # a modeled row: fair value 10.37 inside a tick-rounded 10.00/11.00
    res = run(dict(zip(days, [4700.0] * 2, strict=True)), QuoteTable(pd.DataFrame(rows)),
              {days[0]: [open_("c", 1, (CALL, 1))]}, 1_000_000.0, commissions=NO_FEES, fill=FillConfig(mode="mid"),
              delay="same_bar")
    assert res.fills.iloc[0]["price"] == pytest.approx(10.37)
    assert res.daily.loc[days[1], "options_value"] == pytest.approx(1037.0)  # marked at the same mid


def test_equity_options_out_of_the_money_expire_without_delivery() -> None:
    days = [D(2024, 2, 12), D(2024, 2, 16), D(2024, 2, 20)]
    call, put = Contract("XYZ", EXP, 55.0, "C"), Contract("XYZ", EXP, 45.0, "P")
    table = quotes([(days[0], call, 0.50, 0.60), (days[0], put, 0.40, 0.50)])
    # expiry close 50: both out of the money (a put at 49.995 would also expire: OCC's 0.01 threshold)
    res = run(dict(zip(days, [50.0, 50.0, 51.0], strict=True)), table,
              {days[0]: [open_("sc", 2, (call, -1)), open_("lp", 1, (put, 1))]}, 10_000.0, underlying="XYZ",
              settlement="physical", delay="same_bar", commissions=NO_FEES)
    assert list(res.trades["exit_action"]) == ["expire", "expire"] and (res.daily["shares"] == 0).all()
    assert res.metrics["final_equity"] == pytest.approx(10_000 + 2 * 50.0 - 50.0)  # premiums only


def test_am_settlement_uses_the_expiry_days_open() -> None:
    days = [D(2024, 2, 14), D(2024, 2, 16)]
    put = Contract("^GSPC", EXP, 5000.0, "P")
    table = quotes([(days[0], put, 30.0, 31.0)])
    b = pd.DataFrame({"open": [4990.0, 4960.0], "close": [4990.0, 5040.0], "rate": 0.0}, index=pd.to_datetime(days))
    for price, expected in (("open", 40.0), ("close", 0.0)):  # open 4960: ITM by 40; close 5040: OTM
        settings = EngineSettings(underlying="^GSPC", commissions=NO_FEES, delay="same_bar",
                                  settlement_price=price)  # type: ignore[arg-type]
        res = simulate(b, table, ScriptedStrategy({days[0]: [open_("p", 1, (put, 1))]}, "same_bar"), settings, 1e5)
        assert res.trades.iloc[0]["exit_price"] == pytest.approx(expected)


def test_shares_earn_the_dividend_yield() -> None:
    days = [D(2024, 1, 5), D(2024, 1, 8), D(2024, 1, 9)]  # Fri -> Mon (3 days) -> Tue (1 day)
    res = run(dict(zip(days, [100.0, 110.0, 90.0], strict=True)), quotes([]), {days[0]: [ShareOrder(200, "buy")]},
              100_000.0, underlying="XYZ", settlement="physical", delay="same_bar", commissions=NO_FEES,
              dividend_yield=0.03)
    # continuous yield on the previous close's value: 200 x 100 x (e^(0.03 x 3/365) - 1) + 200 x 110 x (...1/365)
    div = 200 * 100.0 * math.expm1(0.03 * 3 / 365) + 200 * 110.0 * math.expm1(0.03 / 365)
    assert res.metrics["dividends"] == pytest.approx(div, rel=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(100_000 + 200 * (90.0 - 100.0) + div, rel=1e-12)
