"""``quantlake serve`` as a real server process (uvicorn) with a real Prefect server beside it, driven with
httpx: auth, malformed bodies, SQL that writes or reads files, limits, 50 concurrent requests, submission
through a Prefect deployment, /metrics, and the refusal to start open on a public address."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from servers import bin_path, free_port, stop, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = "test-key-0123456789abcdef"
HTTP = httpx.Client(timeout=180)  # generous: the first MLflow call creates its store (slow on a busy machine)


def _seed(home: Path) -> None:
    from quantlake.lake import Lake

    lake = Lake(home / "lake")
    days = pd.bdate_range("2024-01-01", periods=30)
    lake.merge("equity_bars", pd.DataFrame({"symbol": "AAA", "date": days.date, "close": range(10, 40), "source": "t"}))
    from execution.tables import DAILY_SIGNALS

    sig = pd.DataFrame({"date": [days[-1].date()] * 2 + [days[-2].date()], "symbol": ["AAA", "BBB", "AAA"],
                        "signal": ["bull", "bear", "bull"]})  # fmt: skip
    lake.merge("daily_signals", sig, spec=DAILY_SIGNALS)  # the other columns are null


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("api")
    home = tmp / "qlhome"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_TRACKING", "QUANTLAKE_"))}
    pf, port = free_port(), free_port()
    api = f"http://127.0.0.1:{pf}/api"
    env.update({"QUANTLAKE_HOME": str(home), "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_API_URL": api,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"})  # fmt: skip
    old = dict(os.environ)
    os.environ.update({"QUANTLAKE_HOME": str(home)})
    _seed(home)
    prefect = subprocess.Popen([bin_path("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(pf)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 (closed in finally) a file, not a pipe nobody reads (a full pipe would block the server)
    serve = subprocess.Popen([bin_path("quantlake"), "serve", "--port", str(port), "--heartbeat-every", "0"],
                             env={**env, "QUANTLAKE_API_KEY": KEY}, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for_port(port, serve, "quantlake serve", timeout=180)
        wait_for_port(pf, prefect, "prefect server", timeout=300)
        yield {"url": f"http://127.0.0.1:{port}", "api": api, "env": env, "home": home, "log": tmp / "serve.log"}
    finally:
        stop(serve)
        log.close()
        stop(prefect)
        os.environ.clear()
        os.environ.update(old)


def _h(key: str = KEY) -> dict[str, str]:
    return {"X-API-Key": key}


def test_auth(servers: dict[str, Any]) -> None:
    url = servers["url"]
    assert HTTP.get(f"{url}/health").json()["auth"] is True
    assert HTTP.get(f"{url}/docs").status_code == 200 and "swagger" in HTTP.get(f"{url}/docs").text.lower()
    paths = HTTP.get(f"{url}/openapi.json").json()["paths"]
    assert {"/runs", "/runs/{flow_run_id}", "/models", "/signals/latest", "/query", "/metrics"} <= set(paths)
    for headers in ({}, _h("wrong-key-0123456789"), {"Authorization": "Bearer nope"}, {"X-API-Key": ""}):
        r = HTTP.get(f"{url}/models", headers=headers)
        assert r.status_code == 401 and r.json()["detail"] == "missing or invalid API key"
        assert HTTP.post(f"{url}/query", json={"sql": "select 1"}, headers=headers).status_code == 401
    assert HTTP.get(f"{url}/models", headers=_h()).status_code == 200
    assert HTTP.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_malformed_bodies(servers: dict[str, Any]) -> None:
    url = servers["url"]
    cases = [
        ("/query", b"{not json"),
        ("/query", b'{"limit": 5}'),
        ("/query", b'{"sql": "select 1", "limit": 0}'),
        ("/query", b'{"sql": "select 1", "limit": 1000000}'),
        ("/query", b'{"sql": "select 1", "timeout_s": 3600}'),
        ("/query", b'{"sql": "select 1", "extra": true}'),
        ("/runs", b'{"kind": "nope"}'),
        ("/runs", b'{"kind": "training", "parameters": [1, 2]}'),
    ]
    for path, body in cases:
        r = HTTP.post(f"{url}{path}", content=body, headers={**_h(), "Content-Type": "application/json"})
        assert r.status_code == 422, (path, body, r.text)
    assert HTTP.get(f"{url}/runs/not-a-uuid", headers=_h()).status_code == 422
    assert HTTP.get(f"{url}/signals/latest?kind=weekly", headers=_h()).status_code == 422


def test_query_is_read_only_and_limited(servers: dict[str, Any]) -> None:
    url = servers["url"]
    r = HTTP.post(f"{url}/query", json={"sql": "select symbol, count(*) n from equity_bars group by 1"}, headers=_h())
    assert r.status_code == 200 and r.json()["rows"] == [["AAA", 30]] and r.json()["columns"] == ["symbol", "n"]
    r = HTTP.post(f"{url}/query", json={"sql": "from equity_bars order by date", "limit": 7}, headers=_h())
    body = r.json()
    assert len(body["rows"]) == 7 and body["truncated"] is True
    refused = [
        "COPY equity_bars TO '/tmp/x.csv'",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO equity_bars SELECT * FROM equity_bars",
        "ATTACH '/tmp/evil.duckdb' AS evil",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "select 1; drop view equity_bars",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        f"SELECT * FROM read_parquet('{servers['home']}/lake/equity_bars/*.parquet')",
    ]
    for sql in refused:
        r = HTTP.post(f"{url}/query", json={"sql": sql}, headers=_h())
        assert r.status_code == 400, (sql, r.status_code, r.text)
        assert "root:" not in r.text
    slow = "SELECT count(*) FROM range(100000000) a, range(1000000) b WHERE a.range * b.range = 7"
    r = HTTP.post(f"{url}/query", json={"sql": slow, "timeout_s": 0.5}, headers=_h(), timeout=60)
    assert r.status_code == 408 and "time limit of 0.5 s" in r.json()["detail"]


def test_signals_models_and_metrics(servers: dict[str, Any]) -> None:
    url = servers["url"]
    sig = HTTP.get(f"{url}/signals/latest", headers=_h()).json()
    assert sig["as_of"] == "2024-02-09" and sorted(s["symbol"] for s in sig["signals"]) == ["AAA", "BBB"]
    assert HTTP.get(f"{url}/models", headers=_h()).json() == []
    text = HTTP.get(f"{url}/metrics", headers=_h()).text
    assert 'quantlake_lake_table_rows{table="equity_bars"} 30.0' in text
    assert 'quantlake_lake_table_latest_date_age_days{table="equity_bars"}' in text
    assert 'quantlake_scrape_errors{part="flows"} 0.0' in text and 'quantlake_scrape_errors{part="lake"} 0.0' in text


def test_fifty_concurrent_requests(servers: dict[str, Any]) -> None:
    url = servers["url"]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120, headers=_h()) as client:
            calls = []
            for i in range(50):
                if i % 3 == 0:
                    calls.append(client.post(f"{url}/query", json={"sql": f"select {i} as i, count(*) from equity_bars"}))
                elif i % 3 == 1:
                    calls.append(client.get(f"{url}/signals/latest"))
                else:
                    calls.append(client.get(f"{url}/models"))
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 50
    for i, r in enumerate(responses):
        if i % 3 == 0:
            assert r.json()["rows"] == [[i, 30]]
    assert "Traceback" not in servers["log"].read_text()  # no request so far crashed inside the server


def test_submit_through_the_prefect_deployment(servers: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = servers["url"]
    r = HTTP.post(f"{url}/runs", json={"kind": "training", "parameters": {"config": {"optuna_trials": 1}}}, headers=_h())
    assert r.status_code == 404 and "deployment train-models/train-models not found" in r.json()["detail"]
    with temporary_settings(updates={PREFECT_API_URL: servers["api"]}), get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("train-models")
        client.create_deployment(flow_id, "train-models", entrypoint="flows/train_models.py:train_models_flow")
    r = HTTP.post(f"{url}/runs", json={"kind": "training", "parameters": {"config": {"optuna_trials": 1}}}, headers=_h())
    assert r.status_code == 202, r.text
    run_id = r.json()["flow_run_id"]
    st = HTTP.get(f"{url}/runs/{run_id}", headers=_h()).json()
    assert st["state"] == "Scheduled" and st["parameters"] == {"config": {"optuna_trials": 1}}
    assert st["mlflow_runs"] == []  # no worker ran it (yet)
    assert HTTP.get(f"{url}/runs/00000000-0000-0000-0000-000000000000", headers=_h()).status_code == 404


def test_refuses_to_start_open_on_a_public_address(servers: dict[str, Any]) -> None:
    env = {k: v for k, v in servers["env"].items() if k != "QUANTLAKE_API_KEY"}
    p = subprocess.run([bin_path("quantlake"), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2 and p.stderr.strip().startswith("error: refusing to serve on 0.0.0.0 without an API key")
    assert "Traceback" not in p.stderr
    assert dt.date.today()  # (the server above kept serving)
