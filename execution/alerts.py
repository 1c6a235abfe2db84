"""Alerts: drawdown thresholds, data-fetch failures, broker rejections and failed flow runs are never silent.

Every alert goes to these places (each best-effort, none able to hide the others or the original error):

1. the log — the Prefect run logger inside a flow or task run (so it shows in the run's logs in the UI),
   the ``execution.alerts`` logger otherwise;
2. a Prefect event ``quantlake.alert.<kind>`` (the UI's event feed; an automation can trigger on it) when
   running inside a flow or task run;
3. ``QUANTLAKE_HOME/reports/alerts.jsonl`` — one JSON object per alert, the local record;
4. an e-mail when SMTP is configured (:mod:`execution.notify`: ``QUANTLAKE_SMTP_*`` or a Prefect block);
5. a chat webhook (Slack-compatible JSON, :mod:`execution.webhook`) when ``QUANTLAKE_ALERT_WEBHOOK_URL`` or
   the Prefect Secret block ``alert-webhook-url`` is set.

**De-duplication** (:mod:`execution.alert_state`): each alert has a stable ``key`` and a ``state``; the
e-mail, webhook and Prefect event go out once per change of state (a drawdown warning is sent the day it
starts, not every day it lasts); :func:`resolve` clears a key when its condition is over and sends one
"resolved" notice.  Repeats are still logged and recorded in ``alerts.jsonl`` (``suppressed: true``).

A *critical* alert is paired with a failure the flow lets escape: :func:`fail` sends the alert and raises
the error, so the run ends Failed in Prefect with the one-line message.  Warnings (a drawdown past the alert
level but not the kill level) only notify.

What the flows call::

    from execution import alerts

    alerts.check_drawdown(equity, peak, warn_at=0.10, kill_at=0.20, strategy="ml_lgbm")  # KillSwitchError
    alerts.check_fresh_data(lake, max_age_days=3)         # StaleDataError after an alert
    alerts.broker_rejections([("cid-1", "AAPL", "insufficient buying power")])  # OrderRejectedError
    alerts.fail(SomeQuantlakeError("..."), kind="data")   # alert, then raise it

    @flow(on_failure=[alerts.flow_failure_hook])          # e-mail for any Failed/Crashed run
    def my_flow(): ...
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from execution.errors import KillSwitchError, OrderRejectedError
from quantlake.config import paths
from quantlake.errors import QuantlakeError
from quantlake.redact import redact_urls

log = logging.getLogger(__name__)

Kind = Literal["drawdown", "data", "broker", "flow", "scan", "reconciliation", "heartbeat", "monitor"]
Severity = Literal["warning", "critical", "resolved"]
ALERT_LOG = "alerts.jsonl"
KINDS = ("drawdown", "data", "broker", "flow", "scan", "reconciliation", "heartbeat", "monitor")
# messages of errors already alerted by fail() in this process (the failure hook does not repeat them)
_ALERTED: set[str] = set()


@dataclass
class Alert:
    """One alert.  ``context`` holds small JSON-able facts (strategy, equity, symbols...)."""

    kind: Kind
    severity: Severity
    subject: str
    detail: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    key: str = ""  # what the alert is about (de-duplication); default: kind and subject
    state: str = ""  # its state under that key; default: the severity
    # filled in by send(): where it went
    logged: bool = False
    event: bool = False
    emailed: bool = False
    email_error: str | None = None
    webhooked: bool = False
    webhook_error: str | None = None
    suppressed: bool = False  # a repeat of the key's current state: not sent again
    path: str | None = None

    def __post_init__(self) -> None:
        # the subject and detail often quote an error carrying a broker or data URL: never its credentials
        self.subject = redact_urls(self.subject)
        self.detail = redact_urls(self.detail)
        self.context = json.loads(redact_urls(json.dumps(self.context, default=str)))
        self.key = self.key or f"{self.kind}:{self.subject[:120]}"
        self.state = self.state or self.severity

    def text(self) -> str:
        lines = [f"[{self.severity.upper()}] {self.subject}", ""]
        if self.detail:
            lines += [self.detail, ""]
        lines += [f"{k}: {v}" for k, v in self.context.items()]
        lines += ["", f"kind: {self.kind}", f"at: {self.at}"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- delivery
def alert_log_path() -> Path:
    return paths().reports / ALERT_LOG


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The Prefect run logger inside a flow/task run, else this module's logger (Prefect not imported)."""
    import sys

    if "prefect" in sys.modules:
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.logging import get_run_logger

        if FlowRunContext.get() or TaskRunContext.get():
            with contextlib.suppress(Exception):
                return get_run_logger()
    return log


