"""Feature/label frames for the ML signal models.

Labels: ``label`` = 1 if the forward return over ``horizon`` bars, entered ``lag`` bars after the signal
date (DESIGN §5: a signal at t trades on t+1), is positive.  ``hold_ret`` is the one-bar return a position
decided at t earns (from bar t+lag to t+lag+1); ``label_end`` is the date the label window closes (used to
purge overlapping training rows).

Features: the feature table (``features_technical``, built by :mod:`features` from
``sql/features_technical.sql``) when it exists, else a few stationary features computed here from
``equity_bars`` (each uses only data up to its own date).  From the feature table the default set is
:data:`TABLE_FEATURES`: scale-free columns that need closes only (so close-only series such as the ETFs of
the sample data keep their rows), plus three ratios derived from its price-level columns
(:data:`DERIVED_FEATURES`).  Price levels (``sma_N``, ``close``, ``atr_14`` ...) and the table's recursion
state (``st_*``) are never used by default: they are not comparable across symbols or over time.  Any
numeric column (or derived ratio) can be asked for by name.

Regime: ``features_regime.regime`` (iv_expansion, iv_contraction, high_vol, low_vol, neutral; ``unknown``
before its VIX history is long enough) when that table exists and labels at least one row, else a
volatility regime computed here (20-day vol above/below its trailing one-year median).
``Dataset.regime_source`` says which.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from features import kernels
from quantlake.errors import UserInputError
from quantlake.lake import Lake, symbol_date_filter

KEYS = ["symbol", "date"]
BUILTIN_FEATURES = ["ret_1", "ret_5", "ret_20", "vol_20", "rsi_14", "ema_ratio", "sma50_ratio", "bb_pos"]
REGIME = "regime"
# default features from the feature table: scale-free and defined for close-only series
TABLE_FEATURES = ["ret_1d", "ret_5d", "ret_20d", "ret_60d", "rsi_14", "bb_pctb", "bb_width"]
# ratio name -> (numerator, denominator) columns of the feature table: value = numerator / denominator - 1
DERIVED_FEATURES: dict[str, tuple[str, str]] = {
    "ema_ratio": ("ema_12", "ema_26"),  # MACD as a fraction of the slow EMA
    "sma50_ratio": ("close", "sma_50"),
    "sma200_ratio": ("close", "sma_200"),
}


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # symbol, date (datetime64), features..., regime, label, hold_ret, label_end
    features: list[str]
    source: str  # where the features came from
    regime_source: str = "volatility"  # the regime table's name, or "volatility" (computed here)
    required: tuple[str, ...] | None = None  # features a row must have (None: all of them)
    unavailable: dict[str, str] = field(default_factory=dict)  # registry features without data, and why
    windows: tuple[tuple[str, ...], int] | None = None  # the sequence window's channels and length

    @property
    def labeled(self) -> pd.DataFrame:
        """Rows whose label is known (the last ``lag + horizon`` bars of each symbol are not)."""
        return self.frame[self.frame["label"].notna()].reset_index(drop=True)


def builtin_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Stationary features per (symbol, date) from a frame with symbol, date, px (sorted by symbol, date)."""
    out = bars[KEYS].copy()
    g = bars.groupby("symbol", sort=False)["px"]
    ret = g.pct_change(fill_method=None)
    out["ret_1"] = ret
    out["ret_5"] = g.pct_change(5, fill_method=None)
    out["ret_20"] = g.pct_change(20, fill_method=None)
    out["vol_20"] = ret.groupby(bars["symbol"], sort=False).transform(lambda s: s.rolling(20).std())
    px = bars["px"].to_numpy(dtype=float)
    offs = kernels.run_offsets(bars["symbol"].to_numpy())
    out["rsi_14"] = kernels.rsi(px, 14, offs)
    out["ema_ratio"] = kernels.ema(px, 12, offs) / kernels.ema(px, 26, offs) - 1
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
    where, params = symbol_date_filter(symbols, start, end)
    bars = lake.read(
        "equity_bars", columns=["symbol", "date", "close", "adj_close"], where=where, params=params
    )
    if bars.empty:
        raise UserInputError("no equity_bars rows match the training config (ingest data first)")
    bars["px"] = bars["adj_close"].fillna(bars["close"]).astype(float)
    bars["date"] = pd.to_datetime(bars["date"])
    return bars.sort_values(KEYS, kind="mergesort").reset_index(drop=True)[["symbol", "date", "px"]]


def _table_columns(lake: Lake, table: str) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in lake.dataset(table).schema}


