"""The strategy library (see :mod:`backtests.equity.strategies.base` for the contract).

=====================  ==========================================================================
``ema_cross``          EMA crossover with RSI context (a recent RSI cross of 70/30 within N days) and
                       MACD confirmation
``sma_cross``          SMA crossover
``rsi_reversion``      buy when RSI crosses below ``lower``, sell when it crosses above ``exit_level``
``bollinger_reversion`` buy a close below the lower band, sell a close above the middle band
``macd_trend``         MACD / signal-line crossovers (optionally only above zero, optionally short)
``ma_atr_trend``       close crosses a moving average; ATR stop (k × ATR at entry, optionally trailing)
``tsmom``              time-series momentum: the trailing return crosses a threshold
``pairs``              cointegrated pair, rolling hedge ratio, z-score entry/exit (two legs, shared cash)
``mtf_trend``          higher-timeframe EMA trend filter (``htf_interval``, closed bars only) on
                       lower-timeframe EMA entries (``interval``)
=====================  ==========================================================================

Any strategy can wear the regime filter and the universe filters (``regime:``/``universe:`` in the config).
"""

from backtests.equity.strategies import multitf, pairs, reversion, trend
from backtests.equity.strategies.base import STRATEGIES, Signals, StrategyDef

__all__ = ["STRATEGIES", "Signals", "StrategyDef", "multitf", "pairs", "reversion", "trend"]