def _emit_event(a: Alert) -> bool:
    import sys

    if "prefect" not in sys.modules:
        return False
    from prefect.context import FlowRunContext, TaskRunContext

    if not (FlowRunContext.get() or TaskRunContext.get()):
        return False
    try:
        from prefect.events import emit_event

        resource = {"prefect.resource.id": f"quantlake.alert.{a.kind}", "prefect.resource.name": a.subject[:200]}
        payload = {"severity": a.severity, "detail": a.detail, "context": _jsonable(a.context)}
        return emit_event(event=f"quantlake.alert.{a.kind}", resource=resource, payload=payload) is not None
    except Exception as exc:  # an event is a convenience; the log and the e-mail carry the alert
        log.debug("could not emit the Prefect event: %s", exc)
        return False


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _record(a: Alert, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(_jsonable(asdict(a)), sort_keys=True) + "\n")


def _email(a: Alert) -> None:
    from execution.notify import plain_message, send, smtp_settings

    try:
        settings = smtp_settings()
        if settings is None:
            return
        send(plain_message(f"quantlake {a.severity}: {a.subject}", a.text()), settings)
        a.emailed = True
    except QuantlakeError as exc:  # e.g. SMTP down: say so, never hide the alert itself
        a.email_error = redact_urls(str(exc))
        _run_logger().error("alert e-mail not sent: %s", exc)


def _webhook(a: Alert) -> None:
    from execution import webhook

    try:
        url = webhook.webhook_url()
        if not url:
            return
        webhook.post(webhook.payload(a.severity, a.subject, a.detail, _jsonable(a.context), a.kind, a.at), url)
        a.webhooked = True
    except QuantlakeError as exc:  # the receiver is down: say so, never hide the alert itself
        a.webhook_error = str(exc)
        _run_logger().error("alert webhook not sent: %s", exc)


def send(a: Alert, email: bool = True, record: Path | None = None, dedupe: bool = True) -> Alert:
    """Deliver ``a`` (log, Prefect event, alert file, e-mail and webhook when configured); returns it with
    the delivery flags set.  A repeat of its key's current state (``dedupe``) is logged and recorded only.
    Never raises for a delivery problem."""
    from execution import alert_state

    logger = _run_logger()
    if dedupe and a.severity != "resolved":
        try:
            a.suppressed = not alert_state.transition(a.key, a.state, a.subject)
        except OSError as exc:  # no state file: notify (a duplicate beats a lost alert)
            logger.debug("alert state not readable: %s", exc)
    level = logging.ERROR if a.severity == "critical" else logging.WARNING
    if a.severity == "resolved":
        level = logging.INFO
    repeat = " (repeat, not sent again)" if a.suppressed else ""
    logger.log(level, "ALERT %s: %s%s%s", a.kind, a.subject, f" — {a.detail}" if a.detail else "", repeat)
    a.logged = True
    if not a.suppressed:
        a.event = _emit_event(a)
        if email:
            _email(a)
        _webhook(a)
    target = record or alert_log_path()
    try:
        _record(a, target)
        a.path = str(target)
    except OSError as exc:
        logger.error("alert not recorded in %s: %s", target, exc)
    return a


def resolve(key: str, subject: str = "", **context: Any) -> Alert | None:
    """The condition behind ``key`` is over: forget its state and send one "resolved" notice (None when
    the key was not alerting)."""
    from execution import alert_state

    try:
        was = alert_state.clear(key)
    except OSError:
        return None
    if was is None:
        return None
    kind = key.split(":", 1)[0]
    what = subject or f"resolved: {was.get('subject', key)}"
    ctx = {"was": was.get("state"), "since": was.get("since"), "repeats": was.get("repeats", 0), **context}
    return send(Alert(kind if kind in KINDS else "flow", "resolved", what, "", ctx, key=key), dedupe=False)  # type: ignore[arg-type]


def fail(exc: QuantlakeError, kind: Kind, subject: str | None = None, key: str = "", **context: Any) -> NoReturn:
    """Send a critical alert about ``exc``, then raise it (the flow run ends Failed with its message)."""
    send(Alert(kind, "critical", subject or str(exc).splitlines()[0][:200], str(exc), context, key=key))
    _ALERTED.add(str(exc))
    raise exc


# ---------------------------------------------------------------------------------------------- checks
def drawdown(equity: float, peak: float) -> float:
    """Drawdown from the peak as a positive fraction (0 at or above the peak)."""
    if peak <= 0:
        return 0.0
    return max(0.0, 1.0 - equity / peak)


