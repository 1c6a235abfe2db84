"""Data sources: one adapter per external system behind the protocols of :mod:`quantlake.sources.base`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantlake.errors import UserInputError

LOCAL_SOURCES = ("sample", "csv")
NETWORK_SOURCES = ("yahoo", "fred", "cot", "stooq")

# which sources can feed each ingest command (the CLI validates --source against this before anything runs,
# and its help lists exactly these); a new source adds its name to the kinds it supports
SOURCES_FOR: dict[str, tuple[str, ...]] = {
    "equity": ("sample", "csv", "yahoo", "stooq"),
    "options": ("sample", "csv", "yahoo"),
    "macro": ("sample", "fred"),
    "cot": ("cot",),
}


def sources_for(kind: str) -> tuple[str, ...]:
    """The sources an ingest of ``kind`` (``equity``, ``options``, ``macro``, ``cot``) accepts."""
    try:
        return SOURCES_FOR[kind]
    except KeyError:
        raise UserInputError(f"unknown data kind {kind!r}; choose one of {', '.join(SOURCES_FOR)}") from None


def check_source(kind: str, name: str) -> str:
    """``name`` if it can feed ``kind``, else a one-line user error listing the valid sources.

    Equity also takes a chain of network sources, ``yahoo,stooq`` (:mod:`quantlake.source_chain`)."""
    valid = sources_for(kind)
    if kind == "equity" and "," in name:
        from quantlake.source_chain import parse_chain

        parts = parse_chain(name)
        for part in parts:
            check_source(kind, part)
            if part in LOCAL_SOURCES:
                raise UserInputError(f"--source {name!r}: a chain is made of network sources, not {part}")
        return name
    if name not in valid:
        other = [k for k, names in SOURCES_FOR.items() if name in names]
        hint = f" ({name!r} provides {', '.join(other)})" if other else ""
        raise UserInputError(
            f"--source {name!r} cannot ingest {kind}{hint}; valid sources for {kind}: {', '.join(valid)}"
        )
    return name


def get_source(name: str, path: Path | str | None = None, **kwargs: Any) -> Any:
    """Build a source adapter by name (``sample``, ``csv``, ``yahoo``, ``fred``, ``cot``)."""
    if name == "sample":
        from quantlake.sources.sample import SampleSource

        return SampleSource()
    if name == "csv":
        if path is None:
            raise UserInputError("--source csv needs --path DIR (a directory of SYMBOL.csv/.parquet files)")
        from quantlake.sources.csvdir import CsvSource
        from quantlake.sources.intraday_files import IntradayOptions

        return CsvSource(path, IntradayOptions(**kwargs) if kwargs else None)
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
