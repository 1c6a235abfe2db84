"""Small helpers shared by the network adapters (yahoo, fred, cot): timeouts, secret masking, error lines.

Every network failure becomes ONE short line in a :mod:`quantlake.errors` exception.  Adapters never retry:
retries with backoff belong to the Prefect tasks that call them.
"""

from __future__ import annotations

import re
import socket
import ssl
import urllib.error
from dataclasses import dataclass
from urllib.parse import urlsplit

from quantlake.redact import redact_urls

# Connect fast (an offline machine or a dead host should fail in seconds), read patiently (a year of
# CFTC data or a long FRED series can take a while on a slow link).
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 30.0

_SECRET_PARAM = re.compile(r"(?i)\b(api_key|apikey|token|access_token|key)=([^&\s'\"]+)")


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a TCP connection and for each read (no retries inside adapters)."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    def __post_init__(self) -> None:
        if self.connect <= 0 or self.read <= 0:
            raise ValueError("timeouts must be > 0 seconds")

    @property
    def pair(self) -> tuple[float, float]:
        return (self.connect, self.read)


def mask_secrets(text: str, *secrets: str | None) -> str:
    """``text`` with ``api_key=...``-style query values and every given secret replaced by ``***``."""
    out = redact_urls(_SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text))
    for s in secrets:
        if s:
            out = out.replace(s, "***")
    return out


def host_of(url: str) -> str:
    """``host[:port]`` of a URL, for error lines (never the user, password, path or query)."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1] or "?"


def one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace and cut a vendor message so it fits one line of CLI output."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def offline_reason(exc: BaseException) -> str | None:
    """A short human reason if ``exc`` means "the server cannot be reached", else None.

    Understands the exception families of urllib/socket, ``requests`` and ``curl_cffi`` (by class name for
    the latter two, so this module imports neither).
    """
    names = {c.__name__ for c in type(exc).__mro__}
    if "DNSError" in names or isinstance(exc, socket.gaierror):
        return "DNS lookup failed (no network?)"
    if names & {"Timeout", "ConnectTimeout", "ReadTimeout", "TimeoutError"} or isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError) or "SSLError" in names:
        return "TLS handshake failed"
    if "ConnectionError" in names or isinstance(exc, ConnectionError):
        text = str(exc).lower()
        if "resolve" in text or "name or service" in text:
            return "DNS lookup failed (no network?)"
        if "refused" in text or "couldn't connect" in text or "could not connect" in text:
            return "connection refused"
        if "timed out" in text or "timeout" in text:
            return "timed out"
        return "connection failed"
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return offline_reason(reason) or "connection failed"
        text = str(reason).lower()
        if "timed out" in text:
            return "timed out"
        if "refused" in text:
            return "connection refused"
        if "name or service" in text or "nodename" in text or "resolution" in text:
            return "DNS lookup failed (no network?)"
        return "connection failed"
    if isinstance(exc, OSError) and not names & {"HTTPError", "RequestException"} and exc.errno is not None:
        return "connection failed"
    return None
