"""Small guards every text-file reader shares (issue 19 item 8): a header line too long to be one, and
cells too long to quote in a reason or a table.

Hand-written because they are a few lines each and are about our messages, not parsing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantlake.errors import MalformedFileError

MAX_HEADER_BYTES = 1 << 20  # a first line longer than this is not a CSV header
SHOW = 60  # characters of an offending value quoted in a reason


def header_too_long(origin: str) -> MalformedFileError:
    return MalformedFileError(
        f"{origin}: the first line is longer than {MAX_HEADER_BYTES // (1 << 20)} MiB: not a CSV header"
    )


def check_first_line(path: Path, origin: str | None = None) -> None:
    """Raise :class:`MalformedFileError` if ``path``'s first line is longer than :data:`MAX_HEADER_BYTES`
    (reads at most that many bytes)."""
    try:
        with path.open("rb") as fh:
            line = fh.readline(MAX_HEADER_BYTES + 1)
    except OSError as exc:
        raise MalformedFileError(f"{origin or path}: cannot read: {exc}") from None
    if len(line) > MAX_HEADER_BYTES:
        raise header_too_long(origin or str(path))


def check_first_line_bytes(data: bytes, origin: str) -> None:
    """:func:`check_first_line` for a file already in memory."""
    if len(data) > MAX_HEADER_BYTES and data.find(b"\n", 0, MAX_HEADER_BYTES + 1) < 0:
        raise header_too_long(origin)


def cut(text: str, limit: int = SHOW) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def shown(value: object) -> str:
    """``repr`` of a value for a reason or a table cell, cut to :data:`SHOW` characters."""
    if isinstance(value, np.generic):
        value = value.item()
    return cut(repr(value))
