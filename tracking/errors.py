"""Errors raised by :mod:`tracking` (all subclasses of :mod:`quantlake.errors` types, so the CLI shows one line)."""

from __future__ import annotations

from quantlake.errors import QuantlakeError, UserInputError


class TrackingError(QuantlakeError):
    """MLflow could not complete an operation (store unreachable, artifact missing): exit code 1."""


class RunNotFoundError(UserInputError):
    """A run id that the tracking store does not know."""


class ExperimentNotFoundError(UserInputError):
    """An experiment name that the tracking store does not know."""


class JobNotFoundError(UserInputError):
    """A job name that no registered job module defines."""


class NotReproducibleError(UserInputError):
    """A run that lacks what reproducing it needs (job tag, config, lineage)."""


class ModelNotFoundError(UserInputError):
    """A registered model or model version that does not exist."""


class PromotionRejectedError(UserInputError):
    """A promotion the gate refused (use --force to override; the override is recorded)."""
