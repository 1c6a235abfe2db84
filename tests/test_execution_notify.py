"""The scan e-mail and alerts, sent over SMTP to a local aiosmtpd server; every message is parsed and
checked (structure, table, inline PNG charts, recipients), and nothing ever carries the password."""

from __future__ import annotations

import datetime as dt
import email
import json
import socket
import struct
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from test_execution_scan import HAND, hand_config, put_bars

from execution import alerts
from execution.errors import KillSwitchError, NotificationError, OrderRejectedError, StaleDataError
from execution.notify import plain_message, send, smtp_settings
from execution.report import run_daily_scan
from execution.settings import ScanConfig
from quantlake.errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """aiosmtpd handler keeping every message (parsed) with its envelope."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str, EmailMessage]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), envelope.mail_from, msg))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        ok = (login, password) == ("scanner", "s3cret-pw")
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 235 / 535


@pytest.fixture()
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, int]]:
    """A local SMTP server (AUTH allowed without TLS, for the test only) and the QUANTLAKE_SMTP_* env."""
    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                     auth_require_tls=False)  # fmt: skip
    ctl.start()
    for key in [k for k in __import__("os").environ if k.startswith("QUANTLAKE_SMTP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("QUANTLAKE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("QUANTLAKE_SMTP_PORT", str(port))
    monkeypatch.setenv("QUANTLAKE_SMTP_FROM", "quantlake@example.test")
    monkeypatch.setenv("QUANTLAKE_SMTP_TO", "desk@example.test, risk@example.test")
    try:
        yield inbox, port
    finally:
        ctl.stop()


class TableParser(HTMLParser):
    """Rows of the table ``id="signals"`` and every ``<img src>``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.imgs: list[dict[str, str]] = []
        self._in_table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and a.get("id") == "signals":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.imgs.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])  # IHDR
    return int(w), int(h)


