"""Issue 20's two sweep defects, each pinned by a case worked out by hand:

* a signal exit due at t+1's open fills at that open even when t+1's low later crosses the stop (the fill
  rule of the README: the open comes first in time, so the stop never gets a chance);
* a symbol's results do not depend on which other symbols are in the sweep when it has missing days (each
  symbol trades on its own calendar; no price is ever invented for a day it has no bar).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.equity.config import SweepConfig, validate
from backtests.equity.reference import run_reference
from backtests.equity.sweep import detail, run_sweep
from quantlake.lake import Lake


def _bars(symbol: str, days: pd.DatetimeIndex, o: Any, h: Any, lo: Any, c: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {"symbol": symbol, "date": days.date, "open": o, "high": h, "low": lo, "close": c, "adj_close": c,
         "volume": 1e6, "source": "test"}
    )  # fmt: skip


# sma_cross fast=1 / slow=2: the close crossing its 2-bar mean.  Bar 2 crosses up (buy at bar 3's open,
# 10.0; stop level 10.0 x 0.9 = 9.0), bar 4 crosses down (sell at bar 5's open).  Bar 5 opens at 10.4
# and only then trades down to 8.5, through the stop.
OPEN = [10.0, 9.0, 9.5, 10.0, 11.0, 10.4, 10.0, 10.0]
H = [10.0, 9.0, 10.0, 11.0, 11.0, 10.4, 10.0, 10.0]
L = [10.0, 9.0, 9.5, 10.0, 10.5, 8.5, 10.0, 10.0]
C = [10.0, 9.0, 10.0, 11.0, 10.5, 10.0, 10.0, 10.0]
STOP_CFG = {"strategy": {"kind": "sma_cross", "params": {"fast": 1, "slow": 2}},
            "costs": {"fees": 0.0, "slippage": 0.0, "sl_stop": 0.1}}  # fmt: skip


@pytest.mark.parametrize(
    ("closes", "exit_price", "why"),
    [
        (C, 10.4, "the signal exit is due at bar 5's open: sold there, before the low reaches the stop"),
        ([*C[:4], 11.5, *C[5:]], 9.0, "no exit signal pending: the stop fills at its level"),
    ],
)
def test_a_stop_never_preempts_a_pending_next_open_exit(
    lake: Lake, closes: list[float], exit_price: float, why: str
) -> None:
    days = pd.bdate_range("2024-01-01", periods=len(OPEN))
    h = [max(a, b) for a, b in zip(H, closes, strict=True)]
    lake.merge("equity_bars", _bars("AAA", days, OPEN, h, L, closes))
    res = run_sweep(validate(SweepConfig, {"symbols": ["AAA"], **STOP_CFG}), lake)
    trades = detail(res).trades
    assert len(trades) == 1, trades
    t = trades.iloc[0]
    assert (t.entry_date, t.entry_price) == (days[3], 10.0)
    assert (t.exit_date, t.exit_price) == (days[5], pytest.approx(exit_price, rel=1e-12)), why
    assert res.table["final_value"].iloc[0] == pytest.approx(10_000 * exit_price / 10.0, rel=1e-12)
    # the plain event loop states the same rule
    ref = run_reference(np.array(closes), np.array(OPEN), _lagged_entries(), _lagged_exits(closes),
                        open_=np.array(OPEN), high=np.array(h), low=np.array(L), fees=0.0, slippage=0.0,
                        sl_stop=0.1, signals_at_open=True)  # fmt: skip
    assert [(r.entry_idx, r.exit_idx) for r in ref.trades] == [(3, 5)]
    assert ref.trades[0].exit_price == pytest.approx(exit_price, rel=1e-12)


def _lagged_entries() -> np.ndarray:
    e = np.zeros(len(OPEN), dtype=bool)
    e[3] = True  # the cross up on bar 2's close, traded on bar 3
    return e


def _lagged_exits(closes: list[float]) -> np.ndarray:
    x = np.zeros(len(OPEN), dtype=bool)
    x[5] = closes[4] < (closes[3] + closes[4]) / 2  # the cross down on bar 4's close, traded on bar 5
    return x


# ------------------------------------------------------------------------------------------ calendars
def _walk(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    c = 50 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    o = c * np.exp(rng.normal(0.0, 0.01, n))
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0.0, 0.01, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0.0, 0.01, n)))
    return o, h, lo, c


def test_a_symbol_with_missing_days_trades_on_its_own_calendar(lake: Lake) -> None:
    days = pd.bdate_range("2020-01-01", periods=400)
    holes = np.zeros(len(days), dtype=bool)
    holes[[40, 41, 97, 150, 151, 152, 230, 311, 377]] = True  # e.g. rows rejected at ingest
    o, h, lo, c = _walk(len(days), 1)
    own = days[~holes]
    lake.merge("equity_bars", _bars("GAP", own, o[~holes], h[~holes], lo[~holes], c[~holes]))
    lake.merge("equity_bars", _bars("FULL", days, *_walk(len(days), 2)))
    cfg: dict[str, Any] = {"strategy": {"kind": "ema_cross", "params": {"fast": [3, 5], "slow": [8, 13],
                                                                        "rsi_filter": "off", "macd_confirm": False}},
                           "costs": {"fees": 0.001, "slippage": 0.0005, "tsl_stop": 0.05}}  # fmt: skip
    alone = run_sweep(validate(SweepConfig, {"symbols": ["GAP"], **cfg}), lake)
    both = run_sweep(validate(SweepConfig, {"symbols": ["GAP", "FULL"], **cfg}), lake)
    full_alone = run_sweep(validate(SweepConfig, {"symbols": ["FULL"], **cfg}), lake)
    key = ["combo", "unit"]
    for single, sym in ((alone, "GAP"), (full_alone, "FULL")):
        a = single.table.sort_values(key, ignore_index=True)
        b = both.table[both.table["unit"] == sym].sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert alone.table["trades"].sum() > 10
    # the gap symbol's trades are those of the plain event loop on its own bars, dated on its own days
    det = detail(both, int(both.best))
    gap_trades = det.trades[det.trades["unit"] == "GAP"]
    assert not gap_trades["entry_date"].isin(days[holes]).any()
    assert not gap_trades["exit_date"].isin(days[holes]).any()
    solo = detail(alone, int(both.best)).trades
    pd.testing.assert_frame_equal(gap_trades.reset_index(drop=True), solo.reset_index(drop=True))
    # the combined daily return counts GAP only on its own days
    r = both.returns[both.best]
    assert r.index.equals(pd.DatetimeIndex(days))
    assert np.isfinite(r).all()
    assert dt.date(2020, 1, 1) <= r.index[0].date()
