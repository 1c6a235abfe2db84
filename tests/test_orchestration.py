"""Where flows report to: a configured server, this home's running server, else an API thread in the
command's own process (no temporary server subprocess), with Prefect's home under QUANTLAKE_HOME."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


def _configure(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Run quantlake.orchestration.configure() in a fresh interpreter; its decision and environment."""
    code = (
        "import json, os, sys\nfrom quantlake import orchestration\nmode = orchestration.configure()\n"
        "print(json.dumps({'mode': mode, 'url': os.environ.get('PREFECT_API_URL', ''),"
        " 'home': os.environ.get('PREFECT_HOME', ''), 'prefect_imported': 'prefect' in sys.modules}))\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    full = {**base, "QUANTLAKE_HOME": str(home), "QUANTLAKE_USER_PREFECT_HOME": str(home / "user-prefect"),
            **(env or {})}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


@pytest.fixture()
def health_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/api/health"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"true" if ok else b"")

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/api"
    srv.shutdown()


def test_configured_url_wins_and_home_moves_under_quantlake_home(tmp_path: Path) -> None:
    out = _configure(tmp_path, {"PREFECT_API_URL": "http://10.0.0.1:4200/api"})
    assert out["mode"] == "configured" and out["url"] == "http://10.0.0.1:4200/api"
    assert out["home"] == str(tmp_path / "prefect")
    assert not out["prefect_imported"]  # deciding costs no Prefect import


def test_the_users_profile_is_a_configured_server(tmp_path: Path) -> None:
    prof = tmp_path / "user-prefect"
    prof.mkdir()
    (prof / "profiles.toml").write_text(
        'active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://prefect.internal:4200/api"\n'
    )
    out = _configure(tmp_path)
    assert out["mode"] == "configured" and out["url"] == "http://prefect.internal:4200/api"


def test_this_homes_running_server_is_used_only_when_it_answers(tmp_path: Path, health_server: str) -> None:
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "server.json").write_text(json.dumps({"api_url": health_server}))
    out = _configure(tmp_path)
    assert out["mode"] == "home-server" and out["url"] == health_server
    (tmp_path / "prefect" / "server.json").write_text(json.dumps({"api_url": "http://127.0.0.1:9/api"}))
    out = _configure(tmp_path)  # starts the API thread: its address is exported for child processes
    assert out["mode"] == "in-process" and out["url"].startswith("http://127.0.0.1:")
    assert out["url"] != "http://127.0.0.1:9/api"


@pytest.mark.slow
@pytest.mark.integration
def test_a_flow_runs_on_an_api_thread_without_a_server_subprocess(tmp_path: Path) -> None:
    """The ingest flow of a 5-row CSV file: no child process is started, the run lands in the SQLite
    database under $QUANTLAKE_HOME/prefect (on main: a temporary server subprocess and ~/.prefect)."""
    data = tmp_path / "vendor"
    data.mkdir()
    (data / "ABC.csv").write_text(
        "date,open,high,low,close,volume\n2024-01-02,10,11,9,10.5,1000\n2024-01-03,10.5,11,10,10.8,1200\n"
        "2024-01-04,10.8,11.2,10.1,11,900\n2024-01-05,11,11.5,10.7,11.2,1100\n2024-01-08,11.2,11.9,11,11.8,1500\n"
    )
    code = f"""
import subprocess, sys
spawned = []
_popen = subprocess.Popen.__init__
def spy(self, args, *a, **k):
    spawned.append(args)
    return _popen(self, args, *a, **k)
subprocess.Popen.__init__ = spy
sys.argv = ["quantlake", "ingest", "equity", "--source", "csv", "--path", {str(data)!r}, "--no-progress"]
from quantlake.cli import main
try:
    main()
finally:
    print("SPAWNED", [a for a in spawned if "uvicorn" in str(a)])
"""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env = {**base, "QUANTLAKE_HOME": str(tmp_path / "home"), "COLUMNS": "120",
           "QUANTLAKE_USER_PREFECT_HOME": str(tmp_path / "none")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "SPAWNED []" in res.stdout
    assert "inserted" in res.stdout
    assert (tmp_path / "home" / "prefect" / "prefect.db").exists()
