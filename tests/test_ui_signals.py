"""`quantlake ui mlflow|prefect` stop their server (its own process group) on SIGTERM, SIGINT and SIGHUP,
instead of leaving it running when the command is terminated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantlake.prefect_server import process_alive

SERVE = """
import sys
from tracking.ui import run_foreground
pidfile = sys.argv[1]
child = [sys.executable, "-c", f"import os, time; open({pidfile!r}, 'w').write(str(os.getpid())); time.sleep(600)"]
sys.exit(run_foreground(child))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_to_the_ui_command_stops_its_server(tmp_path: Path, sig: signal.Signals) -> None:
    pidfile = tmp_path / "server.pid"
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    proc = subprocess.Popen([sys.executable, str(script), str(pidfile)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "the server never started"
        time.sleep(0.1)
    server = int(pidfile.read_text())
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while process_alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not process_alive(server), f"server {server} survived {sig.name} to the ui command"
        assert code == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if process_alive(server):
            os.kill(server, signal.SIGKILL)
