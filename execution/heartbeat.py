"""Heartbeat: alert when a scheduled deployment missed its run.

For every deployment with an active schedule (not paused) on the Prefect server, the last time it was due
(its cron/interval/rrule schedule, at least ``grace`` ago and after the deployment was created) must have a
flow run that started.  A due run still ``Scheduled``/``Late`` (no worker picked it up), or no run at all
(the scheduler is not creating them), is *missed*: a ``heartbeat`` alert keyed by the deployment (sent once
until it runs again, then resolved once; :mod:`execution.alert_state`).  Runs that started and failed are
not the heartbeat's business: the flows' own failure hooks alert about those.

Where it runs: ``quantlake alerts heartbeat`` (cron or a Prefect deployment of its own) and, every
``--heartbeat-every`` seconds, inside ``quantlake serve`` — a process that keeps running when the workers
are the thing that died.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from execution import alerts

STARTED = {"RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLED", "CANCELLING", "PAUSED"}
DEFAULT_GRACE = dt.timedelta(minutes=15)
LOOKBACK = dt.timedelta(days=8)  # a weekly schedule's last due time is within this


@dataclass(frozen=True)
class Missed:
    deployment: str  # flow/deployment
    due: dt.datetime
    state: str  # the due run's state, or "no run"
    flow_run_id: str | None = None

    @property
    def key(self) -> str:
        return f"heartbeat:{self.deployment}"


def _server_schedule(schedule: Any) -> Any:
    """The server-side schedule model of a client schedule (it can list the due dates)."""
    from prefect.server.schemas import schedules as ss

    cls = getattr(ss, type(schedule).__name__)
    return cls.model_validate(schedule.model_dump())


def last_due(schedule: Any, now: dt.datetime, grace: dt.timedelta, not_before: dt.datetime | None) -> dt.datetime | None:
    """The last time ``schedule`` was due at or before ``now - grace`` (None if never since ``not_before``)."""
    end = now - grace
    start = max(end - LOOKBACK, not_before) if not_before else end - LOOKBACK
    if start >= end:
        return None
    # the synchronous generator behind the (async) get_dates of Prefect's server schedules
    dates = [d for d in _server_schedule(schedule)._get_dates_generator(n=10_000, start=start, end=end) if d <= end]
    return max(dates) if dates else None


def missed_runs(now: dt.datetime | None = None, grace: dt.timedelta = DEFAULT_GRACE) -> list[Missed]:
    """Deployments whose last due run did not start (see the module doc).  Needs a Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    now = now or dt.datetime.now(dt.UTC)
    out: list[Missed] = []
    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        for dep in client.read_deployments():
            if getattr(dep, "paused", False):
                continue
            created = getattr(dep, "created", None)
            dues = [
                d
                for s in (dep.schedules or [])
                if getattr(s, "active", True)
                and (d := last_due(s.schedule, now, grace, created)) is not None
            ]
            if not dues:
                continue
            due = max(dues)
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                flow_run_filter=FlowRunFilter(
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=due - dt.timedelta(seconds=1))  # type: ignore[arg-type]
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=20,
            )
            name = f"{flows.get(dep.flow_id, '?')}/{dep.name}"
            started = [r for r in runs if r.state_type is not None and r.state_type.value in STARTED]
            if started:
                continue
            first = runs[0] if runs else None
            state = first.state_name or "Scheduled" if first is not None else "no run"
            out.append(Missed(name, due, str(state), str(first.id) if first is not None else None))
    return out


def check(now: dt.datetime | None = None, grace: dt.timedelta = DEFAULT_GRACE,
          deployments: list[str] | None = None) -> list[Missed]:  # fmt: skip
    """Alert (once per outage) for each missed deployment and resolve those running again; returns the
    missed ones.  ``deployments`` limits the check to those names (``flow/deployment``)."""
    from execution import alert_state

    missed = [m for m in missed_runs(now, grace) if deployments is None or m.deployment in deployments]
    for m in missed:
        alerts.send(
            alerts.Alert(
                "heartbeat",
                "critical",
                f"deployment {m.deployment} missed its run due {m.due:%Y-%m-%d %H:%M} UTC ({m.state})",
                "No flow run of this scheduled deployment started: is a worker polling its work pool, and is the "
                "Prefect server's scheduler running?",
                {"deployment": m.deployment, "due": m.due.isoformat(), "state": m.state,
                 "flow_run_id": m.flow_run_id or ""},
                key=m.key,
            )
        )
    down = {m.key for m in missed}
    for key in list(alert_state.active()):
        if key.startswith("heartbeat:") and key not in down:
            name = key.removeprefix("heartbeat:")
            if deployments is None or name in deployments:
                alerts.resolve(key, f"deployment {name} is running on schedule again")
    return missed
