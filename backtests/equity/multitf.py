"""Multi-timeframe signals without look-ahead: a higher-timeframe filter on lower-timeframe entries.

The rule that keeps the future out: a higher-timeframe (HTF) bar is usable only from its **close**.  Each
lower-timeframe (LTF) bar, decided at its own close, sees the latest HTF bar whose ``close_ts`` is at or
before the LTF bar's ``close_ts`` (:func:`align_closed`, an as-of join on close instants).  Both series come
from :func:`features.bars.resample`, which emits a bar only once it has closed, so a bar still forming is
never visible either.  ``tests/test_multitimeframe.py`` proves it by truncation: signals computed on
history cut at any instant equal the full-history signals up to that instant.

:func:`mtf_trend_signals` is the example strategy ``mtf_trend``: long while the HTF close is above its EMA
(the trend filter, e.g. 4h EMA 50) and the LTF fast EMA is above the slow one (e.g. 15m EMA 9/21); entries
on the LTF cross up while the filter is on, exits on the LTF cross down or when the filter turns off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.equity.indicators import ema


def align_closed(ltf: pd.DataFrame, htf: pd.DataFrame, columns: list[str], prefix: str = "htf_") -> pd.DataFrame:
    """``ltf`` with ``columns`` of the latest ``htf`` bar closed by each LTF bar's close (per symbol).

    Both frames need ``symbol`` and ``close_ts``; an LTF bar before the first closed HTF bar gets NaN."""
    left = ltf.assign(_close=pd.to_datetime(ltf["close_ts"], utc=True)).sort_values("_close", kind="stable")
    right = htf[["symbol", "close_ts", *columns]].rename(columns={c: prefix + c for c in columns})
    right = right.assign(_close=pd.to_datetime(right["close_ts"], utc=True)).drop(columns=["close_ts"])
    out = pd.merge_asof(
        left, right.sort_values("_close", kind="stable"), on="_close", by="symbol",
        direction="backward", allow_exact_matches=True,
    )
    return out.drop(columns=["_close"]).sort_values(["symbol", "close_ts"], kind="stable").reset_index(drop=True)


def _ema_by_symbol(frame: pd.DataFrame, column: str, window: int) -> np.ndarray:
    out = np.full(len(frame), np.nan)
    for _, idx in frame.groupby("symbol", sort=False).indices.items():
        out[idx] = ema(frame[column].to_numpy(dtype=float)[idx][:, None], window)[:, 0]
    return out


def mtf_trend_signals(
    ltf: pd.DataFrame, htf: pd.DataFrame, fast: int = 9, slow: int = 21, trend: int = 50
) -> pd.DataFrame:
    """Per LTF bar: ``filter`` (HTF close above its EMA ``trend``, as known at the bar's close), ``long``
    (filter and LTF EMA ``fast`` above EMA ``slow``), ``entry`` and ``exit`` (changes of ``long``)."""
    if not 0 < fast < slow:
        raise ValueError("mtf_trend needs 0 < fast < slow")
    h = htf.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    h["trend_ema"] = _ema_by_symbol(h, "close", trend)
    h["trend_up"] = (h["close"] > h["trend_ema"]).where(h["trend_ema"].notna())
    lo = ltf.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    lo["ema_fast"] = _ema_by_symbol(lo, "close", fast)
    lo["ema_slow"] = _ema_by_symbol(lo, "close", slow)
    out = align_closed(lo, h, ["trend_up", "ts"])
    filt = out["htf_trend_up"].astype("boolean").fillna(False).astype(bool)
    up = (out["ema_fast"] > out["ema_slow"]).fillna(False)
    out["filter"] = filt
    out["long"] = filt & up
    prev = out.groupby("symbol", sort=False)["long"].shift(1, fill_value=False).astype(bool)
    out["entry"] = out["long"] & ~prev
    out["exit"] = ~out["long"] & prev
    return out[["symbol", "ts", "close_ts", "close", "htf_ts", "filter", "long", "entry", "exit"]]
