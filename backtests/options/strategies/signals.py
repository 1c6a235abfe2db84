"""Signal-driven long options: the EMA-crossover strategy (backtrader's EMA/CrossOver on the close)."""

from __future__ import annotations

import math

from backtests.options import selection as sel
from backtests.options.config import Delay, EmaCrossoverConfig
from backtests.options.context import Context
from backtests.options.contracts import Right
from backtests.options.orders import CloseOrder, OptionOrder, Order, OrderLeg
from backtests.options.strategies.base import contracts_for, net_mid


class EmaCrossover:
    """Cross up → buy calls, cross down → buy puts, on the first third-Friday monthly at least ``min_dte``
    days out, strike by rule; the opposite signal closes the other side (``close_on_opposite``); managed
    exits (profit target, stop, DTE) otherwise.  The signal of bar t trades at t+1 (DESIGN §5)."""

    name = "ema_crossover"
    default_delay: Delay = "next_bar"

    def __init__(self, cfg: EmaCrossoverConfig) -> None:
        self.cfg = cfg
        self.ema = (cfg.fast, cfg.slow)
        self.horizon_days = cfg.min_dte + 35  # the first monthly at least min_dte away
        self.regime_uses: tuple[str, ...] = (
            (f"strategy.exits.exit_regimes={list(cfg.exits.exit_regimes)}",) if cfg.exits.exit_regimes else ())

    def on_bar(self, ctx: Context) -> list[Order]:
        cross = ctx.bar.signals.get("ema_cross", float("nan"))
        if not math.isfinite(cross) or cross == 0:
            return []
        right: Right = "C" if cross > 0 else "P"
        orders: list[Order] = []
        if self.cfg.close_on_opposite:
            other = "P" if right == "C" else "C"
            orders += [CloseOrder(p.id, "opposite_signal") for p in ctx.positions(self.name)
                       if p.legs[0].contract.right == other]
        if (right == "C" and self.cfg.direction == "puts_only") or (right == "P" and self.cfg.direction == "calls_only"):
            return orders
        chain = ctx.chain()
        if chain is None:
            return orders
        expiry = sel.monthly_expiry(chain, min_dte=self.cfg.min_dte)
        if expiry is None:
            return orders
        c = sel.by_rule(chain, ctx.underlying, expiry, right, ctx.spot, self.cfg.strike)
        if c is None:
            return orders
        legs = [OrderLeg(c, 1)]
        debit = net_mid(ctx, legs)
        n = contracts_for(ctx, self.cfg.sizing, debit, c.strike, self.name)
        if n > 0:
            orders.append(OptionOrder(tuple(legs), n, self.name, reason=f"ema_cross_{'up' if cross > 0 else 'down'}",
                                      exits=self.cfg.exits))
        return orders
