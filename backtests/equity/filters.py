"""Masks (rows = dates, columns = symbols) a strategy's entries must pass: universe and regime filters.

Both are point-in-time: the value at t uses only data known at t's close, and it gates the *signal* at t
(which trades at t+1), so neither looks ahead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.equity.config import RegimeConfig, UniverseConfig
from backtests.equity.data import Bars
from quantlake.errors import UserInputError
from quantlake.lake import Lake


def universe_mask(bars: Bars, cfg: UniverseConfig) -> np.ndarray:
    """True where a symbol is in the universe: close within [min_price, max_price] and average dollar
    volume over ``cfg.window`` days at least ``min_dollar_volume`` (missing volume fails that test)."""
    close = bars.close
    ok = ~np.isnan(close)
    with np.errstate(invalid="ignore"):
        if cfg.min_price is not None:
            ok &= close >= cfg.min_price
        if cfg.max_price is not None:
            ok &= close <= cfg.max_price
        if cfg.min_dollar_volume is not None:
            dollar = pd.DataFrame(close * bars.volume).rolling(cfg.window, min_periods=cfg.window).mean()
            ok &= dollar.to_numpy() >= cfg.min_dollar_volume
    return ok


def read_regimes(lake: Lake, cfg: RegimeConfig, bars: Bars) -> pd.DataFrame:
    """Wide frame of regime labels (index = bars' dates, columns = bars' symbols); missing → NaN."""
    if not lake.exists(cfg.table):
        raise UserInputError(
            f"regime filter: table {cfg.table!r} does not exist (build features first: `quantlake features build`)"
        )
    wanted = [cfg.symbol] if cfg.symbol else list(bars.symbols)
    df = lake.read(
        cfg.table,
        columns=["symbol", "date", "regime"],
        where="symbol IN (" + ", ".join("?" for _ in wanted) + ")",
        params=wanted,
    )
    if df.empty:
        raise UserInputError(f"regime filter: {cfg.table} has no rows for {', '.join(wanted)}")
    df["date"] = pd.to_datetime(df["date"])
    wide = df.pivot(index="date", columns="symbol", values="regime").reindex(bars.index)
    if cfg.symbol:
        return pd.DataFrame({s: wide[cfg.symbol] for s in bars.symbols}, index=bars.index)
    return wide.reindex(columns=list(bars.symbols))


def regime_mask(regimes: pd.DataFrame, cfg: RegimeConfig) -> np.ndarray:
    """True where the regime at t is one of ``cfg.allow`` (an unknown regime is not allowed)."""
    return regimes.isin(list(cfg.allow)).to_numpy()
