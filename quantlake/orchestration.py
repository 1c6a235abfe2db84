"""Where quantlake's Prefect flows report to, decided once per process before Prefect is imported.

In order:

1. **A configured server**: ``PREFECT_API_URL`` in the environment, or in the active profile of the user's
   own Prefect home (``~/.prefect/profiles.toml``, what ``prefect config set PREFECT_API_URL=...`` writes).
2. **This home's running server**: ``quantlake ui prefect`` or this home's background server records its
   address in ``$QUANTLAKE_HOME/prefect/server.json``; if it answers ``/api/health`` within a fraction of a
   second, flows report to it (and show in its UI at once).  A server of *another* home or checkout is never
   picked up.
3. **This home's background server, started now** (the default, ``QUANTLAKE_PREFECT_SERVER=background``):
   the first command that runs a flow starts it once, detached, on the SQLite database in
   ``$QUANTLAKE_HOME/prefect``; later commands find it by 2. and pay a few hundred milliseconds instead of
   10-25 s of starting Prefect's server each time.  It stops itself after an idle hour
   (:mod:`quantlake.prefect_server`).  If it cannot start, the command falls back to 4. and says so.
4. **In this process** (``QUANTLAKE_PREFECT_SERVER=in-process``, the test suite's choice: a throw-away home per
   test): the Prefect API runs in a background thread of the command itself, started when the flows are
   imported (only commands that run a flow import them).  ``QUANTLAKE_PREFECT_SERVER=subprocess`` restores
   Prefect's own behaviour, a temporary server subprocess per command (the benchmark compares all four).

In 3. and 4. the address is exported as ``PREFECT_API_URL`` before Prefect reads its settings, so task runs
on Dask workers (other processes) and nested commands report to the same API.

``PREFECT_HOME`` defaults to ``$QUANTLAKE_HOME/prefect`` (never the shared ``~/.prefect``, where runs of
other lakes and checkouts mixed), unless you set it yourself.  ``--no-flow`` on a command skips Prefect.

How the thread replaces the subprocess: Prefect 3.8's ``get_client()`` asks ``SubprocessASGIServer()`` for
the default ephemeral server, a per-port singleton; registering an instance of :class:`InProcessServer`
(a subclass that runs uvicorn in a thread) as that singleton is the same hook Prefect's own
``prefect_test_harness`` uses.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from quantlake.config import home

MODE_ENV = "QUANTLAKE_PREFECT_SERVER"  # background (default) | in-process | subprocess
MODES = ("background", "in-process", "subprocess")
_HEALTH_TIMEOUT = 0.5
_decided: str | None = None


def prefect_home() -> Path:
    return home() / "prefect"


def use_quantlake_prefect_home() -> Path:
    """``PREFECT_HOME`` = ``$QUANTLAKE_HOME/prefect`` unless the user set it (created: Prefect itself makes
    only the last level); call before Prefect is imported."""
    if "PREFECT_HOME" not in os.environ:
        prefect_home().mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(prefect_home())
    return Path(os.environ["PREFECT_HOME"])


def _profile_api_url() -> str | None:
    """``PREFECT_API_URL`` of the active profile in the user's own Prefect home, if any."""
    import tomllib

    user_home = Path(os.environ.get("QUANTLAKE_USER_PREFECT_HOME", "~/.prefect")).expanduser()
    try:
        data = tomllib.loads((user_home / "profiles.toml").read_text())
    except (OSError, ValueError):
        return None
    active = data.get("active", "ephemeral")
    url = data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def healthy(api_url: str, timeout: float = _HEALTH_TIMEOUT) -> bool:
    """Whether a Prefect API answers ``/health`` at ``api_url`` (``http://host:port/api``)."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


def record_server(api_url: str, pid: int | None = None) -> Path:
    """Note this home's running server (``quantlake ui prefect``) for later commands."""
    from quantlake.prefect_server import write_record

    return write_record(api_url, pid or os.getpid())


def forget_server() -> None:
    from quantlake.prefect_server import forget_record

    forget_record()


def _recorded_server() -> str | None:
    """This home's recorded server, unless it is a background server of an older Prefect (restarted by
    :func:`_start_background_server`)."""
    from quantlake.prefect_server import outdated, read_record

    record = read_record()
    return str(record["api_url"]) if record and not outdated(record) else None


