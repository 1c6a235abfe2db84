"""Multi-timeframe signals without look-ahead: a higher-timeframe filter on lower-timeframe entries.

The rule that keeps the future out: a higher-timeframe (HTF) bar is usable only from its **close**.  Each
lower-timeframe (LTF) bar, decided at its own close, sees the latest HTF bar whose ``close_ts`` is at or
before the LTF bar's ``close_ts`` (:func:`align_closed`, an as-of join on close instants).  Both series come
from :func:`features.bars.resample`, which emits a bar only once it has closed, so a bar still forming is
never visible either.  ``tests/test_multitimeframe.py`` proves it by truncation: signals computed on
history cut at any instant equal the full-history signals up to that instant.

Sweeps run the same rule as the strategy kind ``mtf_trend`` (:mod:`backtests.equity.strategies.multitf`):
:func:`with_higher_timeframe` attaches the closed HTF bars to the sweep's bars (:class:`HigherTimeframe`),
and ``tests/test_mtf_sweep.py`` checks the sweep's trades against a plain loop over
:func:`mtf_trend_signals` and repeats the truncation test through the sweep.

:func:`mtf_trend_signals` is the example strategy ``mtf_trend``: long while the HTF close is above its EMA
(the trend filter, e.g. 4h EMA 50) and the LTF fast EMA is above the slow one (e.g. 15m EMA 9/21); entries
on the LTF cross up while the filter is on, exits on the LTF cross down or when the filter turns off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtests.equity.indicators import ema

if TYPE_CHECKING:
    from backtests.equity.data import Bars
    from quantlake.lake import Lake


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


# ------------------------------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class HigherTimeframe:
    """Closed higher-timeframe bars on a sweep's lower-timeframe rows (carried by :class:`Bars` ``.htf``).

    ``close[:, s]`` holds symbol ``s``'s own HTF closes in time order (NaN-padded at the end), so an
    indicator over a column runs over that symbol's HTF bars only; ``last[t, s]`` is the position in that
    column of the latest HTF bar whose close is at or before the close of lower-timeframe row ``t`` (-1:
    none yet).  Slicing the rows of the bars (a calendar group, a window) slices ``last`` only: an HTF value
    read through :meth:`gather` is always one known at the row's close."""

    interval: str
    close: np.ndarray  # (H, S)
    last: np.ndarray  # (T, S) int64

    def take(self, columns: np.ndarray) -> HigherTimeframe:
        return HigherTimeframe(self.interval, self.close[:, columns], self.last[:, columns])

    def at_rows(self, rows: np.ndarray | slice) -> HigherTimeframe:
        return HigherTimeframe(self.interval, self.close, self.last[rows])

    def gather(self, values: np.ndarray) -> np.ndarray:
        """``(H, S)`` per-HTF-bar values -> ``(T, S)``: the value of each row's latest closed HTF bar
        (False / NaN before the first one)."""
        pos = np.maximum(self.last, 0)
        out = np.take_along_axis(values, pos, axis=0)
        none = self.last < 0
        if out.dtype == np.bool_:
            return out & ~none
        return np.where(none, np.nan, out)


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Instants as naive UTC ``datetime64[ns]`` (comparable whatever the source's unit and zone)."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(None).to_numpy().astype("datetime64[ns]")


def with_higher_timeframe(
    bars: Bars,
    lake: Lake,
    interval: str,
    htf_interval: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    price: str = "close",
) -> Bars:
    """``bars`` (loaded at ``interval`` by :func:`backtests.equity.data.load_bars`) with the closed
    ``htf_interval`` bars of the same symbols attached (``bars.htf``), both from :func:`features.bars.resample`.

    Each lower-timeframe row is matched to its bar's ``close_ts`` and sees the HTF bars with ``close_ts`` at
    or before it (a binary search per symbol).  ``price="adj_close"`` uses the HTF adjusted closes, as the
    lower timeframe does."""
    from features.bars import resample

    syms = list(bars.symbols)
    ltf = resample(lake, syms, interval, start, end)
    htf = resample(lake, syms, htf_interval, start, end)
    intraday_rows = interval != "1d" or any(":" in s for s in syms)  # how load_bars indexed the rows
    key = _utc_ns(ltf["ts"]) if intraday_rows else pd.to_datetime(ltf["date"]).to_numpy().astype("datetime64[ns]")
    ltf = ltf.assign(_key=key, _close=_utc_ns(ltf["close_ts"]))
    htf = htf.sort_values(["symbol", "ts"], kind="stable")
    counts = htf.groupby("symbol", sort=False).size()
    close = np.full((max(int(counts.max()) if len(counts) else 0, 1), len(syms)), np.nan)
    last = np.full(bars.close.shape, -1, dtype=np.int64)
    index = pd.DatetimeIndex(bars.index).astype("datetime64[ns]")
    by_ltf = dict(tuple(ltf.groupby("symbol", sort=False)))
    by_htf = dict(tuple(htf.groupby("symbol", sort=False)))
    for j, s in enumerate(syms):
        h = by_htf.get(s)
        lo = by_ltf.get(s)
        if h is None or lo is None:
            continue
        values = h["close"].to_numpy(dtype=float)
        if price == "adj_close":
            adj = h["adj_close"].to_numpy(dtype=float)
            values = np.where(np.isnan(adj), values, adj)
        close[: len(h), j] = values
        row_close = pd.Series(lo["_close"].to_numpy(), index=pd.DatetimeIndex(lo["_key"])).reindex(index)
        known = row_close.notna().to_numpy()
        instants = row_close.to_numpy()[known]
        last[known, j] = np.searchsorted(_utc_ns(h["close_ts"]), instants, side="right") - 1
    return replace(bars, htf=HigherTimeframe(htf_interval, close, last))