# ---------------------------------------------------------------------------------------------- scan e-mail
def test_scan_email_html_table_and_charts(lake, smtp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox, _port = smtp
    dates = put_bars(lake, {"HAND": HAND, "TWIN": [c * 2 for c in HAND], "FLAT": [10.0] * 10})
    out = run_daily_scan(lake, hand_config(as_of=dates[7]), json_dir=tmp_path, motd=False)
    assert out.emailed_to == ["desk@example.test", "risk@example.test"]
    assert len(inbox.messages) == 1
    rcpt, mail_from, msg = inbox.messages[0]
    assert rcpt == ["desk@example.test", "risk@example.test"] and mail_from == "quantlake@example.test"
    assert msg["Subject"] == "quantlake scan 2024-01-11: 2 signal(s)"
    assert msg["To"] == "desk@example.test, risk@example.test" and msg["From"] == "quantlake@example.test"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None and "quantlake scan 2024-01-11: 2 signal(s) in a universe of 3" in text.get_content()
    related = msg.get_payload()[1]  # type: ignore[index]
    assert related.get_content_type() == "multipart/related"
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    parser = TableParser()
    parser.feed(html_part.get_content())
    header, *rows = parser.rows
    assert header[:4] == ["rank", "symbol", "signal", "direction"]
    # both crossed the same way; TWIN (prices doubled) has the same spread in % → same score, symbol order
    assert [r[:4] for r in rows] == [["1", "HAND", "ema_3_6", "bull"], ["2", "TWIN", "ema_3_6", "bull"]]
    assert [r[4] for r in rows] == ["12.00", "24.00"] and [r[5] for r in rows] == ["20.0", "20.0"]
    # one inline PNG per signal, referenced by cid, about 360x140 px
    images = {p["Content-ID"].strip("<>"): p for p in msg.walk() if p.get_content_type() == "image/png"}
    srcs = [i["src"] for i in parser.imgs]
    assert len(srcs) == 2 and all(s.startswith("cid:") for s in srcs)
    assert {s[4:] for s in srcs} == set(images)
    for part in images.values():
        assert png_size(part.get_content()) == (360, 140)
        assert part.get_content_disposition() == "inline"
    assert inbox.logins == []  # no user configured → no login


def test_no_signals_email_says_so(lake, smtp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    dates = put_bars(lake, {"FLAT": [10.0] * 10})
    run_daily_scan(lake, hand_config(as_of=dates[-1]), json_dir=tmp_path, motd=False)
    msg = inbox.messages[0][2]
    assert msg["Subject"] == "quantlake scan 2024-01-15: 0 signal(s)"
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None and "No EMA crosses today." in html_part.get_content()
    assert not [p for p in msg.walk() if p.get_content_maintype() == "image"]


def test_login_uses_the_password_from_env_and_never_shows_it(smtp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    monkeypatch.setenv("QUANTLAKE_SMTP_USER", "scanner")
    monkeypatch.setenv("QUANTLAKE_SMTP_PASSWORD", "s3cret-pw")
    settings = smtp_settings()
    assert settings is not None and settings.username == "scanner"
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in settings.model_dump_json()
    send(plain_message("hello", "body"), settings)
    assert inbox.logins == [("scanner", "s3cret-pw")] and len(inbox.messages) == 1
    monkeypatch.setenv("QUANTLAKE_SMTP_PASSWORD", "wrong")
    with pytest.raises(NotificationError, match=r"SMTP login to 127.0.0.1:\d+ as 'scanner' refused") as err:
        send(plain_message("hello", "body"), smtp_settings())  # type: ignore[arg-type]
    assert "wrong" not in str(err.value)


def test_unreachable_server_fails_after_the_other_outputs(lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    port = free_port()  # nothing listens there
    monkeypatch.setenv("QUANTLAKE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("QUANTLAKE_SMTP_PORT", str(port))
    monkeypatch.setenv("QUANTLAKE_SMTP_FROM", "q@example.test")
    monkeypatch.setenv("QUANTLAKE_SMTP_TO", "desk@example.test")
    dates = put_bars(lake, {"HAND": HAND})
    with pytest.raises(NotificationError, match=rf"cannot reach SMTP server 127.0.0.1:{port}"):
        run_daily_scan(lake, hand_config(as_of=dates[7]), json_dir=tmp_path / "j", motd=False)
    assert lake.exists("daily_signals") and (tmp_path / "j" / "signals_2024-01-11.json").exists()
    record = [json.loads(x) for x in alerts.alert_log_path().read_text().splitlines()]
    assert record[-1]["kind"] == "scan" and "cannot reach SMTP server" in record[-1]["detail"]


def test_email_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("QUANTLAKE_SMTP_")]:
        monkeypatch.delenv(key)
    assert smtp_settings() is None
    monkeypatch.setenv("QUANTLAKE_SMTP_HOST", "mail.example.test")
    monkeypatch.setenv("QUANTLAKE_SMTP_FROM", "not-an-address")
    monkeypatch.setenv("QUANTLAKE_SMTP_TO", "a@example.test")
    with pytest.raises(ConfigError, match=r"SmtpSettings.sender: 'not-an-address' is not an e-mail address"):
        smtp_settings()
    monkeypatch.setenv("QUANTLAKE_SMTP_FROM", "q@example.test")
    monkeypatch.setenv("QUANTLAKE_SMTP_PORT", "smtp")
    with pytest.raises(ConfigError, match=r"SmtpSettings.port: 'smtp' is not a number"):
        smtp_settings()
    monkeypatch.delenv("QUANTLAKE_SMTP_PORT")
    monkeypatch.setenv("QUANTLAKE_SMTP_STARTTLS", "true")
    s = smtp_settings()
    assert s is not None and (s.port, s.starttls, s.recipients) == (587, True, ["a@example.test"])


def test_email_requested_but_not_configured(lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    for key in [k for k in __import__("os").environ if k.startswith("QUANTLAKE_SMTP_")]:
        monkeypatch.delenv(key)
    with pytest.raises(ConfigError, match="e-mail requested but SMTP is not configured"):
        run_daily_scan(lake, ScanConfig(), email=True)


def test_block_settings_keep_the_password_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Prefect Secret block's JSON (fetched by name) → settings without the password; the password is
    fetched again only when sending.  (The e2e test stores a real block on a real Prefect server.)"""
    calls: list[str] = []

    def fake_block(name: str) -> dict[str, Any]:
        calls.append(name)
        return {"host": "mx.example.test", "port": 2525, "username": "u", "password": "pw-in-block",
                "sender": "q@example.test", "recipients": ["a@example.test", "b@example.test"]}  # fmt: skip

    monkeypatch.setattr("execution.notify._block_value", fake_block)
    monkeypatch.setenv("QUANTLAKE_SMTP_BLOCK", "smtp-settings")
    s = smtp_settings()
    assert s is not None and (s.source, s.block, s.host, s.port) == ("block", "smtp-settings", "mx.example.test", 2525)
    assert "pw-in-block" not in repr(s) and calls == ["smtp-settings"]
    from execution.notify import _password

    assert _password(s) == "pw-in-block" and calls == ["smtp-settings", "smtp-settings"]


# ---------------------------------------------------------------------------------------------- alerts
def _alert_records() -> list[dict[str, Any]]:
    path = alerts.alert_log_path()
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_drawdown_levels(ql_home, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    assert alerts.check_drawdown(95_000, 100_000, warn_at=0.10, kill_at=0.20, strategy="s1") == "ok"
    assert inbox.messages == [] and _alert_records() == []
    assert alerts.check_drawdown(88_000, 100_000, warn_at=0.10, kill_at=0.20, strategy="s1") == "warning"
    msg = inbox.messages[-1][2]
    assert msg["Subject"] == "quantlake warning: s1 drawdown 12.0% passed the alert level 10%"
    assert "peak: 100000" in msg.get_content() and "drawdown: 12.00%" in msg.get_content()
    with pytest.raises(KillSwitchError, match=r"s1 drawdown 25.0% reached the kill level 20%"):
        alerts.check_drawdown(75_000, 100_000, warn_at=0.10, kill_at=0.20, strategy="s1")
    assert inbox.messages[-1][2]["Subject"] == "quantlake critical: s1 kill switch: drawdown 25.0%"
    recs = _alert_records()
    assert [(r["kind"], r["severity"], r["emailed"]) for r in recs] == [("drawdown", "warning", True),
                                                                         ("drawdown", "critical", True)]  # fmt: skip
    assert alerts.drawdown(110, 100) == 0.0 and alerts.drawdown(90, 100) == pytest.approx(0.1)


def test_broker_rejections_alert_and_raise(ql_home, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    alerts.broker_rejections([], broker="paper")  # nothing rejected: silent
    assert inbox.messages == []
    with pytest.raises(OrderRejectedError, match=r"2 order\(s\) rejected by alpaca: AAPL \(c1\): insufficient"):
        alerts.broker_rejections([("c1", "AAPL", "insufficient buying power"), ("c2", "MSFT", "halted")],
                                 broker="alpaca", strategy="s1")  # fmt: skip
    body = inbox.messages[-1][2].get_content()
    assert "MSFT (c2): halted" in body
    assert _alert_records()[-1]["context"]["orders"][1] == {"client_order_id": "c2", "symbol": "MSFT",
                                                            "reason": "halted"}  # fmt: skip


def test_alert_delivery_problems_never_raise(ql_home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUANTLAKE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("QUANTLAKE_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("QUANTLAKE_SMTP_FROM", "q@example.test")
    monkeypatch.setenv("QUANTLAKE_SMTP_TO", "desk@example.test")
    a = alerts.send(alerts.Alert("data", "critical", "yahoo fetch failed", "DNS failure"))
    assert a.logged and not a.emailed and "cannot reach SMTP server" in (a.email_error or "")
    assert _alert_records()[-1]["subject"] == "yahoo fetch failed"


def test_stale_data_alerts_before_scanning(lake, smtp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp
    put_bars(lake, {"HAND": HAND})
    with pytest.raises(StaleDataError, match="latest bar is 2024-01-15"):
        run_daily_scan(lake, hand_config(), json_dir=tmp_path, motd=False, max_age_days=3,
                       today=dt.date(2024, 2, 1))  # fmt: skip
    assert not lake.exists("daily_signals")  # nothing was scanned
    assert inbox.messages[-1][2]["Subject"].startswith("quantlake critical: stale market data:")


def test_flow_failure_hook_mails_unless_already_alerted(ql_home, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, _ = smtp

    class Obj:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    alerts.flow_failure_hook(Obj(name="ingest-equity"), Obj(name="brave-fox", id="r1"),
                             Obj(name="Failed", message="yahoo: cannot reach query1.finance.yahoo.com"))  # fmt: skip
    msg = inbox.messages[-1][2]
    assert msg["Subject"] == "quantlake critical: flow run ingest-equity/brave-fox Failed"
    assert "cannot reach query1.finance.yahoo.com" in msg.get_content()
    n = len(inbox.messages)
    with pytest.raises(KillSwitchError) as err:
        alerts.check_drawdown(50, 100, 0.1, 0.2)
    alerts.flow_failure_hook(Obj(name="paper-trade"), Obj(name="x", id="r2"), Obj(name="Failed", message=str(err.value)))
    assert len(inbox.messages) == n + 1  # the kill-switch alert itself, not a second mail from the hook
