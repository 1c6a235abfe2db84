"""Demo stage ``scan``: the daily scanner through its Prefect flow on the sample data, with every output.

The sample data ends in 2018 and most of its symbols are close-only, so the stage replays the last three
months up to the latest date (volume filter relaxed for close-only series) and sends the e-mail to a local
SMTP server it starts itself (aiosmtpd, offline); the received message is saved as ``.eml`` and as an HTML
page with the charts embedded, so a person can open it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from quantlake.demo_context import DemoContext

REPLAY_DAYS = 92
DEMO_CONFIG: dict[str, Any] = {
    "min_price": 10.0,
    "max_price": 300.0,
    "allow_missing_volume": True,  # most sample symbols are close-only
    "ema_pairs": [[9, 21], [20, 50]],
    "top": 10,
}


class _Inbox:
    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd hook
        self.raw.append(bytes(envelope.original_content))
        return "250 OK"


@contextlib.contextmanager
def local_smtp() -> Iterator[_Inbox]:
    """A local SMTP server and the ``QUANTLAKE_SMTP_*`` variables pointing at it (restored afterwards)."""
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    env = {"QUANTLAKE_SMTP_HOST": "127.0.0.1", "QUANTLAKE_SMTP_PORT": str(port),
           "QUANTLAKE_SMTP_FROM": "quantlake@localhost", "QUANTLAKE_SMTP_TO": "you@localhost"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in [*env, "QUANTLAKE_SMTP_BLOCK", "QUANTLAKE_SMTP_USER"]}
    os.environ.update(env)
    for k in ("QUANTLAKE_SMTP_BLOCK", "QUANTLAKE_SMTP_USER"):
        os.environ.pop(k, None)
    try:
        yield inbox
    finally:
        ctl.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def email_as_html(msg: EmailMessage) -> str:
    """The HTML part with its ``cid:`` images replaced by data URIs (a page a browser opens directly)."""
    body = msg.get_body(preferencelist=("html",))
    assert body is not None
    html = str(body.get_content())
    for part in msg.walk():
        cid = part.get("Content-ID")
        if cid and part.get_content_maintype() == "image":
            data = base64.b64encode(part.get_payload(decode=True)).decode()  # type: ignore[arg-type]
            html = html.replace(f"cid:{cid.strip('<>')}", f"data:{part.get_content_type()};base64,{data}")
    return html


def stage_scan(ctx: DemoContext) -> None:
    """Replay the scanner over the sample data's last months via the ``daily-scan`` flow; show the ranked
    signals, the universe, and where the JSON, MOTD and e-mail went."""
    from rich.table import Table

    from execution.errors import StaleDataError
    from execution.report import signals_table
    from execution.scanner import check_fresh, latest_date, scan
    from execution.settings import ScanConfig
    from flows.daily_scan import daily_scan_flow

    latest = latest_date(ctx.lake)
    start = latest - dt.timedelta(days=REPLAY_DAYS)
    # the e-mail reports one day: take the last day of the window that has crosses
    found = scan(ctx.lake, ScanConfig.model_validate({**DEMO_CONFIG, "as_of": latest}), start).signals
    as_of = max(found["date"]) if len(found) else latest
    ctx.console.print(f"Replaying {start}..{as_of} (the sample data ends {latest}; {as_of} is its last day with "
                      f"an EMA cross), as the scheduled daily-scan flow would run each evening.")  # fmt: skip
    out_dir = ctx.paths.reports / "scan"
    motd = Path(os.environ.get("QUANTLAKE_MOTD_PATH") or ctx.paths.reports / "motd")
    with local_smtp() as inbox:
        summary = daily_scan_flow(as_of=as_of, start=start, config=DEMO_CONFIG, json_dir=str(out_dir),
                                  motd_path=str(motd), email=True)  # fmt: skip
    assert isinstance(summary, dict)  # a failed flow raises its error instead
    signals = ctx.lake.read("daily_signals", where="date BETWEEN ? AND ?", params=[start, as_of])
    signals = signals.sort_values(["date", "rank"], ascending=[False, True])
    shown = min(15, len(signals))
    ctx.console.print(signals_table(signals.head(shown), f"daily_signals {start}..{as_of} (newest first, {shown} of {len(signals)})"))

    u = Table(title=f"universe on {as_of}")
    for col in ("symbols with bars", "in the universe", "excluded"):
        u.add_column(col)
    excluded = "; ".join(f"{why}: {', '.join(syms)}" for why, syms in summary["excluded"].items())
    u.add_row(str(summary["symbols_with_bars"]), str(summary["universe"]), excluded)
    ctx.console.print(u)
    ctx.console.print("[dim]score 0-100 = MACD confirmation 40 + cross strength 20 + volume 20 + RSI context 20[/]")

    msg = message_from_bytes(inbox.raw[-1], policy=default_policy)
    assert isinstance(msg, EmailMessage)
    images = sum(1 for p in msg.walk() if p.get_content_maintype() == "image")
    eml = out_dir / f"email_{as_of}.eml"
    eml.write_bytes(inbox.raw[-1])
    page = out_dir / f"email_{as_of}.html"
    page.write_text(email_as_html(msg), encoding="utf-8")
    ctx.console.print(f"e-mail received by the local SMTP server: [bold]{msg['Subject']}[/] "
                      f"(HTML table + {images} inline chart(s))")  # fmt: skip
    try:
        check_fresh(ctx.lake, max_age_days=1)
    except StaleDataError as exc:  # expected on old sample data: this is what the scheduled run would say
        ctx.console.print(f"[dim]alert check: the scheduled daily-scan (max_age_days=1) would fail here: {exc}[/]")
    ctx.results["scan"] = summary
    ctx.output("scan JSON", Path(summary["json"]))
    ctx.output("scan MOTD block", motd)
    ctx.output("scan e-mail (open in a browser)", page)
