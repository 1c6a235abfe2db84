"""Stock-and-option income strategies: covered calls, protective puts, and the CBOE buy-write (BXM) and
put-write (PUT) index rules."""

from __future__ import annotations

import math

from backtests.options import selection as sel
from backtests.options.config import (
    BuyWriteConfig,
    CoveredCallConfig,
    Delay,
    ProtectivePutConfig,
    PutWriteConfig,
    RollRule,
    StrikeRule,
)
from backtests.options.contracts import MULTIPLIER, Right
from backtests.options.engine import Context
from backtests.options.orders import CloseOrder, OptionOrder, Order, OrderLeg, ShareOrder
from backtests.options.strategies.base import contracts_for


def _lots_of(ctx: Context, fraction: float = 1.0) -> int:
    """Shares in whole 100-lots that ``fraction`` of equity buys at the spot."""
    return math.floor(ctx.equity() * fraction / (ctx.spot * MULTIPLIER) + 1e-9) * int(MULTIPLIER)


def _needs_roll(ctx: Context, tag: str, roll: RollRule) -> list[Order]:
    out: list[Order] = []
    for pos in ctx.positions(tag):
        leg = pos.legs[0]
        dte = (leg.contract.expiry - ctx.date).days
        late = roll.at_dte is not None and dte <= roll.at_dte
        deep = roll.delta_above is not None and abs(leg.delta) >= roll.delta_above
        if late or deep:
            out.append(CloseOrder(pos.id, "roll"))
    return out


class _StockPlusOption:
    """Hold shares in 100-lots and one option position on them (short calls or long puts), rolled by rule."""

    name = "stock_plus_option"
    default_delay: Delay = "next_bar"
    right: Right = "C"
    ratio = -1

    def __init__(self, shares: int | None, rule: StrikeRule, dte: object, roll: RollRule, rebuy: bool) -> None:
        self.target_shares = shares
        self.rule, self.dte, self.roll, self.rebuy = rule, dte, roll, rebuy
        self._bought_once = False
        self.horizon_days = int(getattr(dte, "max", 365))  # the longest expiry it may hold

    def on_bar(self, ctx: Context) -> list[Order]:
        orders: list[Order] = []
        if self.target_shares is None:
            self.target_shares = _lots_of(ctx)
        held = ctx.shares + ctx.pending_shares()
        if held < self.target_shares and (self.rebuy or not self._bought_once):
            orders.append(ShareOrder(int(self.target_shares - held), "buy shares"))
            held = self.target_shares
        self._bought_once = True
        rolls = _needs_roll(ctx, self.name, self.roll)
        orders += rolls
        rolled = {r.position_id for r in rolls if isinstance(r, CloseOrder)}
        on = sum(abs(leg.qty) for p in ctx.positions(self.name) if p.id not in rolled for leg in p.legs)
        want = int(held // MULTIPLIER) - on - ctx.pending_contracts(self.name)
        order = self._option_order(ctx, want)
        if order is not None:
            orders.append(order)
        return orders

    def _option_order(self, ctx: Context, contracts: int) -> OptionOrder | None:
        if contracts <= 0:
            return None
        chain = ctx.chain()
        if chain is None:
            return None
        expiry = sel.pick_expiry(chain, self.dte)  # type: ignore[arg-type]
        if expiry is None:
            return None
        c = sel.by_rule(chain, ctx.underlying, expiry, self.right, ctx.spot, self.rule, need_bid=self.ratio < 0)
        if c is None:
            return None
        return OptionOrder((OrderLeg(c, self.ratio),), contracts, self.name, reason="entry")


class CoveredCall(_StockPlusOption):
    """Long shares, short one call per 100 shares (delta target, DTE window, roll rule); assignment sells
    the shares at the strike, which are bought back next bar when ``rebuy_shares``."""

    name = "covered_call"
    right: Right = "C"
    ratio = -1

    def __init__(self, cfg: CoveredCallConfig) -> None:
        super().__init__(cfg.shares, cfg.call, cfg.dte, cfg.roll, cfg.rebuy_shares)


class ProtectivePut(_StockPlusOption):
    """Long shares, long one put per 100 shares (strike rule, DTE window, rolled before expiry)."""

    name = "protective_put"
    right: Right = "P"
    ratio = 1

    def __init__(self, cfg: ProtectivePutConfig) -> None:
        super().__init__(cfg.shares, cfg.put, cfg.dte, cfg.roll, True)


class BuyWrite:
    """CBOE BXM: on each monthly expiration date (after the expiring call settles) hold index units worth
    ``notional_fraction`` of equity in 100-lots and sell one call per 100 units, strike at or just above
    the index, expiring at the next monthly expiration; hold to expiry."""

    name = "buy_write"
    default_delay: Delay = "same_bar"

    horizon_days = 36  # the next monthly expiry is 28 or 35 days away

    def __init__(self, cfg: BuyWriteConfig) -> None:
        self.cfg = cfg

    def on_bar(self, ctx: Context) -> list[Order]:
        if not (ctx.is_roll_day or (self.cfg.start_immediately and ctx.first_bar)):
            return []
        if ctx.positions(self.name) or ctx.pending_opens(self.name):
            return []
        orders: list[Order] = []
        target = _lots_of(ctx, self.cfg.notional_fraction)
        held = int(ctx.shares + ctx.pending_shares())
        if target != held:
            orders.append(ShareOrder(target - held, "rebalance index units"))
        chain = ctx.chain()
        if chain is None or target <= 0:
            return orders
        expiry = sel.monthly_expiry(chain, min_dte=2)  # not the expiring one (dte 1 before a Good Friday)
        if expiry is None:
            return orders
        c = sel.at_the_money(chain, ctx.underlying, expiry, "C", ctx.spot, self.cfg.strike, need_bid=True)
        if c is not None:
            orders.append(OptionOrder((OrderLeg(c, -1),), target // int(MULTIPLIER), self.name, reason="roll"))
        return orders


class PutWrite:
    """CBOE PUT: on each monthly expiration date (after the expiring put settles) sell puts at the strike
    at or just below the index, expiring at the next monthly expiration, as many as ``collateral_fraction``
    of equity secures in cash (strike x 100 each); the collateral earns the rate."""

    name = "put_write"
    default_delay: Delay = "same_bar"

    horizon_days = 36

    def __init__(self, cfg: PutWriteConfig) -> None:
        self.cfg = cfg

    def on_bar(self, ctx: Context) -> list[Order]:
        if not (ctx.is_roll_day or (self.cfg.start_immediately and ctx.first_bar)):
            return []
        if ctx.positions(self.name) or ctx.pending_opens(self.name):
            return []
        chain = ctx.chain()
        if chain is None:
            return []
        expiry = sel.monthly_expiry(chain, min_dte=2)  # not the expiring one (dte 1 before a Good Friday)
        if expiry is None:
            return []
        c = sel.at_the_money(chain, ctx.underlying, expiry, "P", ctx.spot, self.cfg.strike, need_bid=True)
        if c is None:
            return []
        from backtests.options.config import SizingConfig

        n = contracts_for(ctx, SizingConfig(method="notional", notional_fraction=self.cfg.collateral_fraction),
                          c.strike, c.strike)
        return [OptionOrder((OrderLeg(c, -1),), n, self.name, reason="roll")] if n > 0 else []
