"""Specific exception types.  The CLI turns any :class:`QuantlakeError` into one clear line.

User mistakes (bad symbol, bad date, malformed file, unknown table) exit with code 2; failures of the
outside world (network down, broker outage) exit with code 1.  Neither prints a traceback.
"""

from __future__ import annotations


class QuantlakeError(Exception):
    """Base of every error quantlake raises on purpose."""

    exit_code: int = 1


class UserInputError(QuantlakeError):
    """Something the user typed or configured is wrong (exit code 2)."""

    exit_code = 2


class InvalidSymbolError(UserInputError):
    """A symbol that fails validation or that a source does not know."""


class InvalidDateError(UserInputError):
    """A date that cannot be parsed or an empty/backwards range."""


class MalformedFileError(UserInputError):
    """An input file that cannot be read as the expected layout."""


class ConfigError(UserInputError):
    """A configuration value failed validation; the message names the field."""


class TableNotFoundError(UserInputError):
    """A lake table that does not exist (yet)."""


class VersionNotFoundError(UserInputError):
    """A table version that does not exist."""


class QueryError(UserInputError):
    """A SQL query DuckDB rejected."""


class SourceError(QuantlakeError):
    """A data source failed (exit code 1): network, HTTP status, bad payload."""


class SourceUnavailableError(SourceError):
    """The source cannot be reached at all (no network, DNS failure, refused connection)."""


class MissingCredentialsError(UserInputError):
    """A required secret (API key) is not set in the environment or a Prefect Secret block."""


class LakeError(QuantlakeError):
    """The lakehouse could not complete an operation; the table is left at its previous version."""


class BrokerError(QuantlakeError):
    """A broker adapter failed (rejection, outage, circuit open)."""
