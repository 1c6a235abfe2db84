"""What the strategies share: contract sizing, package helpers and the one-package-per-entry base class."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from backtests.options import selection as sel
from backtests.options.config import Delay, DteWindow, ExitRules, PackageEntries, SizingConfig
from backtests.options.context import Context
from backtests.options.contracts import MULTIPLIER, Contract
from backtests.options.orders import CloseOrder, OptionOrder, Order, OrderLeg


def contracts_for(ctx: Context, sizing: SizingConfig, max_loss_per_share: float, strike: float,
                  tag: str = "strategy") -> int:
    """Contracts (package units) for one entry under ``sizing`` (see :class:`SizingConfig`), or under the
    config's top-level ``sizing:`` when it has one (:func:`config_sized_contracts`); 0 means skip, and a
    risk-sized entry skipped is recorded with its reason (:meth:`Context.skip`)."""
    from risk.sizing import spread_contracts

    equity = ctx.equity()
    if ctx.sizing is not None:
        return min(config_sized_contracts(ctx, max_loss_per_share), sizing.max_contracts)
    if sizing.method == "fixed":
        n = float(sizing.contracts)
    elif sizing.method == "risk":
        if not (max_loss_per_share > 0 and math.isfinite(max_loss_per_share)):
            ctx.skip(tag, f"no finite positive maximum loss to size by ({max_loss_per_share!r} per share)")
            return 0
        n = float(spread_contracts(equity, sizing.risk_fraction, max_loss_per_share, MULTIPLIER))
        if n < 1:
            budget = equity * sizing.risk_fraction
            loss = max_loss_per_share * MULTIPLIER * sizing.min_contracts
            if sizing.min_contracts < 1 or loss > sizing.min_contracts_max_risk * budget:
                ctx.skip(tag, f"sized to 0 contracts: {max(sizing.min_contracts, 1)} contract(s) risk {loss:,.2f}, "
                              f"over {sizing.min_contracts_max_risk:g}x the risk budget {budget:,.2f} "
                              f"({sizing.risk_fraction:g} x equity {equity:,.2f})",
                         max_loss=max_loss_per_share * MULTIPLIER, budget=budget, equity=equity)
                return 0
            n = float(sizing.min_contracts)
    else:
        n = math.floor(equity * sizing.notional_fraction / (strike * MULTIPLIER) + 1e-9)
    return int(min(max(n, 0.0), sizing.max_contracts))


def chain_expiry(ctx: Context, window: DteWindow) -> tuple[pd.DataFrame, dt.date] | None:
    """Today's chain and its expiry in ``window`` (:func:`selection.pick_expiry`), or ``None``."""
    chain = ctx.chain()
    if chain is None:
        return None
    expiry = sel.pick_expiry(chain, window)
    return None if expiry is None else (chain, expiry)


def net_mid(ctx: Context, legs: list[OrderLeg]) -> float:
    """Net mid price per unit of a package (> 0 debit, < 0 credit)."""
    q = ctx.quotes([leg.contract for leg in legs])
    return float(np.sum(np.array([leg.ratio for leg in legs], dtype=float) * q.mid))


def vertical_width(short: Contract, long: Contract) -> float:
    return abs(short.strike - long.strike)


def max_loss_per_share(legs: list[OrderLeg], net: float) -> float:
    """Worst loss per share of package at the legs' expiry (one expiry) for a package opened at ``net`` per unit
    (> 0 debit): ``net - min over S of the payoff``; ``inf`` when unbounded (net short calls).  For legs of two
    expiries (a calendar) it is the debit, the loss if the package is closed worthless before the first."""
    from backtests.options.margin import payoff_floor

    if len({leg.contract.expiry for leg in legs}) > 1:
        return net if net > 0 else float("inf")
    qty = np.array([leg.ratio for leg in legs], dtype=float)
    strike = np.array([leg.contract.strike for leg in legs], dtype=float)
    phi = np.array([leg.contract.phi for leg in legs], dtype=float)
    floor = payoff_floor(qty, strike, phi) / MULTIPLIER
    return float(net - floor) if math.isfinite(floor) else float("inf")


