"""End to end: a real local Prefect server, `prefect deploy` from prefect.yaml, a process worker, flow runs
triggered through the API (one completes and e-mails the scan, one fails on stale data and e-mails an alert,
with SMTP settings from a Prefect Secret block), then the Prefect UI and the MLflow UI loaded in headless
Chromium, checking that they render the deployment and the runs.

Runs in CI (``make test``); about 2-3 minutes on a loaded 2-core machine, mostly server start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import prefect.context  # noqa: F401  (see below)
import pytest
import requests

# Prefect freezes its global settings from the environment when prefect.context is first imported.  Import it
# here, at collection, so the `env` fixture's PREFECT_API_URL (this test's server, stopped at its end) reaches
# only the subprocesses and the explicit temporary_settings blocks, never the later in-process flow tests of
# the same pytest worker (they failed with "Failed to reach API at http://127.0.0.1:<this test's port>").

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
POOL = "quantlake-process"
SMTP_BLOCK = "quantlake-e2e-smtp"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900", "--virtual-time-budget=15000"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: list[subprocess.Popen[bytes]]) -> Any:
    """Poll ``check`` until it returns a truthy value; fail naming ``what`` (and any process that died)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for p in procs:
            assert p.poll() is None, f"{' '.join(map(str, p.args[:4]))} exited with {p.returncode} while waiting for {what}"  # type: ignore[index]
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def log(t0: float, what: str) -> None:
    print(f"[e2e {time.monotonic() - t0:6.1f} s] {what}", file=sys.stderr)


def http_ok(url: str) -> bool:
    return requests.get(url, timeout=5).status_code == 200


def dump_dom(chromium: str, urls: list[str]) -> list[str]:
    """Each page's DOM after its scripts ran (the pages load in parallel)."""
    procs = []
    for url in urls:
        profile = tempfile.mkdtemp(prefix="chromium-")
        procs.append((subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL), profile))  # fmt: skip
    out = []
    for p, profile in procs:
        stdout, _ = p.communicate(timeout=120)
        shutil.rmtree(profile, ignore_errors=True)
        out.append(stdout.decode("utf-8", "replace"))
    return out


def visible_text(html: str) -> str:
    import re

    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture()
