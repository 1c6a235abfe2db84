"""The API key: from ``QUANTLAKE_API_KEY`` or the Prefect Secret block ``quantlake-api-key``; compared in
constant time (:func:`hmac.compare_digest`); sent as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

Without a key the server starts only on a loopback address (127.0.0.0/8, ::1, localhost) and says that it
is open; on any other address it refuses to start.
"""

from __future__ import annotations

import hmac
import ipaddress

from quantlake.errors import ConfigError

KEY_ENV = "QUANTLAKE_API_KEY"
KEY_BLOCK = "quantlake-api-key"
MIN_KEY_LENGTH = 16


def load_key() -> str | None:
    from execution.secrets import secret

    key = secret(KEY_ENV, KEY_BLOCK)
    if key is not None and len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"the API key ({KEY_ENV} / Prefect Secret {KEY_BLOCK!r}) must have at least "
                          f"{MIN_KEY_LENGTH} characters, it has {len(key)}")  # fmt: skip
    return key


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: not provably local


def check_startup(host: str, key: str | None) -> None:
    """Refuse to serve without a key on anything but loopback."""
    if key is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without an API key: set {KEY_ENV} (or the Prefect Secret block "
            f"{KEY_BLOCK!r}), or bind to 127.0.0.1"
        )


def matches(given: str | None, key: str) -> bool:
    """Constant-time comparison of the presented key with the configured one."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))
