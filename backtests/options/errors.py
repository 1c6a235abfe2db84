"""Errors of the option backtester (all :class:`quantlake.errors.UserInputError`: the CLI exits 2)."""

from __future__ import annotations

from quantlake.errors import UserInputError


class ChainError(UserInputError):
    """An option chain is missing, malformed, or cannot price a held contract."""


class MarketDataError(UserInputError):
    """The lake lacks the underlying's bars (or the regime features a strategy needs) for the range."""


class OrderError(UserInputError):
    """A strategy built an order the engine cannot execute (no legs, unknown position, bad quantity)."""
