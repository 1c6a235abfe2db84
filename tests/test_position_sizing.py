"""``sizing:`` (risk.position_sizing): each method's fraction against a plain loop written here, and equity
sweeps that use it reproduced trade by trade by the event-loop reference (a second engine)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.equity.config import SweepConfig, validate
from backtests.equity.reference import check_chunk
from backtests.equity.sweep import prepare, simulate_chunk
from quantlake.errors import ConfigError
from quantlake.lake import Lake
from risk.position_sizing import SizingSpec, equity_fractions, trade_kelly_fraction


def _walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.012, n)))


def test_fractions_equal_plain_loops() -> None:
    close = np.column_stack([_walk(400, 1), _walk(400, 2)])
    atr = np.abs(np.column_stack([_walk(400, 3), _walk(400, 4)])) / 50
    assert np.all(equity_fractions(SizingSpec(method="all_in"), close) == 1.0)
    assert np.all(equity_fractions(SizingSpec(method="fixed_fraction", fraction=0.2), close) == 0.2)
    assert np.all(equity_fractions(SizingSpec(method="fixed_fraction"), close) == 0.1)

    kelly = equity_fractions(SizingSpec(method="kelly", lookback=60, fraction=0.5, cap=3.0), close)
    vt = equity_fractions(SizingSpec(method="vol_target", target_vol=0.1, vol_window=20, cap=1.5), close)
    ar = equity_fractions(SizingSpec(method="atr_risk", risk_fraction=0.01, atr_multiple=2.0, cap=0.9), close, atr)
    for j in range(2):
        for t in range(close.shape[0]):
            r = [close[i, j] / close[i - 1, j] - 1 for i in range(1, t + 1)]
            if len(r) >= 60:
                w = r[-60:]
                m = sum(w) / 60
                v = sum((x - m) ** 2 for x in w) / 59
                want = min(max(m / v, 0.0) * 0.5, 3.0)
            else:
                want = 0.0
            assert kelly[t, j] == pytest.approx(want, rel=1e-9, abs=1e-12)
            if len(r) >= 20:
                w = r[-20:]
                m = sum(w) / 20
                sd = math.sqrt(sum((x - m) ** 2 for x in w) / 19) * math.sqrt(252)
                assert vt[t, j] == pytest.approx(min(0.1 / sd, 1.5), rel=1e-9)
            else:
                assert vt[t, j] == 0.0
            assert ar[t, j] == pytest.approx(min(0.01 * close[t, j] / (2.0 * atr[t, j]), 0.9), rel=1e-7)


def test_trade_kelly_warms_up_then_follows_the_trades() -> None:
    spec = SizingSpec(method="kelly", min_trades=4, warmup_fraction=0.03, fraction=0.5, cap=0.2)
    assert trade_kelly_fraction(spec, [0.5, -1.0, 0.4]) == 0.03
    # 3 wins of 0.5, 1 loss of 1.0: p = 0.75, b = 0.5, f* = 0.75 - 0.25 / 0.5 = 0.25 → half = 0.125
    assert trade_kelly_fraction(spec, [0.5, 0.5, 0.5, -1.0]) == pytest.approx(0.125)
    assert trade_kelly_fraction(spec, [1.0, 1.0, 1.0, -0.1]) == 0.2  # capped


def test_bad_sizing_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"sizing\.method"):
        validate(SweepConfig, {"strategy": {"kind": "ema_cross"}, "sizing": {"method": "martingale"}})
    with pytest.raises(ConfigError, match=r"sizing\.fraction"):
        validate(SweepConfig, {"strategy": {"kind": "ema_cross"}, "sizing": {"method": "fixed_fraction", "fraction": 2}})


@pytest.fixture(scope="module")
def ro_lake(sample_lake_dir: Path) -> Lake:
    return Lake(sample_lake_dir)


SIZINGS: dict[str, dict[str, Any]] = {
    "fixed_fraction": {"method": "fixed_fraction", "fraction": 0.4},
    "kelly": {"method": "kelly", "fraction": 0.5, "lookback": 126},
    "vol_target+stops": {"method": "vol_target", "target_vol": 0.12},
    "atr_risk": {"method": "atr_risk", "risk_fraction": 0.01, "atr_multiple": 3.0},
}


@pytest.mark.parametrize("case", list(SIZINGS))
def test_sized_sweeps_match_the_event_loop_reference(ro_lake: Lake, case: str) -> None:
    costs: dict[str, Any] = {"fees": 0.001, "slippage": 0.001, "fixed_fees": 1.0}
    if "stops" in case:
        costs.update(sl_stop=0.05, tp_stop=0.1)
    cfg = validate(SweepConfig, {"symbols": ["SPY", "AAPL", "GLD"], "costs": costs, "sizing": SIZINGS[case],
                                 "strategy": {"kind": "ema_cross", "params": {"fast": [5, 12], "slow": 40}}})
    _, tasks, _, _ = prepare(cfg, ro_lake)
    out = pd.concat([check_chunk(t) for t in tasks], ignore_index=True)
    assert out["same_bars"].all(), out[~out["same_bars"]]
    assert out["trades_vectorbt"].sum() > 20
    assert out["max_rel_diff"].max() < 1e-10
    assert out["final_rel_diff"].max() < 1e-10
    # a fraction below one leaves cash idle: the final values differ from the all-in sweep's
    allin = np.concatenate([simulate_chunk(replace(t, sizing=None)).final_value for t in tasks])
    assert not np.allclose(out["final_vectorbt"], allin)


# ------------------------------------------------------------------------------------------ options
def _condor(spec: dict[str, Any] | None, closes: pd.Series) -> dict[str, Any]:
    """An iron condor on a Black-Scholes chain with the config-level ``sizing`` ``spec``; returns what its
    first entry decided: max loss per share (the strategy's meta), the equity it sized with, units, day."""
    from backtests.options.config import Commissions, IronCondorConfig, WidthRule
    from backtests.options.engine import EngineSettings
    from backtests.options.runner import simulate
    from backtests.options.strategies import IronCondor
    from backtests.options.synthetic import BlackScholesChains

    src = BlackScholesChains(closes, vol=0.16, rate=0.0, step=5.0, width=0.25, spread_pct=0.02, min_half_spread=0.05)
    strat = IronCondor(IronCondorConfig(width=WidthRule(points=50.0)))
    captured: dict[str, float] = {}
    original = strat.on_bar

    def on_bar(ctx: Any) -> list[Any]:
        orders = original(ctx)
        if orders and not captured:
            captured.update(max_loss=orders[0].meta["max_loss"], equity=ctx.equity(), units=orders[0].units,
                            day=ctx.date)
        return orders

    strat.on_bar = on_bar  # type: ignore[method-assign]
    settings = EngineSettings(underlying="^GSPC", commissions=Commissions(per_contract=0.0),
                              sizing=None if spec is None else SizingSpec(**spec))  # fmt: skip
    bars = pd.DataFrame({"close": closes, "high": closes * 1.01, "low": closes * 0.99})
    simulate(bars, src, strat, settings, 1e6)
    return captured


def test_option_config_sizing_sets_the_contracts() -> None:
    idx = pd.bdate_range("2024-01-02", "2024-01-31")
    closes = pd.Series(4750.0 * (1 + 0.002 * np.sin(np.arange(len(idx)))), index=idx)
    got = _condor({"method": "fixed_fraction", "fraction": 0.05}, closes)
    assert got["units"] == math.floor(got["equity"] * 0.05 / (got["max_loss"] * 100) + 1e-9) > 0
    got = _condor({"method": "all_in"}, closes)
    assert got["units"] == math.floor(got["equity"] / (got["max_loss"] * 100) + 1e-9)
    got = _condor({"method": "kelly", "warmup_fraction": 0.03}, closes)  # no closed trades yet: warm-up
    assert got["units"] == math.floor(got["equity"] * 0.03 / (got["max_loss"] * 100) + 1e-9)
    # atr_risk: loss per share = min(max loss, 2 × ATR); the true range is 2 % of the close (high/low ± 1 %)
    got = _condor({"method": "atr_risk", "risk_fraction": 0.01, "atr_multiple": 2.0, "atr_period": 5}, closes)
    from backtests.equity.indicators import atr

    c = closes.to_numpy()[:, None]
    a = atr(c * 1.01, c * 0.99, c, 5)[:, 0]
    assert got["day"] == idx[5].date()  # the ATR's first value is on bar 5: no entry before it
    loss = min(got["max_loss"], 2 * a[5])
    assert got["units"] == math.floor(got["equity"] * 0.01 / (loss * 100) + 1e-9) > 0


# ------------------------------------------------------------------------------------------ paper trading
def test_paper_trading_sizes_with_the_same_fractions(ql_home: Path) -> None:
    from execution.settings import TradeConfig
    from execution.signal_source import SignalSource
    from execution.trader import run_trade
    from quantlake.tables import EQUITY_BARS

    days = pd.bdate_range("2023-01-02", periods=300).date
    walk = {"AAA": _walk(300, 7), "CCC": _walk(300, 8) / 4}
    rows = [{"symbol": s, "date": d, "open": w[i], "high": w[i] * 1.01, "low": w[i] * 0.99, "close": w[i],
             "adj_close": w[i], "volume": 1e6, "source": "t"} for s, w in walk.items() for i, d in enumerate(days)]  # fmt: skip
    lake = Lake(ql_home / "lake")
    lake.merge("equity_bars", pd.DataFrame(rows), EQUITY_BARS)
    model = SignalSource("fixed", [], lambda f: f[["symbol", "date"]].assign(signal=1.0))
    spec = {"method": "vol_target", "target_vol": 0.02, "vol_window": 20}
    res = run_trade(TradeConfig(model="fixed", as_of=days[-1], sizing=spec, max_position_fraction=0.2), lake,
                    model=model, rebalance_band=0.0)  # fmt: skip
    for sym, w in walk.items():
        f = min(float(equity_fractions(SizingSpec(**spec), w)[-1]), 0.2)
        assert 0 < f < 0.2  # the cap does not bind: the fraction is vol-targeted
        want = math.floor(100_000 * f / w[-1] + 1e-9)
        assert res.orders.set_index("symbol").loc[sym, "qty"] == want
