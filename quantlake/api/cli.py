"""``quantlake serve`` (the REST API) and ``quantlake alerts heartbeat``."""

from __future__ import annotations

import logging
import os
import threading
from typing import Annotated

import typer

log = logging.getLogger("quantlake.serve")
alerts_app = typer.Typer(help="Operational alerts: heartbeat of scheduled deployments, alert states.",
                         no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(alerts_app, name="alerts")


def _heartbeat_loop(every: float, stop: threading.Event) -> None:
    from execution import heartbeat

    while not stop.wait(every):
        try:
            missed = heartbeat.check()
            if missed:
                log.warning("heartbeat: %d deployment(s) missed their run", len(missed))
        except Exception as exc:  # the API keeps serving when the Prefect server is briefly away
            log.warning("heartbeat check failed: %s", exc)


def serve(
    host: Annotated[str, typer.Option(help="address to bind (non-loopback needs QUANTLAKE_API_KEY)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    heartbeat_every: Annotated[
        float, typer.Option(help="seconds between heartbeat checks of scheduled deployments (0: off; needs PREFECT_API_URL)")
    ] = 300.0,
    workers_threads: Annotated[int, typer.Option("--threads", min=1, max=200, help="request threads")] = 40,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs, Prometheus metrics at /metrics)."""
    import anyio.to_thread
    import uvicorn

    from quantlake.api import auth
    from quantlake.api.app import create_app
    from quantlake.config import quiet_environment

    quiet_environment()
    key = auth.load_key()
    auth.check_startup(host, key)
    if key is None:
        typer.echo(f"warning: no API key ({auth.KEY_ENV}): the API on {host}:{port} is open to local users", err=True)
    stop = threading.Event()
    if heartbeat_every > 0 and os.environ.get("PREFECT_API_URL"):
        threading.Thread(target=_heartbeat_loop, args=(heartbeat_every, stop), daemon=True).start()

    app = create_app(key)

    @app.on_event("startup")
    async def _threads() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = workers_threads

    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    finally:
        stop.set()


@alerts_app.command("heartbeat")
def heartbeat_cmd(
    grace: Annotated[int, typer.Option(help="minutes a due run may be late before it counts as missed")] = 15,
) -> None:
    """Alert (once per outage) for each scheduled deployment whose last due run did not start."""
    import datetime as dt

    from execution import heartbeat
    from quantlake.errors import ConfigError

    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("the heartbeat needs a Prefect server: set PREFECT_API_URL")
    missed = heartbeat.check(grace=dt.timedelta(minutes=grace))
    for m in missed:
        typer.echo(f"MISSED {m.deployment}: due {m.due:%Y-%m-%d %H:%M} UTC ({m.state})")
    typer.echo(f"{len(missed)} deployment(s) missed their run" if missed else "every scheduled deployment ran")
    if missed:
        raise typer.Exit(1)


@alerts_app.command("status")
def status_cmd() -> None:
    """Alert keys currently in an alerting state (what de-duplication holds back)."""
    from execution import alert_state

    active = alert_state.active()
    if not active:
        typer.echo("no active alerts")
    for key, v in sorted(active.items()):
        typer.echo(f"{key}: {v.get('state')} since {v.get('since')} ({v.get('repeats', 0)} repeat(s)) {v.get('subject', '')}")
