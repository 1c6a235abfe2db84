"""Covered calls are never naked and protective puts are never reported when they were not bought.

The short-call count and the share count of every day are rebuilt here from the fills (opens, closes,
settlements, deliveries and share trades), independently of the engine's own daily record, and compared
day by day: a covered call may never hold more short calls than its shares cover.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from backtests.options.config import (
    Commissions,
    CoveredCallConfig,
    FillConfig,
    ProtectivePutConfig,
    StrikeRule,
    parse_config,
)
from backtests.options.engine import EngineSettings
from backtests.options.runner import BacktestResult, run_backtest, simulate
from backtests.options.strategies import CoveredCall, ProtectivePut
from backtests.options.synthetic import BlackScholesChains

RATE = 0.03
FEES = Commissions(per_contract=0.65, per_share=0.005)


def holdings_from_fills(res: BacktestResult) -> pd.DataFrame:
    """Per day of the run: shares, short calls and long puts held at the close, from the fills alone."""
    f = res.fills.copy()
    shares = f[f["action"] == "shares"].groupby("date")["qty"].sum()
    opt = f[f["action"] != "shares"]
    calls = opt[opt["right"] == "C"].groupby("date")["qty"].sum()
    puts = opt[opt["right"] == "P"].groupby("date")["qty"].sum()
    days = pd.Index(res.daily.index, name="date")
    out = pd.DataFrame(index=days)
    out["shares"] = shares.reindex(days, fill_value=0.0).cumsum()
    out["short_calls"] = -calls.reindex(days, fill_value=0.0).cumsum()
    out["long_puts"] = puts.reindex(days, fill_value=0.0).cumsum()
    return out


def assert_never_naked(res: BacktestResult) -> pd.DataFrame:
    h = holdings_from_fills(res)
    naked = h[h["short_calls"] * 100 > h["shares"] + 1e-9]
    assert naked.empty, f"{len(naked)} days with short calls not covered by shares, first:\n{naked.head()}"
    return h


def jump_path() -> pd.Series:
    """100 on the first day, +3 % the next (the all-in share purchase decided on day 1 no longer fits), then
    a steady rise that puts the calls in the money (assignment, buy-back)."""
    idx = pd.bdate_range("2024-01-02", "2024-04-30")
    px = 103.0 * 1.003 ** np.arange(len(idx))
    px[0] = 100.0
    return pd.Series(px, index=idx)


def test_covered_call_never_naked_when_the_share_purchase_does_not_fit() -> None:
    closes = jump_path()
    src = BlackScholesChains(closes, vol=0.25, rate=RATE, step=1.0, width=0.5)
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=FEES,
                              fill=FillConfig(share_slippage=0.02))
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, CoveredCall(CoveredCallConfig()), settings,
                   50_000.0)
    h = assert_never_naked(res)
    # shares first: the lots bought are those that fit after fees and slippage (4 at 103.02, not 5)
    first = res.fills[res.fills["action"] == "shares"].iloc[0]
    assert first["qty"] == 400 and first["date"] == dt.date(2024, 1, 3)
    assert 400 * first["price"] + first["fees"] <= 50_000.0 < 500 * first["price"]
    # the calls come after the shares are held, one per 100 shares
    first_call = res.fills[(res.fills["action"] == "open") & (res.fills["right"] == "C")].iloc[0]
    assert first_call["date"] > first["date"] and first_call["qty"] == -4
    assert (res.fills["action"] == "assign").any()  # called away and bought back: still never naked
    assert h["short_calls"].max() == 4
    assert res.metrics["uncovered_call_days"] == 0
    np.testing.assert_array_equal(res.daily["short_calls"].to_numpy(), h["short_calls"].to_numpy())


def test_cover_ratio_writes_calls_on_half_the_shares() -> None:
    closes = jump_path()
    src = BlackScholesChains(closes, vol=0.25, rate=RATE, step=1.0, width=0.5)
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=FEES)
    cfg = CoveredCallConfig(shares=600, cover_ratio=0.5, call=StrikeRule(by="delta", value=0.3))
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, CoveredCall(cfg), settings, 100_000.0)
    h = assert_never_naked(res)
    # never more calls than half the shares held cover (300 left after a partial call-away: 1 call)
    assert (h["short_calls"] <= np.floor(h["shares"] * 0.5 / 100)).all()
    assert ((h["shares"] == 600) & (h["short_calls"] == 3)).sum() > 20
    # after 300 are called away the call written that day covers the 300 still held (1), the rest follow
    # once the 300 bought back are held
    opens = res.fills[res.fills["action"] == "open"]
    assert (opens["qty"] == -1).any() and (opens["qty"] == -2).any()


def test_shipped_covered_call_config_is_never_naked(sample_lake) -> None:  # type: ignore[no-untyped-def]
    """configs/options/covered_call_aapl.yaml over its first half year (on main it held 17 naked calls)."""
    from pathlib import Path

    import yaml

    data = yaml.safe_load(Path("configs/options/covered_call_aapl.yaml").read_text())
    data["end"] = "2012-06-29"
    res = run_backtest(parse_config(data), sample_lake)
    h = assert_never_naked(res)
    assert h["shares"].max() >= 100 and h["short_calls"].max() >= 1
    assert res.metrics["uncovered_call_days"] == 0


def test_protective_put_reports_what_it_holds_when_a_put_is_refused() -> None:
    """All-in shares leave no cash for the puts: the strategy sizes the shares so the puts fit; when a roll
    cannot be paid for, fewer puts are bought and the daily record says how many shares are protected."""
    idx = pd.bdate_range("2024-01-02", "2024-06-28")
    closes = pd.Series(100.0 * 0.998 ** np.arange(len(idx)), index=idx)  # a slow fall: puts gain, shares lose
    src = BlackScholesChains(closes, vol=0.30, rate=RATE, step=1.0, width=0.5)
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=FEES)
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, ProtectivePut(ProtectivePutConfig()),
                   settings, 30_000.0)
    h = holdings_from_fills(res)
    shares_first = res.fills[res.fills["action"] == "shares"].iloc[0]
    puts = res.fills[(res.fills["action"] == "open") & (res.fills["right"] == "P")]
    assert shares_first["date"] < puts["date"].min()
    # the share purchase left room for the puts: the first put order was not refused
    assert res.rejections.empty or res.rejections["date"].min() > puts["date"].min()
    protected = np.minimum(h["shares"], h["long_puts"] * 100)
    np.testing.assert_array_equal(res.daily["protected_shares"].to_numpy(), protected.to_numpy())
    holding = h["shares"] > 0
    assert res.metrics["protection.mean_ratio"] == pytest.approx(float((protected[holding] / h["shares"][holding])
                                                                       .mean()))


def test_protective_put_refused_is_not_protected() -> None:
    """protection_ratio 1 on an account that can pay for the shares but never for a put (margin requires the
    shares fully paid, the cash left is below one put's price): no day is reported as protected."""
    idx = pd.bdate_range("2024-01-02", "2024-02-28")
    closes = pd.Series(100.0, index=idx)
    src = BlackScholesChains(closes, vol=0.30, rate=RATE, step=1.0, width=0.5)
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=FEES)
    res = simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, ProtectivePut(ProtectivePutConfig(shares=100)),
                   settings, 10_050.0)
    h = holdings_from_fills(res)
    assert h["shares"].max() == 100 and h["long_puts"].max() == 0
    assert (res.daily["protected_shares"] == 0).all()
    assert res.metrics["protection.mean_ratio"] == 0.0
    assert res.metrics["protection.short_days"] == float((h["shares"] > 0).sum())