class PackageStrategy:
    """Open one multi-leg package per entry, at most ``max_open`` at a time, only in ``entry_regimes`` (None:
    any), sized by ``sizing`` on the package's maximum loss, managed by ``exits``.  Subclasses build the legs
    (:meth:`build`); a package that lost legs at an expiry (the front month of a calendar) is closed."""

    name = "package"
    default_delay: Delay = "next_bar"

    def __init__(self, entries: PackageEntries, exits: ExitRules, horizon_days: int) -> None:
        self.exits, self.sizing, self.max_open = exits, entries.sizing, entries.max_open
        self.entry_regimes = list(entries.entry_regimes) if entries.entry_regimes is not None else None
        self.horizon_days = horizon_days
        uses = []
        if exits.exit_regimes:
            uses.append(f"strategy.exits.exit_regimes={list(exits.exit_regimes)}")
        if self.entry_regimes is not None:
            uses.append(f"strategy.entry_regimes={self.entry_regimes}")
        self.regime_uses: tuple[str, ...] = tuple(uses)
        self.legs_per_package = 0

    def build(self, ctx: Context) -> tuple[list[OrderLeg], dict[str, float]] | None:
        """The package's legs (ratios per unit) and what to record about it, or ``None`` to stand aside."""
        raise NotImplementedError

    def on_bar(self, ctx: Context) -> list[Order]:
        orders: list[Order] = [CloseOrder(p.id, "legs_expired") for p in ctx.positions(self.name)
                               if self.legs_per_package and len(p.legs) < self.legs_per_package]
        open_now = len(ctx.positions(self.name)) - len(orders) + ctx.pending_opens(self.name)
        if open_now >= self.max_open:
            return orders
        if self.entry_regimes is not None and ctx.bar.regime not in self.entry_regimes:
            return orders
        built = self.build(ctx)
        if built is None:
            return orders
        legs, meta = built
        net = net_mid(ctx, legs)
        loss = max_loss_per_share(legs, net)
        n = contracts_for(ctx, self.sizing, loss, legs[-1].contract.strike, self.name)
        if n <= 0:
            return orders
        self.legs_per_package = len(legs)
        meta = {"net_mid": net, "max_loss": loss, **meta}
        return [*orders, OptionOrder(tuple(legs), n, self.name, exits=self.exits, meta=meta)]


def config_sized_contracts(ctx: Context, max_loss_per_share: float) -> int:
    """Contracts under the config's ``sizing:`` (:class:`risk.position_sizing.SizingSpec`): the packages whose
    maximum loss is the method's fraction ``f`` of equity (:func:`risk.sizing.spread_contracts`).

    ``all_in``: f = 1; ``fixed_fraction``: f = ``fraction``; ``kelly``: f from the strategy's closed positions
    (returns on maximum loss, :func:`risk.position_sizing.trade_kelly_fraction`); ``vol_target``: f =
    ``fraction`` (default 1) × target / realized volatility of the underlying (capped at ``cap``);
    ``atr_risk``: f = ``risk_fraction`` and the loss per share is the smaller of the maximum loss and
    ``atr_multiple`` × ATR (a move of that size costs at most that much per share: |delta| ≤ 1)."""
    from risk.position_sizing import trade_kelly_fraction
    from risk.sizing import spread_contracts

    spec = ctx.sizing
    assert spec is not None
    if not (max_loss_per_share > 0 and math.isfinite(max_loss_per_share)):
        return 0
    loss = max_loss_per_share
    if spec.method == "all_in":
        f = 1.0
    elif spec.method == "fixed_fraction":
        f = spec.base_fraction
    elif spec.method == "kelly":
        f = trade_kelly_fraction(spec, ctx.closed_returns_on_risk())
    elif spec.method == "vol_target":
        f = spec.base_fraction * ctx.sizing_input("vol_factor")
    else:
        f = spec.risk_fraction
        atr = ctx.sizing_input("atr")
        if not (atr > 0 and math.isfinite(atr)):
            return 0
        loss = min(loss, spec.atr_multiple * atr)
    f = min(f, spec.cap, 1.0)  # never more than the whole equity at maximum loss
    if not (f > 0 and math.isfinite(f)):
        return 0
    return int(spread_contracts(ctx.equity(), f, loss, MULTIPLIER))
