"""backtrader drives the calendar, the underlying and the signal indicators; the option engine runs on each bar.

backtrader's broker knows stocks and futures but not option contracts, expiries, assignment or multi-leg
margin, so the account (shares included, so cash is one number) lives in :class:`~engine.Engine`;
backtrader feeds it one bar at a time through :class:`Driver` with the extra lines the strategies read
(rate, IV rank, VIX, regime) and computes the EMA crossover with its own ``EMA`` and ``CrossOver``
indicators (the EMA seeded with an SMA, backtrader's convention).  Bars before ``start`` only warm the
indicators up.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from backtests.options.engine import Bar, Engine
from backtests.options.market import REGIMES, MarketData

FEED_COLUMNS = ("open", "high", "low", "close", "volume", "rate", "iv_rank", "vix", "regime_code")


class OptionFeed(bt.feeds.PandasDirectData):
    """Daily bars plus the rate, IV rank, VIX and a regime code (index into :data:`REGIMES`).

    ``PandasDirectData`` reads the frame of :func:`feed_frame` row by row with ``itertuples`` (parameters are
    positions in the tuple, 0 = the date index), several times faster than ``PandasData``'s per-value look-ups,
    which cost a sweep of many backtests more than the option engine itself."""

    lines = ("rate", "iv_rank", "vix", "regime_code")
    params = (("datetime", 0), *((name, i + 1) for i, name in enumerate(FEED_COLUMNS)), ("openinterest", -1))


class Driver(bt.Strategy):
    params = (("engine", None), ("start", None), ("ema", None))

    def __init__(self) -> None:
        self.engine: Engine = self.p.engine
        self.start_date: dt.date = self.p.start
        self.cross: Any = None
        if self.p.ema:
            fast, slow = self.p.ema
            self.ema_fast = bt.ind.EMA(self.data.close, period=fast)
            self.ema_slow = bt.ind.EMA(self.data.close, period=slow)
            self.cross = bt.ind.CrossOver(self.ema_fast, self.ema_slow)

    def prenext(self) -> None:
        self._step(ready=False)

    def next(self) -> None:
        self._step(ready=True)

    def _step(self, ready: bool) -> None:
        d = self.data
        day = d.datetime.date(0)
        if day < self.start_date:
            return
        signals: dict[str, float] = {}
        if self.cross is not None and ready:
            signals = {"ema_cross": float(self.cross[0]), "ema_fast": float(self.ema_fast[0]),
                       "ema_slow": float(self.ema_slow[0])}
        code = d.regime_code[0]
        regime = REGIMES[int(code)] if math.isfinite(code) and 0 <= code < len(REGIMES) else "unknown"
        rate = float(d.rate[0])
        self.engine.on_bar(Bar(date=day, close=float(d.close[0]), open=float(d.open[0]),
                               rate=rate if math.isfinite(rate) else 0.0, regime=regime,
                               iv_rank=float(d.iv_rank[0]), vix=float(d.vix[0]), signals=signals))


def feed_frame(market: MarketData) -> pd.DataFrame:
    bars = market.bars
    df = bars[["open", "high", "low", "close", "volume", "rate", "iv_rank", "vix"]].astype(float).copy()
    codes = {r: i for i, r in enumerate(REGIMES)}
    df["regime_code"] = bars["regime"].map(codes).fillna(codes["unknown"]).astype(float).to_numpy()
    df.index = pd.DatetimeIndex(bars.index)
    return df[list(FEED_COLUMNS)]  # the order OptionFeed's column positions assume


def run_cerebro(market: MarketData, engine: Engine, ema: tuple[int, int] | None = None) -> None:
    """Feed every bar of ``market`` through backtrader into ``engine``."""
    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True)
    cerebro.adddata(OptionFeed(dataname=feed_frame(market)), name=market.underlying)
    cerebro.addstrategy(Driver, engine=engine, start=market.start, ema=ema)
    cerebro.run()


def calendar(market: MarketData) -> np.ndarray:
    return np.asarray(market.bars.index.to_numpy(dtype="datetime64[D]"))
