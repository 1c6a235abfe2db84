"""Plain words for storage failures of lake writes (issue 19.8).

delta-rs reports a full disk as "Failed to parse parquet: ... No space left on device (os error 28)" (and
Rust prints a panic note), a read-only folder as "Permission denied"/"Read-only file system" deep inside a
generic error.  :func:`write_error` turns those into one line that says **disk full** or **read-only**, names
the table and the lake, and states the version the table was left at.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from quantlake.errors import LakeError

_DISK_FULL = re.compile(r"no space left on device|os error 28|disk quota exceeded|os error 122|ENOSPC", re.I)
_READ_ONLY = re.compile(r"read-only file system|os error 30|permission denied|os error 13|EROFS|EACCES", re.I)
_ACCESS_DENIED = re.compile(r"AccessDenied|403 Forbidden|InvalidAccessKeyId|SignatureDoesNotMatch", re.I)
_UNREACHABLE = re.compile(r"Connection refused|dns error|error sending request|timed out|ConnectTimeout|"
                          r"EndpointConnectionError|Could not connect", re.I)


class NativeStderr:
    """What native code wrote to file descriptor 2 inside :func:`native_stderr` (kept unless dropped)."""

    def __init__(self) -> None:
        self.dropped = False

    def drop(self) -> None:
        """Do not re-emit it: the error it belongs to has been said in plain words."""
        self.dropped = True


@contextlib.contextmanager
def native_stderr() -> Iterator[NativeStderr]:
    """Hold back what native code (delta-rs' Rust threads) prints to stderr during a write.

    When object_store fails on a full or read-only disk, a Rust worker thread panics and prints a panic note
    ("thread 'tokio-rt-worker' panicked ... Already shut down") straight to file descriptor 2, under the clear
    error the caller reports.  The block's fd-2 output goes to a temporary file and is written back afterwards
    unless the caller drops it with :meth:`~NativeStderr.drop` (the failure was classified and said plainly).
    Hand-written: Python cannot install a Rust panic hook, and nothing else reaches that descriptor.
    """
    handle = NativeStderr()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to hold back
        yield handle
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield handle
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not handle.dropped:
                tmp.seek(0)
                data = tmp.read()
                if data:
                    os.write(2, data)


class DiskFullError(LakeError):
    """The lake's disk is full: nothing was committed."""


class ReadOnlyLakeError(LakeError):
    """The lake's folder (or bucket) cannot be written with the current permissions."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_error(
    exc: BaseException,
    lake_uri: str,
    *,
    table: str | None = None,
    before: int | None = None,
    what: str | None = None,
) -> LakeError:
    """A :class:`LakeError` (one line) for a failed write; the cause is classified, never a traceback."""
    text = f"{exc!s} {exc!r}"
    code = getattr(exc, "errno", None)
    state = "" if table is None else (
        f"; table {table!r} left at version {before}" if before is not None else f"; table {table!r} not created"
    )
    target = f"table {table!r} in {lake_uri}" if table else f"the lake at {lake_uri}"
    if code in (errno.ENOSPC, errno.EDQUOT) or _DISK_FULL.search(text):
        return DiskFullError(f"disk full: cannot write {target} (no space left on the device){state}")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or _READ_ONLY.search(text):
        kind = "read-only file system" if (code == errno.EROFS or re.search("read-only|os error 30", text, re.I)) \
            else "permission denied"
        return ReadOnlyLakeError(f"read-only: cannot write {target} ({kind}){state}")
    if _ACCESS_DENIED.search(text):
        return ReadOnlyLakeError(f"read-only: access to {target} denied by the object store (check credentials "
                                 f"and bucket policy){state}")
    if _UNREACHABLE.search(text):
        return LakeError(f"cannot reach the object store of {lake_uri}: {_first_line(exc)}{state}")
    head = what or (f"write to {table!r} failed" if table else "lake operation failed")
    return LakeError(f"{head}{state}: {_first_line(exc)}")


def plain_error(exc: BaseException, native: NativeStderr, lake_uri: str, **kwargs: object) -> LakeError:
    """:func:`write_error` for a failure inside :func:`native_stderr`: a disk-full or read-only failure drops
    the Rust panic note that came with it (the one line says it all); anything else keeps it."""
    err = write_error(exc, lake_uri, **kwargs)  # type: ignore[arg-type]
    if isinstance(err, DiskFullError | ReadOnlyLakeError):
        native.drop()
    return err
