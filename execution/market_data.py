"""What a trading run reads from the lake's bars: the latest trading date, closes and marks, and the
per-symbol equity fractions of the configured sizing method."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from execution.errors import NoFeaturesError
from execution.settings import TradeConfig
from execution.signal_source import FEATURE_LOOKBACK_DAYS
from quantlake.lake import Lake


def latest_trading_date(lake: Lake, symbols: list[str] | None) -> dt.date:
    """The latest date with a bar of a tradable symbol (``symbols``, else every symbol but indices)."""
    if not lake.exists("equity_bars"):
        raise NoFeaturesError(f"the lake at {lake.uri} has no equity_bars yet: ingest data first (quantlake ingest equity)")
    if symbols:
        where, params = "symbol IN (" + ", ".join("?" for _ in symbols) + ")", list(symbols)
    else:
        where, params = "symbol NOT LIKE '^%'", []
    got = lake.query(f"SELECT max(date) AS d FROM equity_bars WHERE {where} AND close IS NOT NULL", params)
    value = got["d"].iloc[0]
    if pd.isna(value):
        raise NoFeaturesError("equity_bars has no bars for the symbols to trade; ingest data first")
    return pd.Timestamp(value).date()


def closes(lake: Lake, as_of: dt.date, symbols: list[str] | None = None) -> pd.Series:
    """Close on ``as_of`` per symbol (symbols without a bar that day are absent)."""
    where = "date = ? AND close IS NOT NULL"
    params: list[Any] = [as_of]
    if symbols:
        where += " AND symbol IN (" + ", ".join("?" for _ in symbols) + ")"
        params += list(symbols)
    got = lake.query(f"SELECT symbol, close FROM equity_bars WHERE {where}", params)
    return pd.Series(got["close"].to_numpy(dtype=float), index=got["symbol"].astype(str), name="close")


def marks(lake: Lake, as_of: dt.date, symbols: list[str]) -> dict[str, float]:
    """Latest close on or before ``as_of`` per symbol."""
    if not symbols:
        return {}
    got = lake.query(
        "SELECT symbol, close FROM equity_bars WHERE close IS NOT NULL AND date <= ? AND symbol IN ("
        + ", ".join("?" for _ in symbols)
        + ") QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY date DESC) = 1",
        [as_of, *symbols],
    )
    return {str(r.symbol): float(r.close) for r in got.itertuples(index=False)}


def symbol_fractions(lake: Lake, cfg: TradeConfig, as_of: dt.date, symbols: list[str]) -> pd.Series:
    """Equity fraction per symbol from ``cfg.sizing`` at ``as_of``'s close — the same
    :func:`risk.position_sizing.equity_fractions` the equity sweeps use, on the symbol's bars up to
    ``as_of`` — capped at ``max_position_fraction`` (``all_in`` gets exactly that)."""
    from backtests.equity.indicators import atr
    from risk.position_sizing import equity_fractions

    spec = cfg.sizing
    assert spec is not None
    start = as_of - dt.timedelta(days=FEATURE_LOOKBACK_DAYS)
    bars = lake.read("equity_bars", columns=["symbol", "date", "high", "low", "close"],
                     where="date >= ? AND date <= ? AND close IS NOT NULL", params=[start, as_of])  # fmt: skip
    bars = bars[bars["symbol"].isin(symbols)]
    out: dict[str, float] = {}
    for symbol, g in bars.sort_values("date").groupby("symbol"):
        c = g["close"].to_numpy(dtype=float)[:, None]
        hi = g["high"].fillna(g["close"]).to_numpy(dtype=float)[:, None]
        lo = g["low"].fillna(g["close"]).to_numpy(dtype=float)[:, None]
        a = atr(hi, lo, c, spec.atr_period) if spec.method == "atr_risk" else None
        out[str(symbol)] = float(equity_fractions(spec, c, a)[-1, 0])
    frac = pd.Series(out, dtype=float).reindex(symbols).fillna(0.0)
    return frac.clip(upper=cfg.max_position_fraction)
