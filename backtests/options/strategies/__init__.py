"""Option strategies: each a small class with ``name``, ``default_delay`` and ``on_bar(ctx) -> orders``.

:func:`build_strategy` turns a validated strategy config into its strategy object.
"""

from __future__ import annotations

from backtests.options.config import (
    ButterflyConfig,
    BuyWriteConfig,
    CalendarConfig,
    CoveredCallConfig,
    EmaCrossoverConfig,
    IronCondorConfig,
    IvRankRouterConfig,
    ProtectivePutConfig,
    PutCreditSpreadConfig,
    PutWriteConfig,
)
from backtests.options.context import Strategy
from backtests.options.strategies.income import BuyWrite, CoveredCall, ProtectivePut, PutWrite
from backtests.options.strategies.router import IvRankRouter, route
from backtests.options.strategies.signals import EmaCrossover
from backtests.options.strategies.spreads import IronCondor, PutCreditSpread, credit_package
from backtests.options.strategies.structures import Butterfly, Calendar

StrategyConfigModel = (
    CoveredCallConfig | ProtectivePutConfig | BuyWriteConfig | PutWriteConfig | PutCreditSpreadConfig
    | IronCondorConfig | EmaCrossoverConfig | IvRankRouterConfig | ButterflyConfig | CalendarConfig
)


def build_strategy(cfg: StrategyConfigModel) -> Strategy:
    if isinstance(cfg, CoveredCallConfig):
        return CoveredCall(cfg)
    if isinstance(cfg, ProtectivePutConfig):
        return ProtectivePut(cfg)
    if isinstance(cfg, BuyWriteConfig):
        return BuyWrite(cfg)
    if isinstance(cfg, PutWriteConfig):
        return PutWrite(cfg)
    if isinstance(cfg, PutCreditSpreadConfig):
        return PutCreditSpread(cfg)
    if isinstance(cfg, IronCondorConfig):
        return IronCondor(cfg)
    if isinstance(cfg, EmaCrossoverConfig):
        return EmaCrossover(cfg)
    if isinstance(cfg, ButterflyConfig):
        return Butterfly(cfg)
    if isinstance(cfg, CalendarConfig):
        return Calendar(cfg)
    return IvRankRouter(cfg)


__all__ = [
    "Butterfly", "BuyWrite", "Calendar", "CoveredCall", "EmaCrossover", "IronCondor", "IvRankRouter", "ProtectivePut", "PutCreditSpread",
    "PutWrite", "build_strategy", "credit_package", "route",
]
