"""This home's background Prefect server: started by the first command that runs a flow, reused by every
later command of the same ``QUANTLAKE_HOME``, stopped by itself after a quiet period.

Why: a Prefect-backed command needs an API to report its flow run to.  Starting one per command (Prefect's
temporary server subprocess, or the API in a thread of the command) costs 10-25 s of importing and starting
Prefect's server before a 5-row ingest can begin; talking to a running server costs a few hundred
milliseconds.  So the first command starts the server once, detached (``python -m quantlake.prefect_server``,
its own session, output in ``$QUANTLAKE_HOME/prefect/server.log``), and records it in
``$QUANTLAKE_HOME/prefect/server.json``; later commands find it there and check it answers.  It serves the
Prefect UI too (the address is printed when it starts and by ``quantlake ui prefect``).

It stops itself after ``QUANTLAKE_PREFECT_IDLE_MINUTES`` (default 60) without a request or an open
connection (a browser on its UI keeps it alive), or as soon as its home folder is deleted.
``quantlake ui prefect --stop`` stops it at once.  ``QUANTLAKE_PREFECT_SERVER=in-process`` runs the API in
each command instead (the test suite does: one throw-away home per test), ``subprocess`` Prefect's own
temporary server per command.

Written by hand: Prefect's ``prefect server start --background`` keeps one server per ``PREFECT_HOME`` but never
stops, takes a fixed port (4200, which the user's own server may hold) and has no idle shutdown; this module
runs the same app (``create_app(final=True)``, what ``prefect server start`` serves) under uvicorn with an
activity counter around it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"
IDLE_ENV = "QUANTLAKE_PREFECT_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 60.0
STARTUP_TIMEOUT_S = 180.0
SERVER_FILE = "server.json"
LOG_FILE = "server.log"


def idle_minutes() -> float:
    raw = os.environ.get(IDLE_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_IDLE_MINUTES
    except ValueError:
        raise ValueError(f"{IDLE_ENV}={raw!r} is not a number of minutes") from None
    if value <= 0:
        raise ValueError(f"{IDLE_ENV}={raw!r}: the idle time must be positive")
    return value


# ------------------------------------------------------------------------------------------ the record
def _dir() -> Path:
    from quantlake.orchestration import prefect_home

    return prefect_home()


def read_record() -> dict[str, Any] | None:
    """This home's recorded server (``quantlake ui prefect`` or the background server), if any."""
    try:
        data = json.loads((_dir() / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("api_url") else None


def write_record(api_url: str, pid: int, **extra: Any) -> Path:
    path = _dir() / SERVER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"api_url": api_url, "pid": pid, **extra}))
    tmp.replace(path)  # readers never see half a file
    return path


def forget_record(pid: int | None = None) -> None:
    """Remove the record (only if it is still ``pid``'s when given: a newer server may have replaced it)."""
    record = read_record()
    if pid is not None and record is not None and record.get("pid") != pid:
        return
    (_dir() / SERVER_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    """One starter at a time per home: two commands started together share one server."""
    path = _dir() / "server.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def outdated(record: dict[str, Any]) -> bool:
    """A background server started by another Prefect release than the one installed now (after an upgrade
    of the environment): restarted rather than talked to with a newer client."""
    return bool(record.get("background")) and record.get("prefect_version") != prefect_version()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------ client side
def ensure_running(timeout: float = STARTUP_TIMEOUT_S) -> str:
    """The API address of this home's background server, started now if none answers.  Raises
    ``RuntimeError`` (with the log's last lines) when it cannot start."""
    from quantlake.orchestration import healthy

    with _start_lock():
        record = read_record()
        if record and healthy(str(record["api_url"])):
            if not outdated(record):
                return str(record["api_url"])
            stop()
        port = _free_port()
        url = f"http://{LOCALHOST}:{port}/api"
        log = _dir() / LOG_FILE
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.setdefault("PREFECT_UI_API_URL", url)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "quantlake.prefect_server", "--port", str(port),
                 "--idle-minutes", str(idle_minutes())],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if healthy(url, timeout=1.0):
                # the server records itself just after it answers: wait for that, so the next command (or a
                # reader of the record) finds it rather than racing it
                while (read_record() or {}).get("api_url") != url and proc.poll() is None \
                        and time.monotonic() < deadline:
                    time.sleep(0.05)
                return url
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:]) if log.exists() else ""
        why = "exited" if proc.poll() is not None else f"did not answer within {timeout:.0f} s"
        raise RuntimeError(f"this home's Prefect server {why} (see {log})\n{tail}")


def stop(timeout: float = 20.0) -> int | None:
    """Stop this home's background server; returns its pid, or None when none was running."""
    record = read_record()
    if not record or not record.get("background"):
        return None
    pid = int(record["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        forget_record(pid)
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.1)
    if process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    forget_record(pid)
    return pid


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


# ------------------------------------------------------------------------------------------ server side
class Activity:
    """ASGI wrapper counting open requests/connections and the time of the last one."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open = 0
        self.last = time.monotonic()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.open += 1
        self.last = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        return 0.0 if self.open else time.monotonic() - self.last


def serve(port: int, idle_s: float, home_dir: Path, check_every: float = 1.0) -> None:
    """Serve Prefect's API and UI on ``port`` until idle for ``idle_s`` seconds, SIGTERM/SIGINT, or
    ``home_dir`` disappears."""
    import uvicorn
    from prefect.server.api.server import create_app

    activity = Activity(create_app(final=True))
    config = uvicorn.Config(activity, host=LOCALHOST, port=port, log_level="warning", lifespan="on",
                            timeout_keep_alive=5)
    server = uvicorn.Server(config)
    url = f"http://{LOCALHOST}:{port}/api"

    def watch() -> None:
        while not server.should_exit:
            time.sleep(check_every)
            if not server.started:
                activity.last = time.monotonic()  # the idle clock starts when the server answers
            elif not home_dir.exists():
                print("home folder deleted: stopping", flush=True)
                server.should_exit = True
            elif activity.idle_for() > idle_s:
                print(f"idle for {idle_s / 60:g} min: stopping", flush=True)
                server.should_exit = True

    def started() -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started and not server.should_exit and time.monotonic() < deadline:
            time.sleep(0.05)
        if server.started:
            write_record(url, os.getpid(), background=True, idle_minutes=idle_s / 60, prefect_version=prefect_version(),
                         started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            print(f"serving {url} (UI http://{LOCALHOST}:{port})", flush=True)

    threading.Thread(target=watch, name="idle-watch", daemon=True).start()
    threading.Thread(target=started, name="record", daemon=True).start()
    try:
        server.run()  # uvicorn handles SIGTERM/SIGINT: graceful stop
    finally:
        with contextlib.suppress(OSError):
            forget_record(os.getpid())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m quantlake.prefect_server", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle-minutes", type=float, default=DEFAULT_IDLE_MINUTES)
    args = ap.parse_args(argv)
    from quantlake.config import quiet_environment
    from quantlake.orchestration import use_quantlake_prefect_home

    quiet_environment()
    home_dir = use_quantlake_prefect_home()
    serve(args.port, args.idle_minutes * 60, home_dir)


if __name__ == "__main__":
    main()
