"""Errors the risk package raises on purpose (all :class:`quantlake.errors.QuantlakeError` subclasses).

User mistakes subclass :class:`~quantlake.errors.UserInputError` (the CLI prints one line, exit code 2).
"""

from __future__ import annotations

from quantlake.errors import ConfigError, UserInputError


class UnknownRegimeError(ConfigError):
    """A regime or confidence label that the sizing configuration does not know."""


class InsufficientDataError(UserInputError):
    """Too few observations (or none in a window) to compute a risk figure honestly."""


class InfeasiblePortfolioError(UserInputError):
    """The optimizer found no portfolio that meets the constraints (bounds, target return)."""


class PricingInputError(UserInputError):
    """An option position lacks what full repricing needs (underlying price, expiry, a volatility)."""
