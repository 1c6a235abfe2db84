"""The same crossover strategies written for backtrader: a second engine, with its own indicators, order
handling and broker, that the vectorbt sweeps are checked against (tests and the benchmark).

Execution matches :mod:`backtests.equity.simulate` with ``fill: next_open``: a signal on bar t's close is
acted on at bar t+1's open (backtrader's cheat-on-open hook sees that open, so an all-in order can be sized
on it exactly as vectorbt sizes ``size=inf``), percentage slippage applies to the open without capping at
the bar's range, commission is a fraction of the traded value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BtTrade:
    entry_date: pd.Timestamp
    exit_date: pd.Timestamp | None
    size: float
    entry_price: float
    exit_price: float | None


@dataclass(frozen=True)
class BtResult:
    trades: list[BtTrade]
    final_value: float


def _strategy_class() -> Any:
    import backtrader as bt

    class Crossover(bt.Strategy):
        params = (
            ("kind", "ema"),
            ("fast", 10),
            ("slow", 30),
            ("macd_confirm", False),
            ("macd", (12, 26, 9)),
            ("rsi_not_overbought", False),
            ("rsi_window", 14),
            ("rsi_upper", 70.0),
            ("rsi_lookback", 5),
            ("fees", 0.0),
            ("slippage", 0.0),
        )

        def __init__(self) -> None:
            ma = bt.ind.EMA if self.p.kind == "ema" else bt.ind.SMA
            fast = ma(self.data.close, period=self.p.fast)
            slow = ma(self.data.close, period=self.p.slow)
            self.cross = bt.ind.CrossOver(fast, slow)
            if self.p.macd_confirm:
                f, s, g = self.p.macd
                self.macd = bt.ind.MACD(self.data.close, period_me1=f, period_me2=s, period_signal=g)
            if self.p.rsi_not_overbought:
                self.rsi = bt.ind.RSI(self.data.close, period=self.p.rsi_window, safediv=True)
            self.pending: str | None = None
            self.last_up_cross = -(10**9)
            self.fills: list[tuple[pd.Timestamp, float, float]] = []

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                size = order.executed.size
                self.fills.append((bt.num2date(order.executed.dt), size, order.executed.price))
            elif order.status in (order.Margin, order.Rejected, order.Canceled):
                raise RuntimeError(f"backtrader rejected an order: {order.getstatusname()}")

        def _ready(self, line: Any) -> bool:
            return len(line) > 0 and not np.isnan(line[0])

        def _track_rsi(self) -> None:
            # an RSI cross above rsi_upper blocks entries for rsi_lookback bars (also before next() starts)
            if (
                self.p.rsi_not_overbought
                and len(self.rsi) > self.p.rsi_window + 1
                and self.rsi[0] > self.p.rsi_upper >= self.rsi[-1]
            ):
                self.last_up_cross = len(self)

        def prenext(self) -> None:
            self._track_rsi()

        def next(self) -> None:
            i = len(self)
            self._track_rsi()
            self.pending = None
            if self.cross[0] > 0 and not self.position:
                ok = True
                if self.p.macd_confirm:
                    ok &= self._ready(self.macd.macd) and self._ready(self.macd.signal)
                    ok &= bool(self.macd.macd[0] > self.macd.signal[0])
                if self.p.rsi_not_overbought:
                    ok &= i - self.last_up_cross >= self.p.rsi_lookback
                if ok:
                    self.pending = "buy"
            elif self.cross[0] < 0 and self.position:
                self.pending = "sell"

        def next_open(self) -> None:
            if self.pending == "buy":
                price = self.data.open[0] * (1 + self.p.slippage)
                cash = self.broker.getcash()
                # all-in as vectorbt's size=inf; a hair less so float rounding cannot exceed the cash
                self.buy(size=cash / (price * (1 + self.p.fees)) * (1 - 1e-12))
            elif self.pending == "sell":
                self.close()
            self.pending = None

    return Crossover


def run_backtrader(
    bars: pd.DataFrame,
    kind: str = "ema",
    fast: int = 10,
    slow: int = 30,
    init_cash: float = 10_000.0,
    fees: float = 0.0,
    slippage: float = 0.0,
    **params: Any,
) -> BtResult:
    """Backtest one symbol's daily ``bars`` (index = dates; open, high, low, close, volume) in backtrader.

    ``params``: ``macd_confirm``, ``macd`` (fast, slow, signal), ``rsi_not_overbought``, ``rsi_window``,
    ``rsi_upper``, ``rsi_lookback`` (the ``ema_cross`` options with ``rsi_filter: not_overbought``)."""
    import backtrader as bt

    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    feed = bars[["open", "high", "low", "close", "volume"]].copy()
    feed.index = pd.DatetimeIndex(feed.index)
    cerebro.adddata(bt.feeds.PandasData(dataname=feed))
    cerebro.addstrategy(
        _strategy_class(), kind=kind, fast=fast, slow=slow, fees=fees, slippage=slippage, **params
    )
    cerebro.broker.setcash(init_cash)
    cerebro.broker.setcommission(commission=fees)
    if slippage:
        cerebro.broker.set_slippage_perc(slippage, slip_open=True, slip_match=True, slip_out=True)
    strat = cerebro.run()[0]
    trades: list[BtTrade] = []
    open_fill: tuple[pd.Timestamp, float, float] | None = None
    for when, size, price in strat.fills:
        if size > 0:
            open_fill = (pd.Timestamp(when).normalize(), size, price)
        elif open_fill is not None:
            trades.append(BtTrade(open_fill[0], pd.Timestamp(when).normalize(), open_fill[1], open_fill[2], price))
            open_fill = None
    if open_fill is not None:
        trades.append(BtTrade(open_fill[0], None, open_fill[1], open_fill[2], None))
    return BtResult(trades, float(cerebro.broker.getvalue()))