# ------------------------------------------------------------------------------------------ min_contracts
def _spread_run(width: float, equity: float, **sizing: object) -> BacktestResult:
    from backtests.options.config import PutCreditSpreadConfig, SizingConfig, WidthRule
    from backtests.options.strategies import PutCreditSpread

    idx = pd.bdate_range("2024-01-02", "2024-01-12")
    closes = pd.Series(100.0, index=idx)
    src = BlackScholesChains(closes, vol=0.25, rate=RATE, step=1.0, width=0.4, months=3)
    cfg = PutCreditSpreadConfig(width=WidthRule(points=width), sizing=SizingConfig(method="risk", **sizing))
    settings = EngineSettings(underlying="XYZ", settlement="physical", commissions=FEES, fill=FillConfig(mode="mid"))
    return simulate(pd.DataFrame({"close": closes, "rate": RATE}), src, PutCreditSpread(cfg), settings, equity)


def _max_loss(res: BacktestResult) -> float:
    """Width minus the credit at mid of the spread the strategy built, per contract, from the quotes."""
    legs = res.fills[res.fills["action"] == "open"]
    width = legs["strike"].max() - legs["strike"].min()
    credit = float((-legs["qty"] * legs["price"]).sum() / legs["qty"].abs().max())
    return (width - credit) * 100


def test_risk_sizing_rounding_to_zero_trades_one_contract_within_twice_the_budget() -> None:
    # 2 % of 15,000 = 300 budget; a 5-wide 20-delta put spread risks about 4.5 x 100 = 450 < 2 x 300
    res = _spread_run(5.0, 15_000.0)
    opens = res.fills[res.fills["action"] == "open"]
    assert len(opens) == 2 and set(opens["qty"].abs()) == {1.0}
    assert 300 < _max_loss(res) <= 600
    assert res.skipped.empty and res.metrics["entries_skipped"] == 0


def test_risk_sizing_skips_and_says_why_beyond_twice_the_budget() -> None:
    res = _spread_run(10.0, 15_000.0)  # about 9.5 x 100 = 950 > 600: skipped, on every bar it tried
    assert (res.fills["action"] == "open").sum() == 0
    assert len(res.skipped) == len(res.daily) and res.metrics["entries_skipped"] == len(res.daily)
    first = res.skipped.iloc[0]
    assert first["tag"] == "put_credit_spread" and "over 2x the risk budget 300.00" in first["reason"]
    assert 600 < first["max_loss"] < 1000 and first["budget"] == pytest.approx(300.0)
    # the same trade is taken when the allowance is raised, and never with min_contracts 0
    assert (_spread_run(10.0, 15_000.0, min_contracts_max_risk=4.0).fills["action"] == "open").sum() == 2
    none = _spread_run(5.0, 15_000.0, min_contracts=0)
    assert (none.fills["action"] == "open").sum() == 0 and len(none.skipped) == len(none.daily)
