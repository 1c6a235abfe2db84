"""Pre-trade risk limits for option backtests that opt in (``risk_limits:`` in the config): every opening
order is checked by :func:`risk.limits.validate` — the same check paper trading runs — against the book held
at that bar, and refused with the failed limits as the reason when it does not pass.

The engine's objects become :mod:`risk.book` objects here: the order's legs a :class:`~risk.book.ComboOrder`
(one position: its maximum loss is the spread's, not each leg's), the open legs and shares the positions,
each with its Greeks from the bar's quotes, marked at mid; the account's equity at the bar's close, its cash
and the peak equity so far (for drawdown control).  Closing orders are never checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from backtests.options.account import Account, Leg
from backtests.options.contracts import Contract
from backtests.options.quotes import LegQuotes
from risk import book as rb
from risk.limits import LimitCheck, Limits, validate


def _greeks(delta: float, gamma: float, vega: float, theta: float) -> rb.Greeks:
    return rb.Greeks(delta=float(delta), gamma=float(gamma), vega=float(vega), theta=float(theta))


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) and x > 0 else None


def book(account: Account, underlying: str, spot: float) -> list[rb.Position]:
    """The account's open legs and shares as :class:`risk.book.Position` objects."""
    out: list[rb.Position] = []
    for pos in account.positions.values():
        leg: Leg
        for leg in pos.legs:
            c = leg.contract
            out.append(rb.Position(symbol=underlying, right=c.right, strike=c.strike, expiry=c.expiry, qty=leg.qty,
                                   price=max(float(leg.mark), 0.0) if np.isfinite(leg.mark) else 0.0,
                                   underlying_price=spot, iv=_finite(leg.iv), group=str(pos.id),
                                   greeks=_greeks(leg.delta, leg.gamma, leg.vega, leg.theta)))
    if abs(account.shares) > 1e-9:
        out.append(rb.Position(symbol=underlying, qty=account.shares, price=spot))
    return out


def combo(contracts: Sequence[Contract], qty: np.ndarray, prices: np.ndarray, q: LegQuotes, underlying: str,
          spot: float, tag: str) -> rb.ComboOrder:
    legs = [rb.Order(symbol=underlying, right=c.right, strike=c.strike, expiry=c.expiry, qty=abs(float(qty[i])),
                     side="buy" if qty[i] > 0 else "sell", price=max(float(prices[i]), 0.0),
                     underlying_price=spot, iv=_finite(float(q.iv[i])),
                     greeks=_greeks(q.delta[i], q.gamma[i], q.vega[i], q.theta[i]))
            for i, c in enumerate(contracts) if qty[i] != 0]
    return rb.ComboOrder(legs=tuple(legs), tag=tag)


def check(limits: Limits, account: Account, equity_history: Iterable[float], underlying: str, spot: float,
          contracts: Sequence[Contract], qty: np.ndarray, prices: np.ndarray, q: LegQuotes, tag: str) -> LimitCheck:
    """:func:`risk.limits.validate` of opening ``qty`` contracts of ``contracts`` now."""
    equity = account.equity(spot)
    peak = max([equity, *equity_history])
    acct = rb.Account(equity=max(equity, 1e-9), cash=account.cash, peak_equity=max(peak, 1e-9))
    return validate(combo(contracts, qty, prices, q, underlying, spot, tag), acct, book(account, underlying, spot),
                    limits)


def refusal(engine: Any, contracts: Sequence[Contract], qty: np.ndarray, prices: np.ndarray, q: LegQuotes,
            tag: str) -> tuple[str, dict[str, float]] | None:
    """The engine's refusal (reason, details) of an opening that breaks its ``settings.limits``, else None."""
    limits = engine.settings.limits
    if limits is None:
        return None
    spot = engine.bar.close
    result = check(limits, engine.account, (d["equity"] for d in engine.daily), engine.settings.underlying, spot,
                   contracts, qty, prices, q, tag)
    if result.passed:
        return None
    return f"risk limits: {result.summary().removeprefix('rejected: ')}", {"equity": engine.account.equity(spot)}
