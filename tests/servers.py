"""Real servers the scale-out tests start on 127.0.0.1 (issue 14): moto's standalone S3 server, a Dask
scheduler with workers, an MLflow tracking server.  Each is a child process, stopped by its fixture.

Import the fixtures into a test module (``from servers import s3_endpoint, s3_lake_uri  # noqa: F401``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "quantlake-test", "AWS_SECRET_ACCESS_KEY": "quantlake-test-secret",
               "AWS_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bin_path(name: str) -> str:
    """A console script of this interpreter's environment (``moto_server``, ``dask``, ``mlflow``)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed in this environment (make install)")
    return found


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server (the pip package, a real HTTP server) on a free port of 127.0.0.1."""
    port = free_port()
    proc = subprocess.Popen([bin_path("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard AWS variables pointing at ``endpoint`` (what a user sets for an S3-compatible store)."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"ql-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                 region_name=CREDENTIALS["AWS_REGION"]).create_bucket(Bucket=name)
    return name


@pytest.fixture()
def s3_lake_uri(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, ql_home: Path) -> str:
    """``s3://<fresh bucket>/lake`` on the test server, with the AWS variables set and QUANTLAKE_LAKE_URI
    pointing at it (so every command of this test uses the S3 lake)."""
    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    uri = f"s3://{new_bucket(s3_endpoint)}/lake"
    monkeypatch.setenv("QUANTLAKE_LAKE_URI", uri)
    return uri


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.update(extra)
    return env
