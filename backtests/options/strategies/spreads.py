"""Defined-risk premium selling: put credit spreads and iron condors with managed exits (profit target,
stop, time exit, regime-shift exit — checked daily by the engine from the position's ``exits``)."""

from __future__ import annotations

from backtests.options import selection as sel
from backtests.options.config import (
    DteWindow,
    IronCondorConfig,
    PutCreditSpreadConfig,
    StrikeRule,
    WidthRule,
)
from backtests.options.context import Context
from backtests.options.orders import OrderLeg
from backtests.options.strategies.base import PackageStrategy, chain_expiry, net_mid


def credit_package(ctx: Context, dte: DteWindow, width: WidthRule, put_rule: StrikeRule | None,
                   call_rule: StrikeRule | None) -> tuple[list[OrderLeg], float, float] | None:
    """Legs of a put vertical, a call vertical, or both (iron condor); with the net credit per share at
    mid and the maximum loss per share (wider side's width - credit).  ``None`` if the chain cannot build
    it or the credit is not positive."""
    found = chain_expiry(ctx, dte)
    if found is None:
        return None
    chain, expiry = found
    legs: list[OrderLeg] = []
    widths: list[float] = []
    for right, rule in (("P", put_rule), ("C", call_rule)):
        if rule is None:
            continue
        short = sel.by_rule(chain, ctx.underlying, expiry, right, ctx.spot, rule, need_bid=True)  # type: ignore[arg-type]
        if short is None:
            return None
        long = sel.wing(chain, short, width.distance(ctx.spot))
        if long is None:
            return None
        legs += [OrderLeg(long, 1), OrderLeg(short, -1)]
        widths.append(abs(short.strike - long.strike))
    credit = -net_mid(ctx, legs)
    max_loss = max(widths) - credit
    if not (credit > 0 and max_loss > 0):
        return None
    return legs, credit, max_loss


class _CreditSpread(PackageStrategy):
    name = "credit_spread"

    def __init__(self, cfg: PutCreditSpreadConfig | IronCondorConfig, put_rule: StrikeRule | None,
                 call_rule: StrikeRule | None) -> None:
        super().__init__(cfg, cfg.exits, cfg.dte.max)
        self.dte, self.width, self.put_rule, self.call_rule = cfg.dte, cfg.width, put_rule, call_rule

    def build(self, ctx: Context) -> tuple[list[OrderLeg], dict[str, float]] | None:
        built = credit_package(ctx, self.dte, self.width, self.put_rule, self.call_rule)
        if built is None:
            return None
        legs, credit, _ = built
        return legs, {"credit_mid": credit}


class PutCreditSpread(_CreditSpread):
    name = "put_credit_spread"

    def __init__(self, cfg: PutCreditSpreadConfig) -> None:
        super().__init__(cfg, cfg.short_put, None)


class IronCondor(_CreditSpread):
    name = "iron_condor"

    def __init__(self, cfg: IronCondorConfig) -> None:
        super().__init__(cfg, cfg.short_put, cfg.short_call)
