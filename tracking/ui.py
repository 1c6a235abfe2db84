"""Start the MLflow and Prefect UIs on localhost over quantlake's own state."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from quantlake.config import quiet_environment
from quantlake.errors import UserInputError
from tracking.run_context import artifact_root, configure_mlflow, is_local_store

LOCALHOST = "127.0.0.1"


def _executable(name: str) -> list[str]:
    """The console script next to this interpreter (the venv's), else ``python -m name``."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", name]


def check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise UserInputError(f"invalid port {port}: use 1-65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise UserInputError(f"port {port} on {host} is already in use; pass another --port") from None


def mlflow_command(port: int = 5000, host: str = LOCALHOST, workers: int = 1) -> list[str]:
    """``mlflow server`` over quantlake's store: backend = the tracking URI, artifacts under QUANTLAKE_HOME."""
    uri = configure_mlflow()
    cmd = [*_executable("mlflow"), "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    cmd += ["--workers", str(workers)]
    if is_local_store(uri):
        root = artifact_root()
        root.mkdir(parents=True, exist_ok=True)
        # experiments created by quantlake store file:// artifact locations; the server reads them directly
        cmd += ["--default-artifact-root", root.as_uri(), "--no-serve-artifacts"]
    return cmd


def prefect_command(port: int = 4200, host: str = LOCALHOST) -> list[str]:
    """``prefect server start`` (API + bundled UI, works offline) on localhost.

    The bundled UI calls the API at ``PREFECT_UI_API_URL`` (default port 4200), so on another port it is set
    to this server's API unless the user set it."""
    from quantlake.orchestration import use_quantlake_prefect_home

    quiet_environment()
    use_quantlake_prefect_home()  # the database the commands' in-process API writes too
    os.environ.setdefault("PREFECT_UI_API_URL", f"http://{host}:{port}/api")
    return [*_executable("prefect"), "server", "start", "--host", host, "--port", str(port)]


def server_env() -> dict[str, str]:
    """Environment for the servers: telemetry off; MLflow's background job workers (GenAI scorers, unused
    here) off, which also keeps them from outliving the server."""
    quiet_environment()
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def start(cmd: list[str]) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (so :func:`stop` reaches its workers too)."""
    return subprocess.Popen(cmd, env=server_env(), start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """Terminate the server's whole process group; kill it if it does not exit within ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


class _Stop(Exception):
    """A termination signal arrived."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def run_foreground(cmd: list[str], started: Callable[[], object] | None = None) -> int:
    """Run a server until it exits, Ctrl-C (SIGINT), SIGTERM or SIGHUP; returns its exit code (0 when
    stopped by a signal).  The server runs in its own process group, so a signal to this process alone
    would orphan it: every one of those signals stops the whole group first.  ``started`` runs once the
    process is up (e.g. to record its address)."""
    proc = start(cmd)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if started is not None:
            started()
        return proc.wait()
    except (KeyboardInterrupt, _Stop):
        stop(proc)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