def configure() -> str:
    """Decide where flows report (see the module docstring) and set the environment for it; call before
    Prefect is imported.  Returns ``"configured"``, ``"home-server"``, ``"in-process"`` or ``"subprocess"``."""
    global _decided
    if _decided is not None:
        return _decided
    from quantlake.redact import install_log_redaction

    install_log_redaction()  # flow logs go to Prefect's database: never with URL credentials
    use_quantlake_prefect_home()
    if os.environ.get("PREFECT_API_URL"):
        _decided = "configured"
        return _decided
    url = _profile_api_url()
    if url:
        os.environ["PREFECT_API_URL"] = url
        _decided = "configured"
        return _decided
    recorded = _recorded_server()
    if recorded and healthy(recorded):
        os.environ["PREFECT_API_URL"] = recorded
        _decided = "home-server"
        return _decided
    mode = os.environ.get(MODE_ENV, "background")
    if mode not in MODES:
        from quantlake.errors import UserInputError

        raise UserInputError(f"{MODE_ENV}={mode!r}: choose one of {', '.join(MODES)}")
    if mode == "subprocess":
        _decided = "subprocess"
        return _decided
    if mode == "background":
        url = _start_background_server()
        if url is not None:
            os.environ["PREFECT_API_URL"] = url
            _decided = "home-server"
            return _decided
    # the address is fixed before Prefect reads its settings, so every client of this process, and every
    # process it starts (Dask workers, a nested quantlake command), reports to this one API
    port = _free_port()
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    _install_in_process_server(port)
    _decided = "in-process"
    return _decided


def decided() -> str | None:
    """What :func:`configure` decided in this process (None: no flow imported yet)."""
    return _decided


def _start_background_server() -> str | None:
    """This home's background server (:mod:`quantlake.prefect_server`), started if none answers; None (and
    one line on stderr) when it cannot start: the command then runs the API in-process."""
    import sys

    from quantlake.prefect_server import LOG_FILE, ensure_running, read_record

    before = read_record()
    try:
        url = ensure_running()
    except (OSError, RuntimeError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        print(f"note: {first}; running Prefect's API inside this command instead", file=sys.stderr)
        return None
    if not before or before.get("api_url") != url:
        from quantlake.prefect_server import idle_minutes

        ui = url.removesuffix("/api")
        print(f"started this home's Prefect server: UI {ui} (stops after {idle_minutes():g} min idle; log "
              f"{prefect_home() / LOG_FILE}; `quantlake ui prefect --stop` stops it)", file=sys.stderr)
    return url


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _install_in_process_server(port: int) -> None:
    from prefect.server.api.server import SubprocessASGIServer

    class InProcessServer(SubprocessASGIServer):
        """Prefect's ephemeral API served by uvicorn in a daemon thread of this process."""

        _thread: threading.Thread | None = None
        _uvicorn: Any = None

        def start(self, timeout: int | None = None) -> None:
            if self.running:
                return
            import uvicorn
            from prefect.server.api.server import create_app
            from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

            self.port = self.port or _free_port()
            app = create_app(ephemeral=True, final=True)
            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="on")
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, name="prefect-api", daemon=True)
            self._uvicorn, self._thread = server, thread
            thread.start()
            limit = time.monotonic() + float(timeout or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
            while not server.started:
                if not thread.is_alive() or time.monotonic() > limit:
                    raise RuntimeError(f"the in-process Prefect API did not start on port {self.port}")
                time.sleep(0.02)
            self.server_process = _ThreadHandle(thread)  # type: ignore[assignment]
            self.running = True
            atexit.register(self.stop)

        def stop(self) -> None:
            if self._uvicorn is not None and self._thread is not None:
                # at the command's exit every flow run's state is already written (the client waits for
                # the API's answers): do not wait for uvicorn's graceful close of idle keep-alive and event
                # websocket connections (it held every command ~10 s at exit)
                self._uvicorn.should_exit = True
                self._uvicorn.force_exit = True
                self._thread.join(timeout=2)
            self._uvicorn = self._thread = None
            self.server_process = None
            self.running = False

    current = SubprocessASGIServer._instances.get(None)
    if current is None or not current.running:
        server = object.__new__(InProcessServer)
        SubprocessASGIServer.__init__(server, port)
        # also Prefect's own lookup (a process that imported Prefect before the address was set asks for
        # its default ephemeral server: it gets this one)
        SubprocessASGIServer._instances[None] = server
        server.start()


class _ThreadHandle:
    """Enough of ``subprocess.Popen`` for Prefect's checks on its ephemeral server."""

    def __init__(self, thread: threading.Thread) -> None:
        self._thread = thread

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else 0

    def terminate(self) -> None:  # stop() does the work
        return None

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        return 0
