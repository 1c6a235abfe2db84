"""Alert channels against a local HTTP receiver: the Slack-compatible webhook, de-duplication (once per state
change, then one "resolved"), retries, secrets kept out of errors, and the heartbeat for a scheduled
deployment that missed its run (real Prefect API, ephemeral server)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from werkzeug import Request, Response

TOKEN = "T000/B000/s3cr3t-webhook-token"


@pytest.fixture()
def receiver(httpserver: Any, ql_home: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A webhook receiver on 127.0.0.1 collecting every JSON body it is sent."""
    got: list[dict[str, Any]] = []

    def handler(request: Request) -> Response:
        got.append(json.loads(request.get_data()))
        return Response("ok", 200)

    httpserver.expect_request(f"/services/{TOKEN}", method="POST").respond_with_handler(handler)
    monkeypatch.setenv("QUANTLAKE_ALERT_WEBHOOK_URL", httpserver.url_for(f"/services/{TOKEN}"))
    for k in ("QUANTLAKE_SMTP_HOST", "QUANTLAKE_SMTP_BLOCK"):
        monkeypatch.delenv(k, raising=False)
    return got


def _records(home: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (home / "reports" / "alerts.jsonl").read_text().splitlines()]


def test_webhook_is_slack_compatible_and_deduplicated(receiver: list[dict[str, Any]], ql_home: Path) -> None:
    from execution import alerts

    # a drawdown warning on three consecutive runs: one message, the repeats are only recorded
    for equity in (88_000.0, 87_500.0, 86_000.0):
        assert alerts.check_drawdown(equity, 100_000.0, 0.10, 0.20, strategy="ml_ensemble", account="paper") == "warning"
    assert len(receiver) == 1
    msg = receiver[0]
    assert msg["text"].startswith("quantlake warning: ml_ensemble drawdown 12.0%")
    assert msg["blocks"][0]["type"] == "section" and msg["blocks"][0]["text"]["type"] == "mrkdwn"
    assert "*drawdown*: 12.00%" in json.dumps(msg) and msg["blocks"][-1]["type"] == "context"
    recs = _records(ql_home)
    assert [r["suppressed"] for r in recs] == [False, True, True] and recs[0]["webhooked"]

    # recovery: one "resolved" message; a new drawdown later alerts again
    assert alerts.check_drawdown(99_000.0, 100_000.0, 0.10, 0.20, strategy="ml_ensemble", account="paper") == "ok"
    assert alerts.check_drawdown(99_500.0, 100_000.0, 0.10, 0.20, strategy="ml_ensemble", account="paper") == "ok"
    assert len(receiver) == 2 and receiver[1]["text"].startswith("quantlake resolved: ml_ensemble drawdown back to 1.0%")
    alerts.check_drawdown(85_000.0, 100_000.0, 0.10, 0.20, strategy="ml_ensemble", account="paper")
    assert len(receiver) == 3
    # a different account is a different key
    alerts.check_drawdown(85_000.0, 100_000.0, 0.10, 0.20, strategy="ml_ensemble", account="other")
    assert len(receiver) == 4


def test_flow_failure_alerts_once_until_the_flow_completes(receiver: list[dict[str, Any]]) -> None:
    from types import SimpleNamespace

    from execution import alerts

    flow = SimpleNamespace(name="daily-scan")
    failed = SimpleNamespace(name="Failed", message="stale data: newest bar 2024-01-02")
    for run in ("run-a", "run-b"):
        alerts.flow_failure_hook(flow, SimpleNamespace(name=run, id="x"), failed)
    assert len(receiver) == 1  # the same failure twice: once
    other = SimpleNamespace(name="Failed", message="cannot reach SMTP server")
    alerts.flow_failure_hook(flow, SimpleNamespace(name="run-c", id="y"), other)
    assert len(receiver) == 2  # a different failure is a new state
    alerts.flow_completion_hook(flow, SimpleNamespace(name="run-d", id="z"), None)
    alerts.flow_completion_hook(flow, SimpleNamespace(name="run-e", id="w"), None)
    assert len(receiver) == 3 and "completed again" in receiver[2]["text"]


def test_webhook_retries_server_errors_and_never_shows_the_token(httpserver: Any, ql_home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:  # fmt: skip
    import logging

    caplog.set_level(logging.DEBUG)
    from execution import alerts, webhook
    from execution.errors import NotificationError

    url = httpserver.url_for(f"/services/{TOKEN}")
    httpserver.expect_ordered_request(f"/services/{TOKEN}").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request(f"/services/{TOKEN}").respond_with_data("ok", status=200)
    webhook.post({"text": "hello"}, url)  # 503, then delivered on the retry
    assert len(httpserver.log) == 2

    httpserver.clear()
    httpserver.expect_request(f"/services/{TOKEN}").respond_with_data("no such hook", status=404)
    with pytest.raises(NotificationError, match=r"refused the alert: HTTP 404") as err:
        webhook.post({"text": "hello"}, url)
    assert TOKEN not in str(err.value) and "s3cr3t" not in str(err.value)
    assert len(httpserver.log) == 1  # a 4xx is not retried

    monkeypatch.setenv("QUANTLAKE_ALERT_WEBHOOK_URL", url)
    a = alerts.send(alerts.Alert("data", "critical", "stale market data"))
    assert not a.webhooked and "HTTP 404" in (a.webhook_error or "")
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))  # not the receiver's
    assert "s3cr3t" not in (ql_home / "reports" / "alerts.jsonl").read_text() + ours


@pytest.mark.integration
@pytest.mark.slow
def test_heartbeat_alerts_a_missed_scheduled_run(receiver: list[dict[str, Any]], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A deployment scheduled every 5 minutes whose due run never started: one heartbeat alert (repeated
    checks stay silent), resolved once a run of it starts."""
    from quantlake.config import quiet_environment

    quiet_environment()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.states import Running, Scheduled

    from execution import heartbeat

    # a fresh flow name: the ephemeral server's database can outlive a test run (upserted deployments)
    flow_name = f"hb-test-{uuid.uuid4().hex[:8]}"
    name = f"{flow_name}/every-5-min"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(flow_name)
        dep_id = client.create_deployment(
            flow_id, "every-5-min", schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron="*/5 * * * *"))],
            paused=False,
        )  # fmt: skip
        created = client.read_deployment(dep_id).created
    later = created + dt.timedelta(hours=1)
    missed = heartbeat.check(now=later, deployments=[name])
    assert [m.deployment for m in missed] == [name]
    due = missed[0].due
    assert dt.timedelta(minutes=15) <= later - due < dt.timedelta(minutes=20) and due.minute % 5 == 0
    assert len(receiver) == 1 and "missed its run due" in receiver[0]["text"]
    heartbeat.check(now=later, deployments=[name])
    assert len(receiver) == 1  # still missed: not sent again

    with get_client(sync_client=True) as client:  # a worker finally runs it
        run = client.create_flow_run_from_deployment(dep_id, state=Scheduled(scheduled_time=due))
        client.set_flow_run_state(run.id, Running(), force=True)
    assert heartbeat.check(now=later, deployments=[name]) == []
    assert len(receiver) == 2 and "running on schedule again" in receiver[1]["text"]
    with get_client(sync_client=True) as client:  # leave no scheduled deployment behind in a shared database
        client.delete_deployment(dep_id)
