"""This home's background Prefect server (quantlake.prefect_server): the default for commands outside the
test suite.  The first command starts it, later commands reuse it (no Prefect server import or start of
their own), ``ui prefect --stop`` stops it, and it stops by itself when idle."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from quantlake.prefect_server import Activity, process_alive

CSV = "date,open,high,low,close,volume\n2024-01-02,10,11,9,10.5,1000\n2024-01-03,10.5,11,10,10.8,1200\n"


def test_activity_counts_open_connections_and_idle_time() -> None:
    """Idle time runs only while nothing is open: a long request (or a UI's websocket) keeps it at zero."""
    gate = asyncio.Event()
    seen: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await gate.wait()

    act = Activity(app)

    async def main() -> None:
        task = asyncio.create_task(act({"type": "http"}, None, None))
        await asyncio.sleep(0.05)
        seen.append(act.idle_for())  # request open
        assert act.open == 1
        await asyncio.sleep(0.05)
        seen.append(act.idle_for())
        gate.set()
        await task
        await act({"type": "lifespan"}, None, None)  # not a request: does not count as activity
        await asyncio.sleep(0.1)
        seen.append(act.idle_for())

    asyncio.run(main())
    assert seen[0] == 0.0 and seen[1] == 0.0 and act.open == 0
    assert seen[2] >= 0.09


def test_idle_minutes_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from quantlake import prefect_server

    monkeypatch.setenv(prefect_server.IDLE_ENV, "abc")
    with pytest.raises(ValueError, match="not a number"):
        prefect_server.idle_minutes()
    monkeypatch.setenv(prefect_server.IDLE_ENV, "0")
    with pytest.raises(ValueError, match="positive"):
        prefect_server.idle_minutes()
    monkeypatch.setenv(prefect_server.IDLE_ENV, "2.5")
    assert prefect_server.idle_minutes() == 2.5


def _env(home: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "QUANTLAKE_PREFECT_SERVER"}
    return {**base, "QUANTLAKE_HOME": str(home), "QUANTLAKE_USER_PREFECT_HOME": str(home / "none"),
            "COLUMNS": "120", **extra}


def _ql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quantlake.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def _record(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / "prefect" / "server.json").read_text()))


def _flow_runs(api_url: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(api_url + "/flow_runs/filter", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return list(json.loads(resp.read()))


def _wait(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return bool(cond())


@pytest.mark.slow
@pytest.mark.integration
def test_first_command_starts_the_server_later_commands_reuse_it_and_it_stops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = tmp_path / "csv"
    data.mkdir()
    (data / "ABC.csv").write_text(CSV)
    env = _env(home)
    pid = 0
    try:
        first = _ql(env, "ingest", "equity", "--source", "csv", "--path", str(data), "--no-progress")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "started this home's Prefect server" in first.stderr
        rec = _record(home)
        pid, url = int(rec["pid"]), str(rec["api_url"])
        assert rec["background"] and process_alive(pid)
        assert pid != os.getpid()

        second = _ql(env, "ingest", "equity", "--source", "csv", "--path", str(data), "--no-progress")
        assert second.returncode == 0, second.stderr[-3000:]
        assert "started this home's Prefect server" not in second.stderr
        assert _record(home)["pid"] == pid  # the same server
        runs = _flow_runs(url)
        assert len(runs) == 2 and {r["state_type"] for r in runs} == {"COMPLETED"}

        shown = _ql(env, "ui", "prefect")  # a running background server: show it, start nothing
        assert shown.returncode == 0 and url.removesuffix("/api") in shown.stdout
        stopped = _ql(env, "ui", "prefect", "--stop")
        assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
        assert _wait(lambda: not process_alive(pid), 30)
        assert not (home / "prefect" / "server.json").exists()
        again = _ql(env, "ui", "prefect", "--stop")
        assert "no background Prefect server" in again.stdout
    finally:
        if pid and process_alive(pid):
            os.kill(pid, 9)


@pytest.mark.slow
@pytest.mark.integration
def test_the_server_stops_by_itself_when_idle(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home, QUANTLAKE_PREFECT_IDLE_MINUTES="0.15")  # 9 s
    # the pid is read in the child, right after start-up: at high load the idle limit can pass (and the
    # record go) before this process could read it
    code = ("from quantlake import orchestration, prefect_server; print(orchestration.configure()); "
            "print(prefect_server.read_record()['pid'])")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout.split()
    assert res.returncode == 0 and out[0] == "home-server", res.stderr[-3000:]
    pid = int(out[1])
    try:
        assert _wait(lambda: not process_alive(pid), 90), "the idle server is still running"
        assert not (home / "prefect" / "server.json").exists()
        assert "idle for" in (home / "prefect" / "server.log").read_text()
    finally:
        if process_alive(pid):
            os.kill(pid, 9)


def test_a_background_server_of_another_prefect_release_is_not_reused(ql_home: Path) -> None:
    """After an upgrade of the environment, the recorded background server (older Prefect) is not talked to:
    configure() skips it and ensure_running() replaces it."""
    from quantlake import orchestration, prefect_server

    current = prefect_server.prefect_version()
    prefect_server.write_record("http://127.0.0.1:9/api", 1, background=True, prefect_version="2.0.0")
    assert prefect_server.outdated(prefect_server.read_record() or {})
    assert orchestration._recorded_server() is None
    prefect_server.write_record("http://127.0.0.1:9/api", 1, background=True, prefect_version=current)
    assert orchestration._recorded_server() == "http://127.0.0.1:9/api"
    prefect_server.write_record("http://127.0.0.1:9/api", 1)  # `quantlake ui prefect` (foreground): the user's
    assert not prefect_server.outdated(prefect_server.read_record() or {})
