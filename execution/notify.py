"""E-mail over SMTP: settings from the environment or a Prefect Secret block, and sending.

Settings (environment)::

    QUANTLAKE_SMTP_HOST       server host (setting it turns e-mail on)
    QUANTLAKE_SMTP_PORT       default 25 (465 with QUANTLAKE_SMTP_SSL=1, 587 with QUANTLAKE_SMTP_STARTTLS=1)
    QUANTLAKE_SMTP_USER       login user (optional)
    QUANTLAKE_SMTP_PASSWORD   login password (optional; only ever read when sending)
    QUANTLAKE_SMTP_FROM       sender address
    QUANTLAKE_SMTP_TO         recipients, comma-separated
    QUANTLAKE_SMTP_STARTTLS / QUANTLAKE_SMTP_SSL   1/true to encrypt

or ``QUANTLAKE_SMTP_BLOCK=<name>``: a Prefect ``Secret`` block whose value is a JSON object with the keys
``host, port, username, password, sender, recipients, starttls, ssl`` (create it in the Prefect UI or with
``Secret(value={...}).save(name)``).

The password is never part of :class:`SmtpSettings` (so it cannot be printed, logged or put in an error);
:func:`send` fetches it from the same place the settings came from.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from execution._model import ExecModel
from execution.errors import NotificationError
from quantlake.errors import ConfigError

log = logging.getLogger(__name__)
ENV_PREFIX = "QUANTLAKE_SMTP_"
BLOCK_ENV = "QUANTLAKE_SMTP_BLOCK"
_TRUE = {"1", "true", "yes", "on"}


class SmtpSettings(ExecModel):
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    username: str | None = None
    sender: Annotated[str, Field(min_length=3)]
    recipients: Annotated[list[str], Field(min_length=1)]
    starttls: bool = False
    ssl: bool = False
    timeout: Annotated[float, Field(gt=0, le=120)] = 15.0
    source: Literal["env", "block"] = "env"
    block: str | None = None

    @field_validator("sender")
    @classmethod
    def _addr(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("recipients")
    @classmethod
    def _addrs(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if "@" not in v]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in _TRUE if value is not None else False


def _from_mapping(data: dict[str, Any], source: Literal["env", "block"], block: str | None) -> SmtpSettings:
    use_ssl, starttls = _flag(data.get("ssl")), _flag(data.get("starttls"))
    port = data.get("port") or (465 if use_ssl else 587 if starttls else 25)
    recipients = data.get("recipients") or []
    if isinstance(recipients, str):
        recipients = [r.strip() for r in recipients.split(",") if r.strip()]
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ConfigError(f"SmtpSettings.port: {port!r} is not a number") from None
    return SmtpSettings(
        host=str(data.get("host") or ""),
        port=port,
        username=data.get("username") or None,
        sender=str(data.get("sender") or ""),
        recipients=list(recipients),
        starttls=starttls,
        ssl=use_ssl,
        source=source,
        block=block,
    )


def _block_value(name: str) -> dict[str, Any]:
    from prefect.blocks.system import Secret

    try:
        block: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
        value = block.get()
    except ValueError as exc:
        raise ConfigError(f"Prefect Secret block {name!r} not found ({BLOCK_ENV}): {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"Prefect Secret block {name!r} must hold a JSON object with the SMTP settings")
    return value


def smtp_settings(block: str | None = None) -> SmtpSettings | None:
    """Settings from the Prefect Secret block ``block`` (or ``$QUANTLAKE_SMTP_BLOCK``), else from the
    environment; ``None`` when e-mail is not configured at all."""
    block = block or os.environ.get(BLOCK_ENV, "").strip() or None
    if block:
        value = {k: v for k, v in _block_value(block).items() if k != "password"}
        return _from_mapping(value, "block", block)
    env = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    if not env.get("host"):
        return None
    data: dict[str, Any] = dict(env)
    data["username"] = data.pop("user", None)
    data["sender"] = data.pop("from", None)
    data["recipients"] = data.pop("to", None)
    return _from_mapping(data, "env", None)


def _password(settings: SmtpSettings) -> str | None:
    if settings.source == "block" and settings.block:
        value = _block_value(settings.block).get("password")
        return str(value) if value else None
    return os.environ.get(f"{ENV_PREFIX}PASSWORD") or None


def send(message: EmailMessage, settings: SmtpSettings) -> None:
    """Send ``message`` (From/To filled in from ``settings`` when missing).  Raises
    :class:`NotificationError` naming the server, never the password."""
    if "From" not in message:
        message["From"] = settings.sender
    if "To" not in message:
        message["To"] = ", ".join(settings.recipients)
    password = _password(settings) if settings.username else None
    where = f"{settings.host}:{settings.port}"
    try:
        if settings.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, password or "")
            smtp.send_message(message, from_addr=settings.sender, to_addrs=settings.recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotificationError(f"SMTP login to {where} as {settings.username!r} refused (code {exc.smtp_code})") from None
    except smtplib.SMTPException as exc:
        raise NotificationError(f"SMTP server {where} refused the message: {type(exc).__name__}") from None
    except OSError as exc:
        raise NotificationError(f"cannot reach SMTP server {where}: {exc.strerror or type(exc).__name__}") from None
    log.info("e-mail %r sent to %d recipient(s) via %s", message["Subject"], len(settings.recipients), where)


def plain_message(subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg.set_content(body)
    return msg
