"""Fill prices and commissions (vectorized over the legs of a package).

Sign convention: ``ratio`` > 0 buys, < 0 sells; a package's *net* price per unit is ``sum(ratio * price)``,
positive for a debit (paid), negative for a credit (received).  ``mid`` is the quote's mid (the chain's, see
:mod:`quotes`); ``None`` means ``(bid + ask) / 2``.
"""

from __future__ import annotations

import numpy as np

from backtests.options.config import Commissions, FillConfig


def natural_net(bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray) -> float:
    """Net price paying the ask on buys and taking the bid on sells."""
    return float(np.sum(ratio * np.where(ratio > 0, ask, bid)))


def _mid(bid: np.ndarray, ask: np.ndarray, mid: np.ndarray | None) -> np.ndarray:
    return (bid + ask) / 2.0 if mid is None else mid


def mid_net(bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray, mid: np.ndarray | None = None) -> float:
    return float(np.sum(ratio * _mid(bid, ask, mid)))


def limit_price(bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray, offset: float,
                mid: np.ndarray | None = None) -> float:
    """``mid + offset * (natural - mid)``: 0 = at the mid, 1 = at the natural price."""
    m = mid_net(bid, ask, ratio, mid)
    return m + offset * (natural_net(bid, ask, ratio) - m)


def limit_fills(limit: float, bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray, reference: str,
                mid: np.ndarray | None = None) -> bool:
    """True when the package's reference price (``natural`` or ``mid``) is at or better than ``limit``."""
    ref = natural_net(bid, ask, ratio) if reference == "natural" else mid_net(bid, ask, ratio, mid)
    return ref <= limit + 1e-12


def limit_fill_net(limit: float, bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray) -> float:
    """The net price a filled limit order gets: the limit, or the natural price when the market gapped
    through it (a marketable limit order takes the better price)."""
    return min(limit, natural_net(bid, ask, ratio))


def leg_prices(bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray, cfg: FillConfig,
               mid: np.ndarray | None = None) -> np.ndarray:
    """Per-leg fill prices for a ``market`` or ``mid`` fill, ``slippage`` against the trader (sells floored
    at 0)."""
    side = np.sign(ratio)
    px = np.where(side > 0, ask, bid) if cfg.mode == "market" else _mid(bid, ask, mid)
    return np.maximum(px + side * cfg.slippage, 0.0)


def allocate_limit(bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray, limit: float,
                   mid: np.ndarray | None = None) -> np.ndarray:
    """Per-leg prices of a package filled at net ``limit``: each leg moves from its mid toward (or away
    from) its natural side in proportion to its half-spread, so ``sum(ratio * price) == limit``."""
    mid = _mid(bid, ask, mid)
    side = np.sign(ratio)
    half = (ask - bid) / 2.0
    gap = limit - float(np.sum(ratio * mid))
    weight = np.abs(ratio) * half
    if weight.sum() > 0:
        px = mid + side * half * gap / weight.sum()
    else:
        px = mid + side * gap / np.abs(ratio).sum()
    return np.maximum(px, 0.0)


def option_commission(contracts: float, cfg: Commissions) -> float:
    """Commission of one option order of ``contracts`` contracts in total (all legs)."""
    if contracts <= 0:
        return 0.0
    return max(cfg.per_contract * contracts, cfg.min_per_order)


def share_commission(shares: float, cfg: Commissions) -> float:
    if shares == 0:
        return 0.0
    return max(cfg.per_share * abs(shares), cfg.min_per_order)


def package_prices(bid: np.ndarray, ask: np.ndarray, ratio: np.ndarray, cfg: FillConfig, limit: float | None,
                   mid: np.ndarray | None = None) -> np.ndarray | None:
    """Per-leg fill prices of one package on one bar, or ``None`` when a limit order does not fill: the one
    fill rule of the backtester and of the paper broker (``cfg.mode`` ``market``/``mid`` via
    :func:`leg_prices`; ``limit`` with a ``limit`` via :func:`limit_fills`, :func:`limit_fill_net` and
    :func:`allocate_limit`)."""
    if cfg.mode == "limit" and limit is not None:
        if not limit_fills(limit, bid, ask, ratio, cfg.limit_fill, mid):
            return None
        return allocate_limit(bid, ask, ratio, limit_fill_net(limit, bid, ask, ratio), mid)
    return leg_prices(bid, ask, ratio, cfg, mid)