def check_drawdown(
    equity: float,
    peak: float,
    warn_at: float,
    kill_at: float,
    strategy: str = "",
    account: str = "",
    email: bool = True,
) -> Literal["ok", "warning", "kill"]:
    """Compare the drawdown with the thresholds: ``"ok"``; ``"warning"`` (alert sent); at or past
    ``kill_at`` a critical alert and :class:`~execution.errors.KillSwitchError`."""
    if not 0 < warn_at < kill_at:
        raise ValueError(f"need 0 < warn_at < kill_at, got {warn_at}, {kill_at}")
    dd = drawdown(equity, peak)
    ctx = {"strategy": strategy, "account": account, "equity": round(equity, 2), "peak": round(peak, 2),
           "drawdown": f"{dd:.2%}", "alert_at": f"{warn_at:.0%}", "kill_at": f"{kill_at:.0%}"}  # fmt: skip
    who = f"{strategy} " if strategy else ""
    key = f"drawdown:{account}:{strategy}"
    if dd >= kill_at:
        err = KillSwitchError(
            f"{who}drawdown {dd:.1%} reached the kill level {kill_at:.0%} (equity {equity:,.2f}, peak "
            f"{peak:,.2f}): no new orders until the kill switch is reset"
        )
        fail(err, "drawdown", f"{who}kill switch: drawdown {dd:.1%}", key=key, **ctx)
    if dd >= warn_at:
        send(Alert("drawdown", "warning", f"{who}drawdown {dd:.1%} passed the alert level {warn_at:.0%}", "", ctx,
                   key=key), email=email)  # fmt: skip
        return "warning"
    resolve(key, f"{who}drawdown back to {dd:.1%}, under the alert level {warn_at:.0%}", **ctx)
    return "ok"


def check_fresh_data(lake: Any, max_age_days: int, today: dt.date | None = None,
                     symbols: list[str] | None = None) -> dt.date:  # fmt: skip
    """The latest bar date; a critical alert and :class:`~execution.errors.StaleDataError` when the data is
    more than ``max_age_days`` trading days old (a data fetch failed or did not run)."""
    from execution.errors import StaleDataError
    from execution.scanner import check_fresh

    try:
        latest = check_fresh(lake, max_age_days, today, symbols)
    except StaleDataError as exc:
        fail(exc, "data", "stale market data: " + str(exc).split(":", 1)[-1].strip()[:150], key="data:stale")
    resolve("data:stale", f"market data fresh again (latest bar {latest})")
    return latest


def data_failure(exc: QuantlakeError, what: str = "data fetch") -> NoReturn:
    """A fetch failed: alert and raise ``exc``."""
    fail(exc, "data", f"{what} failed: {str(exc).splitlines()[0][:150]}")


def broker_rejections(rejected: Iterable[Sequence[Any]], broker: str = "", strategy: str = "") -> None:
    """``rejected`` = (client_order_id, symbol, reason) triples; when any, a critical alert and
    :class:`~execution.errors.OrderRejectedError` listing them."""
    rows = [tuple(r) for r in rejected]
    if not rows:
        return
    listing = "; ".join(f"{sym} ({cid}): {why}" for cid, sym, why, *_ in rows)
    where = f" by {broker}" if broker else ""
    err = OrderRejectedError(f"{len(rows)} order(s) rejected{where}: {listing}")
    fail(err, "broker", f"{len(rows)} order(s) rejected{where}", broker=broker, strategy=strategy,
         orders=[{"client_order_id": r[0], "symbol": r[1], "reason": r[2]} for r in rows])  # fmt: skip


# ---------------------------------------------------------------------------------------------- Prefect
def flow_failure_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` / ``on_crashed`` hook: an e-mail (and alert record) for a failed run.

    The run is already Failed in Prefect; this makes sure someone hears about it."""
    message = str(getattr(state, "message", "") or "")
    if message and message in _ALERTED:  # fail() already alerted about this error
        return
    name = getattr(flow, "name", "flow")
    run = getattr(flow_run, "name", "")
    send(
        Alert(
            "flow",
            "critical",
            f"flow run {name}/{run} {getattr(state, 'name', 'Failed')}",
            message,
            {"flow": name, "flow_run": run, "flow_run_id": str(getattr(flow_run, "id", ""))},
            key=f"flow:{name}",
            state="failed:" + hashlib.sha1(message.encode()).hexdigest()[:12],
        ),
        email=True,
    )


def flow_completion_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_completion`` hook: a flow that was failing completed again -> one "resolved" notice."""
    name = getattr(flow, "name", "flow")
    resolve(f"flow:{name}", f"flow {name} completed again (run {getattr(flow_run, 'name', '')})",
            flow_run_id=str(getattr(flow_run, "id", "")))  # fmt: skip
