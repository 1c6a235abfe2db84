"""Stock-and-option income strategies: covered calls, protective puts, and the CBOE buy-write (BXM) and
put-write (PUT) index rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from backtests.options import selection as sel
from backtests.options.config import (
    BuyWriteConfig,
    CoveredCallConfig,
    Delay,
    DteWindow,
    ProtectivePutConfig,
    PutWriteConfig,
    RollRule,
    StrikeRule,
)
from backtests.options.context import Context
from backtests.options.contracts import MULTIPLIER, Contract, Right
from backtests.options.fills import share_commission
from backtests.options.orders import CloseOrder, OptionOrder, Order, OrderLeg, ShareOrder
from backtests.options.strategies.base import chain_expiry, contracts_for


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
    """Hold shares in 100-lots and options on them (short calls or long puts), rolled by rule.

    Shares first: options are written or bought only against shares **held** (not against a purchase still
    pending), ``ratio`` (the cover or protection ratio) of them, in whole contracts.  The share purchase is
    sized so that it fits the account's buying power after commissions and slippage (and, for protective
    puts, leaves room for the puts); the engine trims it to whole lots that fit at the fill's price.  Short
    calls go out as ``covered`` orders, which the engine refuses to fill beyond the shares held.
    """

    name = "stock_plus_option"
    default_delay: Delay = "next_bar"
    right: Right = "C"
    ratio = -1
    metric_prefix = "cover"

    def __init__(self, shares: int | None, rule: StrikeRule, dte: DteWindow, roll: RollRule, rebuy: bool,
                 coverage: float) -> None:
        self.fixed_shares = shares
        self.rule, self.dte, self.roll, self.rebuy, self.coverage = rule, dte, roll, rebuy, coverage
        self._held_once = False
        self._short_of_options = False
        self.horizon_days = dte.max  # the longest expiry it may hold

    # ------------------------------------------------------------------ decisions
    def on_bar(self, ctx: Context) -> list[Order]:
        orders: list[Order] = []
        held = ctx.shares
        self._held_once = self._held_once or held > 0
        orders += self._share_order(ctx, held)
        rolls = _needs_roll(ctx, self.name, self.roll)
        orders += rolls
        rolled = {r.position_id for r in rolls if isinstance(r, CloseOrder)}
        staying = [p for p in ctx.positions(self.name) if p.id not in rolled]
        on = sum(abs(leg.qty) for p in staying for leg in p.legs)
        want = math.floor(max(held, 0.0) * self.coverage / MULTIPLIER + 1e-9) - on - ctx.pending_contracts(self.name)
        freed = sum(leg.qty * MULTIPLIER * leg.mark for p in ctx.positions(self.name) if p.id in rolled
                    for leg in p.legs if math.isfinite(leg.mark))
        order = self._option_order(ctx, want, freed)
        if order is not None:
            orders.append(order)
        return orders

    def _share_order(self, ctx: Context, held: float) -> list[Order]:
        if held < 0 or (self._held_once and not self.rebuy and held == 0):
            return []
        have = held + ctx.pending_shares()
        if self.fixed_shares is not None:
            need = self.fixed_shares - int(have)
        elif have == 0:
            need = self._affordable_shares(ctx)
        else:
            return []
        if need <= 0:
            return []
        reserve = self._reserve_per_lot(ctx) * (need // int(MULTIPLIER))
        return [ShareOrder(need, "buy shares", fit_lot=int(MULTIPLIER), reserve=reserve)]

    def _affordable_shares(self, ctx: Context) -> int:
        """Whole 100-lots that the buying power pays for after commissions, slippage and the reserve."""
        st = ctx.settings
        price = ctx.spot + st.fill.share_slippage
        per_lot = MULTIPLIER * (price - ctx.spot + st.margin.stock * ctx.spot) + self._reserve_per_lot(ctx)
        if not st.margin.enabled:
            per_lot = MULTIPLIER * price + self._reserve_per_lot(ctx)
        budget = ctx.buying_power() if st.margin.enabled else ctx.cash
        lots = max(math.floor(budget / (per_lot + MULTIPLIER * st.commissions.per_share)), 0)
        while lots > 0 and lots * per_lot + share_commission(lots * MULTIPLIER, st.commissions) > budget:
            lots -= 1
        return lots * int(MULTIPLIER)

    def _reserve_per_lot(self, ctx: Context) -> float:
        return 0.0

    def _pick(self, ctx: Context) -> Contract | None:
        found = chain_expiry(ctx, self.dte)
        if found is None:
            return None
        chain, expiry = found
        return sel.by_rule(chain, ctx.underlying, expiry, self.right, ctx.spot, self.rule, need_bid=self.ratio < 0)

    def _option_order(self, ctx: Context, contracts: int, freed: float) -> OptionOrder | None:
        if contracts <= 0:
            return None
        c = self._pick(ctx)
        if c is None:
            return None
        n = self._affordable_contracts(ctx, c, contracts, freed)
        if n <= 0:
            return None
        return OptionOrder((OrderLeg(c, self.ratio),), n, self.name, reason="entry", fit=True,
                           covered=self.ratio < 0 and self.right == "C")

    def _affordable_contracts(self, ctx: Context, c: Contract, contracts: int, freed: float) -> int:
        """How many of the ``contracts`` wanted to order (writing calls needs no cash)."""
        return contracts

    # ------------------------------------------------------------------ report
    def summarize(self, daily: pd.DataFrame) -> dict[str, float]:
        """The cover/protection actually held (from the day's open legs, never from what was ordered)."""
        shares = daily["shares"].clip(lower=0.0)
        holding = shares > 0
        covered = self._covered_shares(daily)
        target = np.floor(shares * self.coverage / MULTIPLIER + 1e-9) * MULTIPLIER
        ratio = (covered[holding] / shares[holding]) if holding.any() else pd.Series(dtype=float)
        p = self.metric_prefix
        return {f"{p}.target_ratio": self.coverage,
                f"{p}.mean_ratio": float(ratio.mean()) if len(ratio) else float("nan"),
                f"{p}.short_days": float((holding & (covered < target - 1e-9)).sum()),
                f"{p}.share_days": float(holding.sum())}

    def _covered_shares(self, daily: pd.DataFrame) -> pd.Series:
        return np.minimum(daily["short_calls"] * MULTIPLIER, daily["shares"].clip(lower=0.0))


class CoveredCall(_StockPlusOption):
    """Long shares, short calls on ``cover_ratio`` of them, one per 100 shares (delta target, DTE window, roll
    rule); assignment sells the shares at the strike, which are bought back next bar when ``rebuy_shares``,
    and the calls are written again once the shares are held."""

    name = "covered_call"
    right: Right = "C"
    ratio = -1
    metric_prefix = "cover"

    def __init__(self, cfg: CoveredCallConfig) -> None:
        super().__init__(cfg.shares, cfg.call, cfg.dte, cfg.roll, cfg.rebuy_shares, cfg.cover_ratio)


class ProtectivePut(_StockPlusOption):
    """Long shares, long puts on ``protection_ratio`` of them (strike rule, DTE window, rolled before expiry).

    The share purchase leaves room for the first puts; a put order is sized to the buying power left (the
    engine trims it again at the fill), so a roll the account cannot fully pay for buys fewer puts.  The
    daily ``protected_shares`` and the ``protection.*`` metrics count the puts actually held."""

    name = "protective_put"
    right: Right = "P"
    ratio = 1
    metric_prefix = "protection"

    def __init__(self, cfg: ProtectivePutConfig) -> None:
        super().__init__(cfg.shares, cfg.put, cfg.dte, cfg.roll, True, cfg.protection_ratio)

    def _put_cost(self, ctx: Context, c: Contract) -> float:
        q = ctx.quotes([c])
        return float(q.ask[0] + ctx.settings.fill.slippage) * MULTIPLIER + ctx.settings.commissions.per_contract

    def _reserve_per_lot(self, ctx: Context) -> float:
        c = self._pick(ctx)
        return 0.0 if c is None else self._put_cost(ctx, c) * self.coverage

    def _affordable_contracts(self, ctx: Context, c: Contract, contracts: int, freed: float) -> int:
        cost = self._put_cost(ctx, c)
        budget = ctx.buying_power() + freed
        n = min(contracts, max(math.floor(budget / cost), 0)) if cost > 0 else contracts
        if n <= 0 and not self._short_of_options:
            ctx.skip(self.name, f"cannot pay for a put: {cost:,.2f} each, buying power {budget:,.2f}",
                     wanted=float(contracts), cost=cost, buying_power=budget)
        self._short_of_options = n <= 0
        return n

    def _covered_shares(self, daily: pd.DataFrame) -> pd.Series:
        return daily["protected_shares"]


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
