"""Issue 19 item 7: a password inside a URL (``ALPACA_BASE_URL=https://user:pass@host``) is stripped before
anything is logged or stored.  The broker is unreachable, so the error carrying the URL travels everywhere:
the CLI's error line, Prefect's logs (the flow-run log table of its database), alerts.jsonl, the alert
e-mail and the circuit breaker's state file; every byte of QUANTLAKE_HOME and of Prefect's home is grepped."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from pathlib import Path

import pytest

from quantlake.lake import Lake
from tests.test_execution_notify import Inbox, free_port, smtp  # noqa: F401  (fixture)
from tests.test_paper_trade_flow import AS_OF, flake, register_champion, store  # noqa: F401  (fixtures)


def test_redact_urls_unit() -> None:
    from quantlake.redact import redact_urls

    assert redact_urls("cannot reach https://bob:s3cr3t@api.example.com:8443/v2?x=1 now") == (
        "cannot reach https://***@api.example.com:8443/v2?x=1 now"
    )
    assert redact_urls("postgresql://user@db/x and http://h/p") == "postgresql://***@db/x and http://h/p"
    assert redact_urls('{"u": "https:\\/\\/a:b@h\\/x"}') == '{"u": "https:\\/\\/***@h\\/x"}'
    assert redact_urls("mail me at someone@example.com") == "mail me at someone@example.com"


def _grep(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.integration
def test_credentials_in_urls_reach_no_output(
    flake: Lake,  # noqa: F811
    store: Path,  # noqa: F811
    smtp: tuple[Inbox, int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import prefect.settings

    from flows.paper_trade import paper_trade_flow
    from quantlake.cli import main
    from quantlake.errors import QuantlakeError

    inbox, _ = smtp
    secret = f"pw-{uuid.uuid4().hex[:12]}"
    port = free_port()  # nothing listens: every broker call fails
    monkeypatch.setenv("ALPACA_BASE_URL", f"http://quser:{secret}@127.0.0.1:{port}")
    monkeypatch.setenv("ALPACA_API_KEY", "AKTESTKEY0000")
    monkeypatch.setenv("ALPACA_API_SECRET", "alpaca-api-secret-0000")
    register_champion(flake)

    # the CLI: one error line
    monkeypatch.setattr(sys, "argv", ["quantlake", "trade", "--model", "rule_x", "--broker", "alpaca",
                                      "--as-of", AS_OF.isoformat()])  # fmt: skip
    with pytest.raises(SystemExit):
        main()
    cli = capsys.readouterr()
    # the Prefect flow: its logs go to Prefect's database (and the console handler)
    caplog.set_level(logging.INFO)
    with pytest.raises(QuantlakeError):
        paper_trade_flow({"model": "rule_x", "broker": "alpaca", "as_of": AS_OF.isoformat()})
    flow_out = capsys.readouterr()

    host = f"127.0.0.1:{port}"
    texts = {"cli": cli.out + cli.err, "flow console": flow_out.out + flow_out.err, "log records": caplog.text}
    texts["e-mails"] = "\n".join(m.as_string() for _, _, m in inbox.messages)
    assert host in texts["cli"] and host in texts["e-mails"]  # positive controls: the URL is reported
    alerts = store / "reports" / "alerts.jsonl"
    circuits = list((store / "execution").glob("circuit-*.json"))
    assert alerts.exists() and host in alerts.read_text() and circuits
    assert any(host in p.read_text() for p in circuits)
    assert inbox.messages, "the alert e-mail was sent"
    leaks = {name: text for name, text in texts.items() if secret in text}
    prefect_home = Path(str(prefect.settings.PREFECT_HOME.value()))
    for root in (store, prefect_home):
        hits = _grep(root, secret.encode())
        if hits:
            leaks[str(root)] = "\n".join(hits)
    assert leaks == {}
    assert any(host.encode() in p.read_bytes() for p in prefect_home.rglob("prefect.db*")), (
        "positive control: the flow's error reached Prefect's database"
    )
    assert os.environ["ALPACA_BASE_URL"].endswith(host)  # the client itself still gets the real URL
