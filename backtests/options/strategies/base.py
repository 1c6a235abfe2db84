"""What the strategies share: contract sizing and package building helpers."""

from __future__ import annotations

import math

import numpy as np

from backtests.options.config import SizingConfig
from backtests.options.contracts import MULTIPLIER, Contract
from backtests.options.engine import Context
from backtests.options.orders import OrderLeg


def contracts_for(ctx: Context, sizing: SizingConfig, max_loss_per_share: float, strike: float) -> int:
    """Contracts (package units) for one entry under ``sizing`` (see :class:`SizingConfig`)."""
    from risk.sizing import spread_contracts

    equity = ctx.equity()
    if sizing.method == "fixed":
        n = float(sizing.contracts)
    elif sizing.method == "risk":
        if not (max_loss_per_share > 0 and math.isfinite(max_loss_per_share)):
            return 0
        n = float(spread_contracts(equity, sizing.risk_fraction, max_loss_per_share, MULTIPLIER))
    else:
        n = math.floor(equity * sizing.notional_fraction / (strike * MULTIPLIER) + 1e-9)
    return int(min(max(n, 0.0), sizing.max_contracts))


def net_mid(ctx: Context, legs: list[OrderLeg]) -> float:
    """Net mid price per unit of a package (> 0 debit, < 0 credit)."""
    q = ctx.quotes([leg.contract for leg in legs])
    return float(np.sum(np.array([leg.ratio for leg in legs], dtype=float) * q.mid))


def vertical_width(short: Contract, long: Contract) -> float:
    return abs(short.strike - long.strike)
