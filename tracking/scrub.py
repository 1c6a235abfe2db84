"""Keep secrets out of the tracking store.

A :class:`Scrubber` knows two kinds of secret:

* values of environment variables whose *names* look secret (``FRED_API_KEY``, ``ALPACA_API_SECRET``,
  ``SMTP_PASSWORD`` ...), and
* values of config fields whose names look secret, plus every ``SecretStr``/``SecretBytes`` in a config.

Every string that :mod:`tracking` sends to MLflow (params, tags, text and JSON artifacts, error messages,
string columns of frames, HTML figures) goes through :meth:`Scrubber.text`, which replaces each known secret
value with ``***`` and masks the password of URLs such as ``postgresql://user:pw@host``.  Values shorter
than :data:`MIN_SECRET_LENGTH` are not searched for inside free text (masking ``"1"`` everywhere would
destroy the data) but are still masked when they are the value of a secret-named field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

MASK = "***"
MIN_SECRET_LENGTH = 6

# words that make a name secret-looking once the name is split on _ - . and camelCase boundaries
_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "secret",
        "secrets",
        "token",
        "tokens",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "dsn",
    }
)
# substrings that make a name secret-looking wherever they appear (e.g. ``clientsecret``, ``smtppassword``)
_SECRET_PARTS = ("secret", "password", "passwd", "passphrase", "token", "credential", "apikey")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
# scheme://user:password@host, also with JSON-escaped slashes (scheme:\/\/user:password@host)
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*:(?://|\\/\\/)[^:/@\s\\\"']+:)(?P<pw>[^@/\s\"']+)(?P<at>@)"
)
# variables whose names contain a secret-looking word but never hold a secret: the shell's working
# directories (``PWD`` matched "pwd", so every path under the working directory was masked)
_NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})
# name endings of variables that hold where a secret is, not the secret (GOOGLE_APPLICATION_CREDENTIALS is a
# file path; TOKEN_FILE, SECRETS_DIR ...)
_LOCATION_SUFFIXES = ("path", "file", "dir", "directory", "home", "url", "uri", "host", "endpoint", "user",
                      "username")
# harmless values that often sit in secret-named variables (feature flags); never treated as secrets
_PYDANTIC_MASK = "**********"  # how SecretStr/SecretBytes dump in JSON mode
_TRIVIAL = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off", "", MASK})


def is_secret_name(name: str) -> bool:
    """Does ``name`` (a config field or environment variable) look like it holds a secret?

    Not the working-directory variables (``PWD``, ``OLDPWD``), nor names that say they hold a location
    (``*_PATH``, ``*_FILE``, ``*_DIR``, ``*_URL``, ``*_USER`` ...): a path or address is not a secret, and
    masking it hid every path below it (a URL's password is masked wherever it appears anyway)."""
    if name.upper() in _NOT_SECRET_NAMES:
        return False
    words = [w.lower() for w in _WORD_SPLIT.split(name) if w]
    if words and words[-1] in _LOCATION_SUFFIXES and len(words) > 1:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    flat = "".join(words)
    return any(part in flat for part in _SECRET_PARTS)


def _looks_like_location(value: str) -> bool:
    """A filesystem path (absolute or home-relative) is never treated as a secret value."""
    v = value.strip()
    return v.startswith(("/", "~/", "./", "../")) or (len(v) > 2 and v[1] == ":" and v[2] in "\\/")


def url_passwords(text: str) -> set[str]:
    """Passwords embedded in URLs (``postgresql://user:pw@host``) found in ``text``."""
    return {m["pw"] for m in _URL_PASSWORD.finditer(text) if m["pw"] != MASK}


def secret_env_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Values of secret-looking environment variables (the non-trivial ones) and URL passwords of any."""
    env = os.environ if environ is None else environ
    out = {
        v for k, v in env.items()
        if is_secret_name(k) and v.strip().lower() not in _TRIVIAL and not _looks_like_location(v)
    }
    for v in env.values():
        out |= url_passwords(v)
    return out


class Scrubber:
    """Masks known secret values in strings and nested JSON-like data."""

    def __init__(self, secrets: Iterable[str] = (), include_env: bool = True) -> None:
        self._secrets: set[str] = set()
        self.add(secret_env_values() if include_env else ())
        self.add(secrets)

    def add(self, values: Iterable[str]) -> None:
        for v in values:
            if isinstance(v, str) and v.strip().lower() not in _TRIVIAL:
                self._secrets.add(v)
                escaped = json.dumps(v)[1:-1]  # how the value appears inside JSON text
                if escaped != v:
                    self._secrets.add(escaped)
        # longest first so a secret containing another is masked whole
        searchable = sorted((s for s in self._secrets if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in searchable)) if searchable else None

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def text(self, value: str) -> str:
        """``value`` with every known secret and every URL password replaced by ``***``."""
        if self._pattern is not None:
            value = self._pattern.sub(MASK, value)
        return _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], value)

    def bytes(self, data: bytes) -> bytes:
        """Mask secrets in raw bytes, keeping the length (so binary layouts stay intact)."""
        for s in sorted(self._secrets, key=len, reverse=True):
            if len(s) < MIN_SECRET_LENGTH:
                continue
            raw = s.encode()
            data = data.replace(raw, b"*" * len(raw))
        return data

    def data(self, value: Any) -> Any:
        """Scrub every string inside nested dicts/lists (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def config_secrets(
    config: BaseModel, scrubber: Scrubber | None = None
) -> tuple[dict[str, Any], list[str], set[str]]:
    """Dump ``config`` for logging: ``(json_dump_with_secrets_masked, masked_field_paths, secret_values)``.

    A field is masked whole when its name looks secret or its type is ``SecretStr``/``SecretBytes``; its
    real value joins ``secret_values`` (and ``scrubber``) so it is masked wherever else it shows up.  Other
    string values are scrubbed (URL passwords, secrets of the environment); any value that changed is listed
    in ``masked_field_paths`` too (a reproduction cannot use it).
    """
    scrubber = scrubber if scrubber is not None else Scrubber(include_env=False)
    dumped = config.model_dump(mode="json")
    values: set[str] = set()

    def collect_typed(obj: Any) -> None:  # SecretStr values hidden anywhere in the model tree
        if isinstance(obj, SecretStr):
            values.add(obj.get_secret_value())
        elif isinstance(obj, SecretBytes):
            values.add(obj.get_secret_value().decode(errors="replace"))
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                collect_typed(getattr(obj, name))
        elif isinstance(obj, Mapping):
            for v in obj.values():
                collect_typed(v)
        elif isinstance(obj, list | tuple | set):
            for v in obj:
                collect_typed(v)

    def collect_dumped(obj: Any) -> None:  # values of secret-named fields, URL passwords of any string
        if isinstance(obj, dict):
            for k, v in obj.items():
                if is_secret_name(str(k)) and v is not None:
                    values.update(_leaf_strings(v))
                else:
                    collect_dumped(v)
        elif isinstance(obj, list):
            for v in obj:
                collect_dumped(v)
        elif isinstance(obj, str):
            values.update(url_passwords(obj))

    collect_typed(config)
    collect_dumped(dumped)
    scrubber.add(values)
    masked: list[str] = []

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                sub = f"{path}.{k}" if path else str(k)
                if is_secret_name(str(k)) and v is not None:
                    masked.append(sub)
                    out[k] = MASK
                else:
                    out[k] = walk(v, sub)
            return out
        if isinstance(obj, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, str):
            clean = MASK if obj == _PYDANTIC_MASK else scrubber.text(obj)
            if clean != obj:
                masked.append(path)
            return clean
        return obj

    result = walk(dumped, "")
    return result, sorted(set(masked)), values


def _leaf_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaf_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaf_strings(v)]
    return [] if value is None or isinstance(value, bool) else [str(value)]
