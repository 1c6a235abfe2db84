"""The inputs of a backtest read from the lake, aligned on the underlying's trading days.

* bars of the underlying (``equity_bars``; an index with closes only gets open/high/low = close);
* the risk-free rate (``macro_series``, first-published value of each date, percent bond-equivalent →
  continuously compounded decimal ``2 ln(1 + y/200)``), carried forward to each bar;
* the regime, IV rank and VIX of ``features_regime`` when the table exists (a strategy that needs them,
  or ``market.require_regime``, makes their absence an error).

A value for date t is one published at the close of t (DESIGN §5); nothing later is used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtests.options.config import OptionsBacktestConfig, RateConfig
from backtests.options.errors import MarketDataError
from quantlake.lake import Lake

REGIMES = ("low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral", "unknown")
REGIME_FALLBACK_SYMBOL = "^VIX"


@dataclass
class MarketData:
    """Bars indexed by date (``DatetimeIndex``): open, high, low, close, volume, rate, regime, iv_rank, vix."""

    underlying: str
    bars: pd.DataFrame
    start: dt.date  # first bar the engine trades (earlier bars only warm indicators up)
    has_regime: bool

    @property
    def trading_dates(self) -> list[dt.date]:
        return [d.date() for d in self.bars.index]


def _bars(lake: Lake, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    df = lake.read("equity_bars", columns=["date", "open", "high", "low", "close", "volume"],
                   where="symbol = ? AND date >= ? AND date <= ?", params=[symbol, start, end])
    df = df.dropna(subset=["close"])
    df = df[df["close"] > 0]
    if df.empty:
        raise MarketDataError(f"no equity_bars for {symbol} between {start} and {end} "
                              f"(ingest it first, e.g. `quantlake ingest equity --source sample`)")
    df["date"] = pd.to_datetime(df["date"])
    df = df.sort_values("date").drop_duplicates("date").set_index("date")
    for col in ("open", "high", "low"):
        df[col] = df[col].fillna(df["close"])
    df["volume"] = df["volume"].fillna(0.0)
    return df.astype(float)


def bey_to_continuous(percent: pd.Series) -> pd.Series:
    """A bond-equivalent yield in percent (FRED DGS*) as a continuously compounded decimal."""
    return 2.0 * np.log1p(percent / 200.0)


def rate_series(lake: Lake, cfg: RateConfig, dates: pd.DatetimeIndex) -> pd.Series:
    if cfg.constant is not None:
        return pd.Series(cfg.constant, index=dates, name="rate")
    if not lake.exists("macro_series"):
        raise MarketDataError(f"rate series {cfg.series}: table macro_series does not exist "
                              "(`quantlake ingest macro`, or set market.rate.constant)")
    df = lake.read("macro_series", columns=["date", "realtime_start", "value"], where="series_id = ?",
                   params=[cfg.series])
    if df.empty:
        raise MarketDataError(f"rate series {cfg.series} has no rows in macro_series "
                              "(ingest it, or set market.rate.constant)")
    df = df.dropna(subset=["value"]).sort_values(["date", "realtime_start"]).drop_duplicates("date")
    s = pd.Series(bey_to_continuous(df["value"].astype(float)).to_numpy(), index=pd.to_datetime(df["date"]))
    s = s.sort_index()
    out = s.reindex(dates.union(s.index)).ffill().reindex(dates)
    return out.fillna(cfg.fallback).rename("rate")


def regime_frame(lake: Lake, cfg: OptionsBacktestConfig, dates: pd.DatetimeIndex) -> pd.DataFrame | None:
    """regime, iv_rank (0..1) and vix per bar from ``features_regime``, or ``None`` without the table."""
    if not lake.exists("features_regime"):
        return None
    symbols = [cfg.market.regime_symbol] if cfg.market.regime_symbol else [cfg.underlying, REGIME_FALLBACK_SYMBOL]
    for sym in symbols:
        df = lake.read("features_regime", where="symbol = ? AND date <= ?", params=[sym, cfg.end])
        if not df.empty:
            break
    else:
        return None
    df["date"] = pd.to_datetime(df["date"])
    df = df.sort_values("date").drop_duplicates("date").set_index("date")
    out = pd.DataFrame(index=dates)
    out["regime"] = df["regime"].astype(object).reindex(dates) if "regime" in df else None
    # vix_rank_252 is 0..100 (sql/features_regime.sql); strategies read IV rank as a fraction 0..1
    rank = df["vix_rank_252"].astype(float) / 100.0 if "vix_rank_252" in df else pd.Series(np.nan, index=df.index)
    out["iv_rank"] = rank.reindex(dates)
    out["vix"] = df["vix"].astype(float).reindex(dates) if "vix" in df else np.nan
    out["regime"] = out["regime"].where(out["regime"].isin(REGIMES), "unknown")
    return out


def load_market(cfg: OptionsBacktestConfig, lake: Lake, warmup_days: int = 0,
                regime_uses: Sequence[str] = (), strategy: str = "strategy") -> MarketData:
    """The bars, rates and regimes of ``cfg``'s range (plus ``warmup_days`` calendar days before it).

    ``regime_uses``: the settings of the strategy that read the regime; with any (or ``market.require_regime``)
    a lake without ``features_regime`` rows for the symbol is an error that names them, rather than a run
    whose regime rules silently never fire.
    """
    first = cfg.start - dt.timedelta(days=warmup_days)
    bars = _bars(lake, cfg.underlying, first, cfg.end)
    dates = pd.DatetimeIndex(bars.index)
    bars["rate"] = rate_series(lake, cfg.market.rate, dates).to_numpy()
    reg = regime_frame(lake, cfg, dates)
    uses = [*regime_uses, *(["market.require_regime=true"] if cfg.market.require_regime else [])]
    if reg is None:
        if uses:
            where = (f"for {cfg.market.regime_symbol}" if cfg.market.regime_symbol
                     else f"for {cfg.underlying} or {REGIME_FALLBACK_SYMBOL}")
            state = "has no features_regime table" if not lake.exists("features_regime") else \
                f"has no features_regime rows {where}"
            raise MarketDataError(
                f"{strategy} needs the market regime ({'; '.join(uses)}) but the lake {state}; build the "
                "regime features first (`quantlake features build`), or remove those settings")
        bars["regime"], bars["iv_rank"], bars["vix"] = "unknown", np.nan, np.nan
    else:
        bars = bars.join(reg)
        bars["regime"] = bars["regime"].fillna("unknown")
    start = cfg.start
    if not (bars.index >= pd.Timestamp(start)).any():
        raise MarketDataError(f"no bars of {cfg.underlying} on or after {start}")
    return MarketData(cfg.underlying, bars, start, reg is not None)
