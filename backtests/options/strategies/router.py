"""The adaptive IV-rank router: sell premium when implied vol is rich, buy it when cheap and the regime says
it will expand, size by regime and confidence (:mod:`risk.sizing`), stand aside in the neutral regime."""

from __future__ import annotations

import math
from typing import Literal

from backtests.options import selection as sel
from backtests.options.config import Delay, IvRankRouterConfig, StrikeRule
from backtests.options.context import Context
from backtests.options.contracts import Right
from backtests.options.orders import OptionOrder, Order, OrderLeg
from backtests.options.strategies.base import chain_expiry, contracts_for, max_loss_per_share, net_mid
from backtests.options.strategies.spreads import credit_package
from backtests.options.strategies.structures import debit_vertical

Route = Literal["sell", "buy", "aside"]


def route(cfg: IvRankRouterConfig, regime: str, iv_rank: float) -> tuple[Route, str]:
    """(decision, confidence label) for one bar — a pure function, tested on its own."""
    if regime == "neutral" or regime == "unknown" or not math.isfinite(iv_rank):
        return "aside", "low"
    if iv_rank >= cfg.sell_above and regime in cfg.sell_regimes:
        return "sell", "high" if iv_rank >= cfg.strong_sell else "medium"
    if iv_rank <= cfg.buy_below and regime in cfg.buy_regimes:
        return "buy", "high" if iv_rank <= cfg.strong_buy else "medium"
    return "aside", "low"


class IvRankRouter:
    name = "iv_rank_router"
    default_delay: Delay = "next_bar"
    regime_uses: tuple[str, ...] = ("strategy.kind=iv_rank_router (routes on the regime and the IV rank)",)

    def __init__(self, cfg: IvRankRouterConfig) -> None:
        self.cfg = cfg
        self.horizon_days = cfg.dte.max
        self.decisions: dict[str, int] = {"sell": 0, "buy": 0, "aside": 0, "sized_to_zero": 0}

    def on_bar(self, ctx: Context) -> list[Order]:
        if ctx.positions(self.name) or ctx.pending_opens(self.name):
            return []
        bar = ctx.bar
        decision, confidence = route(self.cfg, bar.regime, bar.iv_rank)
        self.decisions[decision] += 1
        if decision == "aside":
            return []
        order = self._sell(ctx) if decision == "sell" else self._buy(ctx)
        if order is None:
            return []
        from risk.sizing import adaptive_quantity

        units = int(adaptive_quantity(float(order.units), bar.regime, confidence, self.cfg.adaptive))
        if units <= 0:
            self.decisions["sized_to_zero"] += 1
            ctx.skip(self.name, f"adaptive sizing: {order.units} contract(s) x regime {bar.regime} x confidence "
                                f"{confidence} rounds to 0", base_units=float(order.units))
            return []
        order.units = units
        order.meta.update({"route": decision, "confidence": confidence, "iv_rank": bar.iv_rank})
        return [order]

    def _sell(self, ctx: Context) -> OptionOrder | None:
        rule = StrikeRule(by="delta", value=self.cfg.short_delta)
        call_rule = rule if self.cfg.sell_structure == "iron_condor" else None
        built = credit_package(ctx, self.cfg.dte, self.cfg.width, rule, call_rule)
        if built is None:
            return None
        legs, credit, max_loss = built
        n = contracts_for(ctx, self.cfg.base, max_loss, legs[-1].contract.strike, self.name)
        if n <= 0:
            return None
        return OptionOrder(tuple(legs), n, self.name, reason="sell_premium", exits=self.cfg.sell_exits,
                           meta={"credit_mid": credit, "max_loss": max_loss})

    def _buy(self, ctx: Context) -> OptionOrder | None:
        found = chain_expiry(ctx, self.cfg.dte)
        if found is None:
            return None
        chain, expiry = found
        structure = self.cfg.buy_structure
        legs: list[OrderLeg] | None
        if structure == "straddle":
            call = sel.at_the_money(chain, ctx.underlying, expiry, "C", ctx.spot)
            put = None if call is None else sel.at_the_money(chain, ctx.underlying, expiry, "P", call.strike)
            legs = None if call is None or put is None else [OrderLeg(put, 1), OrderLeg(call, 1)]
        elif structure == "strangle":
            call = sel.by_delta(chain, ctx.underlying, expiry, "C", self.cfg.strangle_delta)
            put = sel.by_delta(chain, ctx.underlying, expiry, "P", self.cfg.strangle_delta)
            legs = None if call is None or put is None else [OrderLeg(put, 1), OrderLeg(call, 1)]
        else:
            distance = self.cfg.debit_width.distance(ctx.spot)
            rights: list[Right] = (["C"] if structure == "call_debit_spread" else
                                   ["P"] if structure == "put_debit_spread" else ["P", "C"])
            legs = []
            for right in rights:
                vertical = debit_vertical(ctx, chain, expiry, right, distance)
                if vertical is None:
                    return None
                legs += vertical
        if not legs:
            return None
        debit = net_mid(ctx, legs)
        n = contracts_for(ctx, self.cfg.base, max_loss_per_share(legs, debit), legs[-1].contract.strike, self.name)
        if n <= 0:
            return None
        return OptionOrder(tuple(legs), n, self.name, reason="buy_premium", exits=self.cfg.buy_exits,
                           meta={"debit_mid": debit, "structure": structure})
