"""Errors execution raises on purpose (all :class:`quantlake.errors.QuantlakeError` subclasses).

Broker failures are :class:`~quantlake.errors.BrokerError` (exit code 1); a missing champion model or
stale data that the user must fix are :class:`~quantlake.errors.UserInputError` (exit code 2).
"""

from __future__ import annotations

from quantlake.errors import BrokerError, SourceError, UserInputError


class BrokerUnavailableError(BrokerError):
    """The broker cannot be reached (DNS failure, refused connection, timeout)."""


class OrderRejectedError(BrokerError):
    """The broker (or the risk gate) refused one or more orders; the message lists them."""


class DuplicateOrderError(BrokerError):
    """The broker already has an order with this client order id (it was sent before)."""


class CircuitOpenError(BrokerError):
    """The circuit breaker is open: the broker failed repeatedly, so it is not called again for a while."""


class KillSwitchError(BrokerError):
    """The drawdown kill switch is tripped: no new orders until it is reset."""


class ReconciliationError(BrokerError):
    """The broker's positions differ from what the audit trail says and strict reconciliation is on."""


class StaleDataError(SourceError):
    """The lake's latest bars are older than expected: a data fetch failed or did not run."""


class NoChampionError(UserInputError):
    """No version of the model carries the ``champion`` alias."""


class NoFeaturesError(UserInputError):
    """The feature table a model needs is missing or has no rows for the trading date."""


class NotificationError(SourceError):
    """An e-mail could not be sent (SMTP server unreachable or refused it)."""
