"""Shared fixtures: every test gets its own QUANTLAKE_HOME, so nothing touches ./.quantlake."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# a throw-away QUANTLAKE_HOME per test: the Prefect API runs inside each command (and each test worker) rather
# than a background server per home left behind (tests/test_prefect_server.py covers the default)
os.environ.setdefault("QUANTLAKE_PREFECT_SERVER", "in-process")
# Prefect's default 30 s for an API to come up is too short for a 2-core machine running the suite on two
# workers while other work runs (a heartbeat test failed at load 17)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


@pytest.fixture(autouse=True)
def _in_process_prefect_api_alive() -> None:
    """Test isolation for the in-process Prefect API (quantlake.orchestration): a command runs once per
    process, but a test worker runs hundreds of tests, and a test that stops Prefect's ephemeral server (or
    its thread) leaves PREFECT_API_URL pointing at a dead port for every later flow of that worker."""
    import sys

    orchestration = sys.modules.get("quantlake.orchestration")
    server_mod = sys.modules.get("prefect.server.api.server")
    if orchestration is None or server_mod is None or getattr(orchestration, "_decided", None) != "in-process":
        return
    server = server_mod.SubprocessASGIServer._instances.get(None)
    thread = getattr(server, "_thread", None)
    if server is not None and hasattr(server, "_uvicorn") and not (server.running and thread is not None
                                                                   and thread.is_alive()):
        server.stop()
        server.start()


@pytest.fixture()
def ql_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty QUANTLAKE_HOME for this test."""
    home = tmp_path / "qlhome"
    home.mkdir()
    monkeypatch.setenv("QUANTLAKE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield home


@pytest.fixture()
def lake(ql_home: Path):  # type: ignore[no-untyped-def]
    """An empty Lake under the test's QUANTLAKE_HOME."""
    from quantlake.lake import Lake

    return Lake(ql_home / "lake")


@pytest.fixture(scope="session")
def sample_lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with all sample data ingested once per test session (read-only for tests: copy to modify)."""
    from quantlake.ingest import ingest_sample_all
    from quantlake.lake import Lake

    root = tmp_path_factory.mktemp("sample_lake") / "lake"
    ingest_sample_all(Lake(root), progress=False)
    return root


@pytest.fixture()
def sample_lake(sample_lake_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A private copy of the sample lake (safe to write to)."""
    import shutil

    from quantlake.lake import Lake

    dst = tmp_path / "lake"
    shutil.copytree(sample_lake_dir, dst)
    return Lake(dst)


@pytest.fixture()
def store(ql_home: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """QUANTLAKE_HOME with an MLflow store seeded from a cached, migrated copy (much faster than a fresh one)."""
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home
