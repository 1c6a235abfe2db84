"""Credentials inside URLs never leave the process: ``scheme://user:password@host`` → ``scheme://***@host``.

A URL from the environment or a config (``ALPACA_BASE_URL=https://user:pass@proxy``, a FRED or CFTC mirror,
a database DSN) can end up in an error message, and from there in the CLI's error line, Prefect's logs and
state messages, ``alerts.jsonl``, alert e-mails and the circuit breaker's state file.  Each of those writers
passes its text through :func:`redact_urls`, and :func:`install_log_redaction` makes every log record of
the process (Prefect's run loggers included, whose records go to its database) redacted when it is
created.  The user part goes too: it identifies the account.

Hand-written: a regular expression over free text (``urllib.parse`` handles one URL at a time, not URLs
inside sentences or JSON).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://userinfo@ (also JSON-escaped scheme:\/\/userinfo@): userinfo has no /, @, whitespace or quotes
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*:(?://|\\/\\/))(?P<userinfo>[^\s/@\\\"'<>]+)@"
)
_installed = False


def redact_urls(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    if "@" not in text or ":" not in text:
        return text
    return _USERINFO.sub(lambda m: m["head"] + MASK + "@", text)


def strip_url_credentials(url: str) -> str:
    """One URL without its user and password (for showing where a client connects)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to logging's own error handling
        return record
    clean = redact_urls(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        redacted = redact_urls(text)
        if redacted != text:
            record.exc_text = redacted
    return record


def install_log_redaction() -> None:
    """Redact URL credentials in every log record this process creates (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