def table_features(
    lake: Lake,
    table: str,
    symbols: list[str] | None,
    start: dt.date | None,
    end: dt.date | None,
    wanted: list[str] | None,
) -> tuple[pd.DataFrame, list[str]]:
    """``symbol, date`` and the feature columns read from ``table`` (see the module doc for the defaults)."""
    schema = _table_columns(lake, table)
    numeric = {
        c for c, t in schema.items() if c not in KEYS and (pa.types.is_floating(t) or pa.types.is_integer(t))
    }
    derivable = {n for n, (a, b) in DERIVED_FEATURES.items() if a in numeric and b in numeric}
    if wanted is None:
        cols = [c for c in TABLE_FEATURES if c in numeric] + [n for n in DERIVED_FEATURES if n in derivable]
        if not cols:
            raise UserInputError(
                f"{table} has none of the default features {TABLE_FEATURES + list(DERIVED_FEATURES)}; "
                "name the columns to use (features: [...]) or set feature_table: null"
            )
    else:
        unknown = sorted(set(wanted) - numeric - derivable)
        if unknown:
            raise UserInputError(
                f"{table} has no numeric column(s) {unknown}; numeric columns: {sorted(numeric)}; "
                f"derived ratios: {sorted(derivable)}"
            )
        cols = list(wanted)
    read = sorted(
        {c for c in cols if c in numeric} | {x for c in cols if c in derivable for x in DERIVED_FEATURES[c]}
    )
    where, params = symbol_date_filter(symbols, start, end)
    frame = lake.read(table, columns=[*KEYS, *read], where=where, params=params)
    frame["date"] = pd.to_datetime(frame["date"])
    out = frame[KEYS].copy()
    for c in cols:
        if c in derivable and c not in numeric:
            a, b = DERIVED_FEATURES[c]
            out[c] = frame[a].astype(float) / frame[b].astype(float).where(frame[b] != 0) - 1
        else:
            out[c] = frame[c].astype(float)
    return out, cols


def table_regime(
    lake: Lake, table: str, symbols: list[str] | None, start: dt.date | None, end: dt.date | None
) -> pd.DataFrame | None:
    """``symbol, date, regime`` from ``table``; None if it has no regime column or no labelled row."""
    if REGIME not in _table_columns(lake, table):
        return None
    where, params = symbol_date_filter(symbols, start, end)
    reg = lake.read(table, columns=[*KEYS, REGIME], where=where, params=params)
    if reg[REGIME].notna().sum() == 0:
        return None
    reg["date"] = pd.to_datetime(reg["date"])
    return reg


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
    feature_set: Literal["table", "registry"] = "table",
    windows: tuple[list[str], int] | None = None,
) -> Dataset:
    """Labels, features and regime per (symbol, date) of ``equity_bars`` (see the module doc).

    ``feature_set="registry"`` assembles the documented feature registry (:mod:`tracking.ml.assemble`;
    ``feature_columns`` then selects registry names) when ``feature_table`` exists.  ``windows = (channels,
    n)`` adds each channel's values 1..n-1 rows back (the sequence model's window).
    Every table is read through ``lake``, so a tracked run records (and a reproduction pins) its version."""
    bars = _bars(lake, symbols, start, end)
    frame = labels(bars, horizon, lag)
    builtin: pd.DataFrame | None = None
    required: tuple[str, ...] | None = None
    unavailable: dict[str, str] = {}
    use_registry = feature_set == "registry" and bool(feature_table) and lake.exists(str(feature_table))
    if use_registry:
        from tracking.ml import feature_registry as fr
        from tracking.ml.assemble import assemble

        unknown = sorted(set(feature_columns or []) - set(fr.BY_NAME))
        if unknown:
            raise UserInputError(
                f"unknown registry feature(s) {unknown[:10]}; `quantlake models features` lists all "
                f"{len(fr.REGISTRY)}"
            )
        asm = assemble(lake, symbols, start, end, feature_columns, windows)
        feats, cols = asm.frame, asm.features
        required = tuple(c for c in cols if fr.BY_NAME[c].required)
        unavailable = asm.unavailable
        source = "registry:" + ",".join(asm.tables)
    elif feature_table and lake.exists(feature_table):
        feats, cols = table_features(lake, feature_table, symbols, start, end, feature_columns)
        source = feature_table
    else:
        cols = feature_columns or BUILTIN_FEATURES
        unknown = sorted(set(cols) - set(BUILTIN_FEATURES))
        if unknown:
            raise UserInputError(f"unknown built-in feature(s) {unknown}; available: {BUILTIN_FEATURES}")
        builtin = builtin_features(bars)
        feats = builtin[[*KEYS, *cols]]
        source = "equity_bars"
    if windows is not None and not use_registry:
        from tracking.ml.feature_registry import window_column

        # the sequence channels among these features (else the first four of them)
        channels = [c for c in windows[0] if c in cols] or list(cols[:4])
        windows = (channels, windows[1])
        g = feats.groupby("symbol", sort=False)
        win = {window_column(c, k): g[c].shift(k) for c in channels for k in range(1, windows[1])}
        feats = pd.concat([feats, pd.DataFrame(win, index=feats.index)], axis=1)
    feats = feats.assign(date=pd.to_datetime(feats["date"]).astype("datetime64[ns]"))
    frame = frame.assign(date=frame["date"].astype("datetime64[ns]"))
    frame = frame.merge(feats, on=KEYS, how="left")
    regime_source = "volatility"
    reg = (
        table_regime(lake, regime_table, symbols, start, end)
        if regime_table and lake.exists(regime_table)
        else None
    )
    if reg is not None:
        regime = reg
        regime_source = str(regime_table)
    else:
        builtin = builtin if builtin is not None else builtin_features(bars)
        regime = builtin[KEYS].assign(**{REGIME: vol_regime(builtin)})
    regime = regime.assign(date=pd.to_datetime(regime["date"]).astype("datetime64[ns]"))
    frame = frame.merge(regime, on=KEYS, how="left")
    frame[REGIME] = frame[REGIME].astype(object).where(frame[REGIME].notna(), "unknown").astype(str)
    frame = frame.sort_values(["date", "symbol"], kind="mergesort").reset_index(drop=True)
    used_windows = (tuple(windows[0]), int(windows[1])) if windows is not None else None
    return Dataset(frame, list(cols), source, regime_source, required, unavailable, used_windows)
