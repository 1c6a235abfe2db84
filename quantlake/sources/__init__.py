"""Data sources: one adapter per external system behind the protocols of :mod:`quantlake.sources.base`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantlake.errors import UserInputError

LOCAL_SOURCES = ("sample", "csv")
NETWORK_SOURCES = ("yahoo", "fred", "cot")


def get_source(name: str, path: Path | str | None = None, **kwargs: Any) -> Any:
    """Build a source adapter by name (``sample``, ``csv``, ``yahoo``, ``fred``, ``cot``)."""
    if name == "sample":
        from quantlake.sources.sample import SampleSource

        return SampleSource()
    if name == "csv":
        if path is None:
            raise UserInputError("--source csv needs --path DIR (a directory of SYMBOL.csv/.parquet files)")
        from quantlake.sources.csvdir import CsvSource

        return CsvSource(path)
    if name in NETWORK_SOURCES:
        from quantlake.sources import network

        if path is not None:
            kwargs["path"] = path
        return network.get_source(name, **kwargs)
    raise UserInputError(f"unknown source {name!r}; choose one of {', '.join(LOCAL_SOURCES + NETWORK_SOURCES)}")


def rate_limit(name: str) -> float | None:
    """Requests per second allowed for a network source (None = unlimited, local sources)."""
    if name in NETWORK_SOURCES:
        try:
            from quantlake.sources.network import RATE_LIMITS

            return RATE_LIMITS.get(name)
        except ImportError:  # pragma: no cover
            return 1.0
    return None
