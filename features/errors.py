"""Errors the features package raises on purpose (subclasses of :mod:`quantlake.errors`)."""

from __future__ import annotations

from quantlake.errors import ConfigError, LakeError, UserInputError


class FeatureBuildError(LakeError):
    """A feature build failed; the table being built stays at its previous version (exit code 1)."""


class FeatureConfigError(ConfigError):
    """A feature setting failed validation; the message names the field (exit code 2)."""


class UnknownFeatureTableError(UserInputError):
    """A feature table name that the factory does not build."""
