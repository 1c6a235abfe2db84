"""Feature/label frames for the ML signal models.

Labels: ``label`` = 1 if the forward return over ``horizon`` bars, entered ``lag`` bars after the signal
date (DESIGN §5: a signal at t trades on t+1), is positive.  ``hold_ret`` is the one-bar return a position
decided at t earns (from bar t+lag to t+lag+1); ``label_end`` is the date the label window closes (used to
purge overlapping training rows).

Features: the feature table (``features_technical``) when it exists, else a few stationary features computed
here from ``equity_bars`` (each uses only data up to its own date).  Regime: ``features_regime.regime`` when
present, else a volatility regime (20-day vol above/below its trailing one-year median).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantlake.errors import UserInputError
from quantlake.lake import Lake

KEYS = ["symbol", "date"]
BUILTIN_FEATURES = ["ret_1", "ret_5", "ret_20", "vol_20", "rsi_14", "ema_ratio", "sma50_ratio", "bb_pos"]
REGIME = "regime"


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # symbol, date (datetime64), features..., regime, label, hold_ret, label_end
    features: list[str]
    source: str  # where the features came from

    @property
    def labeled(self) -> pd.DataFrame:
        """Rows whose label is known (the last ``lag + horizon`` bars of each symbol are not)."""
        return self.frame[self.frame["label"].notna()].reset_index(drop=True)


def _rsi(close: pd.Series, n: int = 14) -> pd.Series:
    delta = close.diff()
    up = delta.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    down = (-delta.clip(upper=0)).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    return 100 - 100 / (1 + up / down.replace(0, np.nan))


def builtin_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Stationary features per (symbol, date) from a frame with symbol, date, px (sorted by symbol, date)."""
    out = bars[KEYS].copy()
    g = bars.groupby("symbol", sort=False)["px"]
    ret = g.pct_change(fill_method=None)
    out["ret_1"] = ret
    out["ret_5"] = g.pct_change(5, fill_method=None)
    out["ret_20"] = g.pct_change(20, fill_method=None)
    out["vol_20"] = ret.groupby(bars["symbol"], sort=False).transform(lambda s: s.rolling(20).std())
    out["rsi_14"] = g.transform(_rsi)
    ema12 = g.transform(lambda s: s.ewm(span=12, adjust=False, min_periods=12).mean())
    ema26 = g.transform(lambda s: s.ewm(span=26, adjust=False, min_periods=26).mean())
    out["ema_ratio"] = ema12 / ema26 - 1
    out["sma50_ratio"] = bars["px"] / g.transform(lambda s: s.rolling(50).mean()) - 1
    mid = g.transform(lambda s: s.rolling(20).mean())
    sd = g.transform(lambda s: s.rolling(20).std())
    out["bb_pos"] = (bars["px"] - mid) / (2 * sd)
    return out


def vol_regime(features: pd.DataFrame) -> pd.Series:
    """ "high_vol"/"low_vol": 20-day vol vs its trailing 252-day median (known at each date)."""
    vol = features["vol_20"]
    med = vol.groupby(features["symbol"], sort=False).transform(
        lambda s: s.rolling(252, min_periods=60).median()
    )
    return pd.Series(np.where(vol > med, "high_vol", "low_vol"), index=features.index).where(
        med.notna(), "unknown"
    )


def labels(bars: pd.DataFrame, horizon: int, lag: int) -> pd.DataFrame:
    """label, hold_ret and label_end per row of ``bars`` (symbol, date, px; sorted by symbol, date)."""
    g = bars.groupby("symbol", sort=False)
    entry = g["px"].shift(-lag)
    exit_ = g["px"].shift(-(lag + horizon))
    fwd = exit_ / entry - 1
    out = bars[KEYS].copy()
    out["label"] = np.where(fwd.notna(), (fwd > 0).astype(float), np.nan)
    out["hold_ret"] = g["px"].shift(-(lag + 1)) / entry - 1
    out["label_end"] = g["date"].shift(-(lag + horizon))
    return out


def _bars(lake: Lake, symbols: list[str] | None, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    clauses: list[str] = []
    params: list[object] = []
    if symbols:
        clauses.append("symbol IN (" + ", ".join("?" for _ in symbols) + ")")
        params += list(symbols)
    if start:
        clauses.append("date >= ?")
        params.append(start)
    if end:
        clauses.append("date <= ?")
        params.append(end)
    bars = lake.read(
        "equity_bars",
        columns=["symbol", "date", "close", "adj_close"],
        where=" AND ".join(clauses) or None,
        params=params,
    )
    if bars.empty:
        raise UserInputError("no equity_bars rows match the training config (ingest data first)")
    bars["px"] = bars["adj_close"].fillna(bars["close"]).astype(float)
    bars["date"] = pd.to_datetime(bars["date"])
    return bars.sort_values(KEYS, kind="mergesort").reset_index(drop=True)[["symbol", "date", "px"]]


def load_dataset(
    lake: Lake,
    symbols: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    horizon: int = 5,
    lag: int = 1,
    feature_table: str | None = "features_technical",
    feature_columns: list[str] | None = None,
    regime_table: str | None = "features_regime",
) -> Dataset:
    bars = _bars(lake, symbols, start, end)
    frame = labels(bars, horizon, lag)
    if feature_table and lake.exists(feature_table):
        table = lake.read(feature_table)
        table["date"] = pd.to_datetime(table["date"])
        numeric = [c for c in table.columns if c not in KEYS and pd.api.types.is_numeric_dtype(table[c])]
        cols = feature_columns or numeric
        unknown = sorted(set(cols) - set(table.columns))
        if unknown:
            raise UserInputError(f"{feature_table} has no column(s) {unknown}")
        feats = table[[*KEYS, *cols]]
        source = feature_table
        builtin = builtin_features(bars)  # for the volatility regime only
    else:
        builtin = builtin_features(bars)
        cols = feature_columns or BUILTIN_FEATURES
        unknown = sorted(set(cols) - set(BUILTIN_FEATURES))
        if unknown:
            raise UserInputError(f"unknown built-in feature(s) {unknown}; available: {BUILTIN_FEATURES}")
        feats = builtin[[*KEYS, *cols]]
        source = "equity_bars"
    frame = frame.merge(feats, on=KEYS, how="left")
    regime = builtin[KEYS].assign(**{REGIME: vol_regime(builtin)})
    if regime_table and lake.exists(regime_table):
        reg = lake.read(regime_table)
        if REGIME in reg.columns:
            reg["date"] = pd.to_datetime(reg["date"])
            regime = regime.merge(reg[[*KEYS, REGIME]], on=KEYS, how="left", suffixes=("_vol", ""))
            regime[REGIME] = (
                regime[REGIME].astype(object).where(regime[REGIME].notna(), regime[f"{REGIME}_vol"])
            )
            regime = regime[[*KEYS, REGIME]]
    frame = frame.merge(regime, on=KEYS, how="left")
    frame[REGIME] = frame[REGIME].fillna("unknown").astype(str)
    frame = frame.sort_values(["date", "symbol"], kind="mergesort").reset_index(drop=True)
    return Dataset(frame, list(cols), source)
