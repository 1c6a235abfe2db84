"""The price series of a portfolio's assets, from the lake: a symbol's adjusted close, or a strategy
sleeve's account value per unit of starting cash (its NAV), simulated by the equity backtester
(:func:`backtests.equity.sweep.prepare` / :func:`~backtests.equity.sweep.simulate_chunk`: the same engine,
costs, fills and ``sizing`` as ``quantlake sweep``).  Series are aligned on the dates every asset has."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.portfolio.config import AssetConfig, PortfolioConfig
from quantlake.errors import ConfigError
from quantlake.lake import Lake


def sleeve_nav(asset: AssetConfig, cfg: PortfolioConfig, lake: Lake) -> pd.Series:
    """The strategy's account value / starting cash on its symbol (1.0 at the first bar)."""
    from backtests.equity.config import SweepConfig
    from backtests.equity.sweep import prepare, simulate_chunk

    assert asset.strategy is not None
    sweep = SweepConfig(name=f"{cfg.name}-{asset.name}", strategy=asset.strategy, symbols=[asset.symbol],
                        start=cfg.start, end=cfg.end, costs=asset.costs, execution=asset.execution,
                        sizing=asset.sizing)  # fmt: skip
    _, tasks, _, _ = prepare(sweep, lake)
    sim = simulate_chunk(tasks[0], values=True)  # one symbol: one task, on the symbol's own dates
    value = pd.Series(np.asarray(sim.value)[:, 0], index=pd.DatetimeIndex(tasks[0].bars.index))
    return (value / asset.execution.init_cash).rename(asset.name)


def symbol_price(asset: AssetConfig, cfg: PortfolioConfig, lake: Lake) -> pd.Series:
    from backtests.equity.data import load_bars

    bars = load_bars(lake, [asset.symbol], cfg.start, cfg.end, price="adj_close")
    return pd.Series(bars.close[:, 0], index=pd.DatetimeIndex(bars.index)).rename(asset.name)


def load_prices(cfg: PortfolioConfig, lake: Lake) -> tuple[pd.DataFrame, list[str]]:
    """(dates × assets) prices on the dates all assets have, and notes (dropped dates)."""
    series = [sleeve_nav(a, cfg, lake) if a.strategy is not None else symbol_price(a, cfg, lake) for a in cfg.assets]
    frame = pd.concat(series, axis=1, join="outer").sort_index()
    aligned = frame.dropna()
    notes = []
    if len(aligned) < len(frame):
        first = {c: frame[c].first_valid_index() for c in frame.columns}
        notes.append(f"{len(frame) - len(aligned)} date(s) without every asset dropped (first dates: "
                     + ", ".join(f"{k} {pd.Timestamp(v).date()}" for k, v in first.items() if v is not None) + ")")  # fmt: skip
    if len(aligned) <= cfg.weights.lookback + 1:
        raise ConfigError(f"portfolio {cfg.name}: {len(aligned)} common date(s) of the assets, fewer than "
                          f"weights.lookback + 2 = {cfg.weights.lookback + 2}; widen start/end or shorten the lookback")  # fmt: skip
    return aligned, notes


__all__ = ["load_prices", "sleeve_nav", "symbol_price"]