def env(tmp_path: Path, sample_lake_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Temporary QUANTLAKE_HOME (sample lake), PREFECT_HOME, ports; the environment the servers, the
    worker and its flow runs inherit."""
    home = tmp_path / "qlhome"
    shutil.copytree(sample_lake_dir, home / "lake")
    pf, ml = free_port(), free_port()
    api = f"http://127.0.0.1:{pf}/api"
    for key in [k for k in os.environ if k.startswith(("QUANTLAKE_SMTP_", "PREFECT_API", "MLFLOW_TRACKING"))]:
        monkeypatch.delenv(key)
    settings = {
        "QUANTLAKE_HOME": str(home),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_UI_API_URL": api,  # the UI otherwise calls 127.0.0.1:4200
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "QUANTLAKE_SMTP_BLOCK": SMTP_BLOCK,
        "QUANTLAKE_MOTD_PATH": str(tmp_path / "motd"),
    }
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    yield {"home": home, "tmp": tmp_path, "pf": pf, "ml": ml, "api": api}


def test_deploy_trigger_and_uis(env: dict[str, Any]) -> None:
    from aiosmtpd.controller import Controller
    from prefect import get_client
    from prefect.blocks.system import Secret
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.workers.process import ProcessWorker

    from tracking.ui import mlflow_command, prefect_command, start, stop

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "chromium is not installed (make chromium)"
    prefect_exe = str(Path(sys.executable).parent / "prefect")
    tmp, api, ml = env["tmp"], env["api"], env["ml"]
    mlflow_url = f"http://127.0.0.1:{ml}"

    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.monotonic()
    try:
        # both servers start in parallel (a fresh PREFECT_HOME / MLflow store migrates its database first)
        prefect_server = start(prefect_command(env["pf"]))
        mlflow_server = start(mlflow_command(ml))
        procs += [prefect_server, mlflow_server]
        wait_for("the Prefect API", lambda: http_ok(f"{api}/health"), 240, procs)
        log(t0, "Prefect server up")
        with temporary_settings(updates={PREFECT_API_URL: api}):
            with get_client(sync_client=True) as client:  # the process work pool `prefect deploy` needs
                client.create_work_pool(WorkPoolCreate(
                    name=POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))  # fmt: skip
            # deploy (the CLI, from prefect.yaml) and start the worker side by side
            deploy = subprocess.Popen([prefect_exe, "--no-prompt", "deploy", "--name", "daily-scan"], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())  # fmt: skip
            worker = start([prefect_exe, "worker", "start", "--pool", POOL, "--limit", "2"])
            procs.insert(0, worker)
            # SMTP settings for the flow runs come from a Prefect Secret block (QUANTLAKE_SMTP_BLOCK)
            Secret(value={"host": "127.0.0.1", "port": smtp_port, "sender": "quantlake@example.test",
                          "recipients": ["desk@example.test"]}).save(SMTP_BLOCK, overwrite=True)  # fmt: skip
            out, _ = deploy.communicate(timeout=300)
            assert deploy.returncode == 0, out.decode()[-3000:]
            log(t0, "deployed")
            params = {"as_of": "2018-06-27", "json_dir": str(tmp / "scan"), "motd_path": str(tmp / "motd"),
                      "config": {"allow_missing_volume": True, "max_price": 300.0}}  # fmt: skip
            good = run_deployment("daily-scan/daily-scan", parameters={**params, "max_age_days": None}, timeout=0)
            stale = run_deployment("daily-scan/daily-scan", parameters=params, timeout=0)  # deployment: max_age_days 1

            # meanwhile: an MLflow experiment with a run, through the tracking server's REST API
            wait_for("the MLflow server", lambda: http_ok(f"{mlflow_url}/health"), 240, procs)
            rest = f"{mlflow_url}/api/2.0/mlflow"
            exp_id = requests.post(f"{rest}/experiments/create", json={"name": "quantlake-e2e"}, timeout=30).json()["experiment_id"]
            run = requests.post(f"{rest}/runs/create", json={"experiment_id": exp_id, "run_name": "e2e-scan-run",
                                                             "start_time": int(time.time() * 1000)}, timeout=30).json()["run"]  # fmt: skip
            run_id = run["info"]["run_id"]
            requests.post(f"{rest}/runs/log-metric", json={"run_id": run_id, "key": "signals", "value": 1,
                                                           "timestamp": int(time.time() * 1000)}, timeout=30).raise_for_status()  # fmt: skip
            requests.post(f"{rest}/runs/update", json={"run_id": run_id, "status": "FINISHED"}, timeout=30).raise_for_status()
            log(t0, "MLflow server up, run logged")

            with get_client(sync_client=True) as client:

                def final(flow_run_id: Any) -> Any:
                    fr = client.read_flow_run(flow_run_id)
                    return fr if fr.state is not None and fr.state.is_final() else None

                good_run = wait_for("the scan flow run", lambda: final(good.id), 300, procs)
                stale_run = wait_for("the stale-data flow run", lambda: final(stale.id), 300, procs)
                assert good_run.state.is_completed(), good_run.state
                assert stale_run.state.is_failed(), stale_run.state
                assert "equity_bars is stale: the latest bar is 2018-06-29" in (stale_run.state.message or "")
                deployment = client.read_deployment_by_name("daily-scan/daily-scan")
                upcoming = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                    flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                )  # fmt: skip
                log(t0, "flow runs finished")
                artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["daily-scan"])))
                assert any("MSFT" in str(a.data) for a in artifacts)

        # what the scan run produced (its worker inherited QUANTLAKE_HOME and the MOTD path)
        data = json.loads((tmp / "scan" / "signals_2018-06-27.json").read_text())
        assert [(s["symbol"], s["signal"], s["direction"]) for s in data["signals"]] == [("MSFT", "ema_9_21", "bear")]
        assert "quantlake scan 2018-06-27: 1 signal(s)" in (tmp / "motd").read_text()
        from quantlake.lake import Lake

        assert list(Lake(env["home"] / "lake").read("daily_signals")["symbol"]) == ["MSFT"]
        wait_for("the e-mails", lambda: len(inbox.messages) >= 2, 30, [])
        subjects = inbox.subjects()
        assert "quantlake scan 2018-06-27: 1 signal(s)" in subjects
        assert any(s.startswith("quantlake critical: stale market data") for s in subjects), subjects
        scan_mail = inbox.messages[subjects.index("quantlake scan 2018-06-27: 1 signal(s)")]
        assert [p.get_content_type() for p in scan_mail.walk()].count("image/png") == 1

        # the UIs, rendered by a real browser
        ui = api.removesuffix("/api")
        pages = dump_dom(chromium, [
            f"{ui}/deployments/deployment/{deployment.id}",
            f"{ui}/runs/flow-run/{good_run.id}",
            f"{ui}/runs/flow-run/{stale_run.id}",
            f"{mlflow_url}/#/experiments/{exp_id}/runs",
        ])  # fmt: skip
        log(t0, "pages rendered")
        dep_page, good_page, stale_page, mlflow_page = (visible_text(p) for p in pages)
        assert "daily-scan" in dep_page and "flows/daily_scan.py:daily_scan_flow" in dep_page, dep_page[-1500:]
        assert "At 06:15 PM, Monday through Friday" in dep_page and POOL in dep_page
        assert good_run.name in good_page and "Completed" in good_page, good_page[-1500:]
        assert "MSFT" in good_page  # the scan's log line
        assert stale_run.name in stale_page and "Failed" in stale_page, stale_page[-1500:]
        assert "quantlake-e2e" in mlflow_page and "e2e-scan-run" in mlflow_page, mlflow_page[-1500:]
        # the cron schedule produced upcoming runs (weekdays 18:15 New York)
        assert upcoming, "the deployment's cron schedule created no scheduled runs"
        for fr in upcoming:
            local = fr.expected_start_time.astimezone(ZoneInfo("America/New_York"))  # type: ignore[union-attr]
            assert (local.hour, local.minute) == (18, 15) and local.weekday() < 5
    finally:
        for p in procs:  # the worker first (it would keep polling a stopped server)
            stop(p, timeout=20)
        smtp.stop()
    assert time.monotonic() - t0 < 600
