"""Portfolio backtests: the engine against vectorbt's grouped cash-sharing simulation (a second engine) on
the same target weights, for a two-strategy portfolio on the sample data, calendar and band rebalancing;
weights from trailing data only (the future truncated, the past unchanged); maximum Sharpe against a plain
scipy optimisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.equity.config import validate
from backtests.portfolio.assets import load_prices
from backtests.portfolio.config import PortfolioConfig
from backtests.portfolio.engine import simulate, target_rows
from quantlake.errors import ConfigError
from quantlake.lake import Lake

TWO_STRATEGIES: dict[str, Any] = {
    "name": "two-strategies",
    "assets": [
        {"name": "spy_ema", "symbol": "SPY", "strategy": {"kind": "ema_cross", "params": {"fast": 10, "slow": 40}}},
        {"name": "aapl_sma", "symbol": "AAPL", "strategy": {"kind": "sma_cross", "params": {"fast": 20, "slow": 100}},
         "sizing": {"method": "vol_target", "target_vol": 0.2}},
    ],
    "start": "2011-01-01", "end": "2016-12-31", "init_cash": 100000,
    "weights": {"method": "risk_parity", "lookback": 126},
    "costs": {"fees": 0.001, "slippage": 0.0005},
}  # fmt: skip


@pytest.fixture(scope="module")
def ro_lake(sample_lake_dir: Path) -> Lake:
    return Lake(sample_lake_dir)


@pytest.fixture(scope="module")
def prices(ro_lake: Lake) -> pd.DataFrame:
    """The two sleeves' NAVs (simulated once for the module)."""
    return load_prices(validate(PortfolioConfig, TWO_STRATEGIES), ro_lake)[0]


def vectorbt_value(prices: pd.DataFrame, sizes: pd.DataFrame, cfg: PortfolioConfig) -> pd.Series:
    import vectorbt as vbt

    pf = vbt.Portfolio.from_orders(prices, size=sizes, size_type="targetpercent", group_by=True, cash_sharing=True,
                                   call_seq="auto", fees=cfg.costs.fees, slippage=cfg.costs.slippage,
                                   init_cash=cfg.init_cash, freq="1D")  # fmt: skip
    return pf.value()


@pytest.mark.slow
@pytest.mark.parametrize("rebalance", [{"mode": "calendar", "every": "month"}, {"mode": "band", "band": 0.03}])
def test_two_strategy_portfolio_matches_vectorbt_grouped_simulation(prices: pd.DataFrame, rebalance: dict[str, Any]) -> None:
    cfg = validate(PortfolioConfig, {**TWO_STRATEGIES, "rebalance": rebalance})
    res = simulate(prices, cfg)
    assert res.trades["date"].nunique() >= (15 if rebalance["mode"] == "band" else 60)
    assert (res.units >= -1e-9).all().all() and (res.cash >= -1e-6).all()  # long only, never overdrawn
    sizes = target_rows(res, prices.index)
    ours, theirs = res.value, vectorbt_value(prices, sizes, cfg)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-10)
    # the sleeves: each strategy's account value per unit of cash is the price the portfolio trades
    assert prices.iloc[0].tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.slow
def test_band_rebalancing_trades_only_past_the_band(prices: pd.DataFrame) -> None:
    cfg = validate(PortfolioConfig, {**TWO_STRATEGIES, "rebalance": {"mode": "band", "band": 0.05}})
    res = simulate(prices, cfg)
    days = pd.DatetimeIndex(res.trades["date"].unique())
    pos = res.weights.index.get_indexer(days)
    for p in pos[1:]:
        before = res.weights.iloc[p - 1].to_numpy()
        decided = res.targets.loc[res.targets.index < res.weights.index[p]].iloc[-1].to_numpy()
        assert np.max(np.abs(before - decided)) > 0.05  # the close before each trade was out of the band


def test_weights_use_trailing_data_only(prices: pd.DataFrame) -> None:
    cfg = validate(PortfolioConfig, {**TWO_STRATEGIES, "weights": {"method": "min_variance", "lookback": 63},
                                     "rebalance": {"every": "quarter"}})  # fmt: skip
    full = simulate(prices, cfg)
    cut = prices.index[len(prices) // 2]
    part = simulate(prices.loc[:cut], cfg)
    shared = part.targets.index[part.targets.index < cut]
    pd.testing.assert_frame_equal(part.targets.loc[shared], full.targets.loc[shared])
    pd.testing.assert_series_equal(part.value.iloc[:-1], full.value.loc[part.value.index[:-1]])


def test_max_sharpe_against_scipy() -> None:
    from scipy.optimize import minimize

    from risk.portfolio import WeightBounds, max_sharpe

    rng = np.random.default_rng(3)
    cov = np.array([[0.04, 0.006, 0.002], [0.006, 0.09, 0.01], [0.002, 0.01, 0.0225]]) / 252
    r = pd.DataFrame(rng.multivariate_normal([0.0006, 0.0009, 0.0003], cov, size=2000), columns=list("ABC"))
    w = max_sharpe(r, bounds=WeightBounds(upper=0.6))
    mu, sig = r.mean().to_numpy(), r.cov().to_numpy()

    def neg(x: np.ndarray) -> float:
        return -float(mu @ x / np.sqrt(x @ sig @ x))

    ref = minimize(neg, np.full(3, 1 / 3), bounds=[(0, 0.6)] * 3, constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})  # fmt: skip
    np.testing.assert_allclose(w.to_numpy(), ref.x, atol=2e-4)
    assert neg(w.to_numpy()) <= neg(ref.x) + 1e-9


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"strategy\.params"):
        validate(PortfolioConfig, {**TWO_STRATEGIES, "assets": [
            {"name": "a", "symbol": "SPY", "strategy": {"kind": "ema_cross", "params": {"fast": [5, 10], "slow": 40}}},
            {"name": "b", "symbol": "GLD"}]})  # fmt: skip
    with pytest.raises(ConfigError, match=r"weights\.fixed"):
        validate(PortfolioConfig, {**TWO_STRATEGIES, "weights": {"method": "fixed", "fixed": {"spy_ema": 1.0}}})
    with pytest.raises(ConfigError, match="names must be unique"):
        validate(PortfolioConfig, {**TWO_STRATEGIES, "assets": [{"name": "a", "symbol": "SPY"}, {"name": "a", "symbol": "GLD"}]})
