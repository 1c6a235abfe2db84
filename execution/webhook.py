"""Alerts to a chat webhook: Slack-compatible JSON (``text`` plus Block Kit ``blocks``), which Slack, Mattermost,
Rocket.Chat, Microsoft Teams workflows and most incident tools accept as they are.

Settings: ``QUANTLAKE_ALERT_WEBHOOK_URL`` or the Prefect Secret block ``alert-webhook-url`` (a webhook URL
carries its token in the path: it is a secret, never printed, logged or put in an error — errors name the
host only).  ``QUANTLAKE_ALERT_WEBHOOK_TIMEOUT`` (seconds, default 10).

Delivery: one POST, retried with exponential backoff (1, 2 s) on connection errors, timeouts, HTTP 429 and
5xx; a 4xx other than 429 is a configuration problem and is not retried.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from execution.errors import NotificationError
from execution.secrets import secret

URL_ENV = "QUANTLAKE_ALERT_WEBHOOK_URL"
URL_BLOCK = "alert-webhook-url"
TIMEOUT_ENV = "QUANTLAKE_ALERT_WEBHOOK_TIMEOUT"
EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "resolved": ":white_check_mark:"}


def webhook_url() -> str | None:
    """The configured webhook URL (env var, else the Prefect Secret block), or None."""
    return secret(URL_ENV, URL_BLOCK)


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def payload(severity: str, subject: str, detail: str, context: dict[str, Any], kind: str, at: str) -> dict[str, Any]:
    """The Slack-compatible message of one alert."""
    head = f"{EMOJI.get(severity, '')} *quantlake {severity}*: {subject}".strip()
    facts = "\n".join(f"*{k}*: {v}" for k, v in context.items())
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": head[:3000]}}]
    if detail:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": detail[:3000]}})
    if facts:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": facts[:3000]}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"kind `{kind}` · {at}"}]})
    return {"text": f"quantlake {severity}: {subject}"[:3000], "blocks": blocks}


class _Retryable(Exception):
    pass


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable)


def post(body: dict[str, Any], url: str | None = None, timeout: float | None = None) -> None:
    """POST ``body`` to the webhook; :class:`NotificationError` (naming the host only) when it fails."""
    target = url or webhook_url()
    if not target:
        raise NotificationError(f"no alert webhook configured ({URL_ENV} or Prefect Secret block {URL_BLOCK!r})")
    host = host_of(target)
    limit = timeout or float(os.environ.get(TIMEOUT_ENV, "10") or 10)

    @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=1, max=4), reraise=True)  # fmt: skip
    def attempt() -> None:
        try:
            r = httpx.post(target, json=body, timeout=limit)
        except httpx.TimeoutException:
            raise _Retryable(f"webhook {host} timed out after {limit:g} s") from None
        except httpx.HTTPError as exc:
            raise _Retryable(f"cannot reach webhook {host}: {type(exc).__name__}") from None
        if r.status_code == 429 or r.status_code >= 500:
            raise _Retryable(f"webhook {host} answered HTTP {r.status_code}")
        if r.status_code >= 400:
            raise NotificationError(f"webhook {host} refused the alert: HTTP {r.status_code} {r.text[:200]!r}")

    quiet = logging.getLogger("httpx")  # httpx logs every request's URL at INFO: the URL is the secret
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        attempt()
    except _Retryable as exc:
        raise NotificationError(f"{exc} (3 attempts)") from None
    finally:
        quiet.setLevel(level)
