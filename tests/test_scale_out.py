"""Beyond one machine (issue 14), end to end against real server processes started here on 127.0.0.1:

* the lake on moto's S3 server: an ingest (with a quarantined row), a feature build, `quantlake query`, a
  sweep whose run goes to a real `mlflow server` (SQL backend, artifacts in the same S3 server) and
  `quantlake runs reproduce` of it — lineage naming the S3 URI;
* a sweep on an existing Dask cluster (`dask scheduler` + two `dask worker` processes) through
  `--dask-address`, whose metrics equal the same sweep run locally.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from clirun import run_main
from servers import bin_path, child_env, free_port, s3_endpoint, s3_lake_uri, stop, wait_for_port  # noqa: F401

from quantlake.lake import Lake

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SWEEP = """
name: scale-out
strategy: {kind: ema_cross, params: {fast: [5, 10], slow: [20, 30]}}
symbols: [SPY, AAPL]
start: 2012-01-01
end: 2014-12-31
costs: {fees: 0.0005}
metric: sharpe
chunk_size: 1
"""


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code, out, err = run_main(monkeypatch, capsys, *args)
    return code, out + err


def _ingest(tmp_path: Path) -> None:
    from quantlake.ingest import ingest_equity
    from quantlake.sources.csvdir import CsvSource
    from quantlake.sources.sample import SampleSource

    ingest_equity(Lake(), SampleSource(), symbols=["SPY", "AAPL"], progress=False)
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "XYZ.csv").write_text("date,open,high,low,close,volume\n2020-01-02,10,11,9,10.5,100\n"
                                    "2020-01-03,10,11,9,-1,100\n")  # a negative close: quarantined
    ingest_equity(Lake(), CsvSource(vendor), progress=False)


def _runs(experiment: str) -> list[object]:
    from mlflow.tracking import MlflowClient

    from tracking.run_context import tracking_uri

    c = MlflowClient(tracking_uri())
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None
    return list(c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]))


@pytest.fixture()
def mlflow_server(s3_lake_uri: str,  # noqa: F811
                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`mlflow server` with a SQLite backend and its artifacts in the test S3 server (same bucket as the
    lake, prefix mlflow/); MLFLOW_TRACKING_URI points every quantlake command at it."""
    bucket = s3_lake_uri[len("s3://"):].split("/", 1)[0]
    port = free_port()
    cmd = [bin_path("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow-server.db'}",
           "--artifacts-destination", f"s3://{bucket}/mlflow"]
    import os

    env = child_env(MLFLOW_S3_ENDPOINT_URL=os.environ["AWS_ENDPOINT_URL"], MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for_port(port, proc, "mlflow server", timeout=180)
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri
    finally:
        import os
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        stop(proc)


def test_s3_lake_pipeline_with_a_shared_mlflow_server(
    s3_lake_uri: str, mlflow_server: str,  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ingest(tmp_path)
    lake = Lake()
    assert lake.uri == s3_lake_uri
    assert set(lake.tables()) >= {"equity_bars", "rejected_rows"}
    code, out = _cli(monkeypatch, capsys, "query", "SELECT count(DISTINCT symbol) AS n FROM equity_bars",
                     "--format", "csv")
    assert code == 0 and out.split()[-1] == "3", out
    assert len(lake.read("rejected_rows")) == 1

    code, out = _cli(monkeypatch, capsys, "features", "build", "--no-flow", "-t", "technical")
    assert code == 0, out
    tech = lake.read("features_technical", where="symbol = ?", params=["SPY"])
    bars = lake.read("equity_bars", where="symbol = ?", params=["SPY"])
    assert len(tech) == len(bars) > 2000

    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(SWEEP)
    code, out = _cli(monkeypatch, capsys, "sweep", "--config", str(cfg), "--runner", "none")
    assert code == 0, out
    (run,) = _runs("equity_sweep")
    assert run.data.tags["lake.uri"] == s3_lake_uri  # type: ignore[attr-defined]
    assert run.data.tags["lake.version.equity_bars"] == str(lake.version("equity_bars"))  # type: ignore[attr-defined]
    # the run's artifacts went through the server into the S3 bucket
    bucket = s3_lake_uri[len("s3://"):].split("/", 1)[0]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="mlflow/").get("Contents", [])]
    assert any(k.endswith("results.parquet") for k in keys), keys[:20]
    assert any(k.endswith("config.json") for k in keys)

    # new bars after the run; reproduce re-runs on the recorded versions: identical metrics
    _cli(monkeypatch, capsys, "query", "SELECT 1")  # (a read between, as a user would)
    run_id = run.info.run_id  # type: ignore[attr-defined]
    code, out = _cli(monkeypatch, capsys, "runs", "reproduce", run_id)
    assert code == 0, out
    runs = _runs("equity_sweep")
    assert len(runs) == 2
    assert runs[1].data.metrics == runs[0].data.metrics  # type: ignore[attr-defined]


@pytest.fixture()
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """`dask scheduler` and two single-threaded `dask worker` processes on 127.0.0.1."""
    port = free_port()
    dask = bin_path("dask")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_for_port(port, procs[0], "dask scheduler")
        address = f"tcp://127.0.0.1:{port}"
        for i in range(2):
            procs.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}",
                 "--local-directory", str(tmp_path / f"w{i}")],
                env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=180)
        yield address
    finally:
        for p in reversed(procs):
            stop(p)


def test_sweep_on_an_existing_dask_cluster_equals_the_local_run(
    s3_lake_uri: str, dask_cluster: str,  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from quantlake.ingest import ingest_equity
    from quantlake.sources.sample import SampleSource

    ingest_equity(Lake(), SampleSource(), symbols=["SPY", "AAPL"], progress=False)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(SWEEP)
    code, out = _cli(monkeypatch, capsys, "sweep", "--config", str(cfg), "--runner", "none")
    assert code == 0, out
    monkeypatch.setenv("QUANTLAKE_DASK_ADDRESS", dask_cluster)
    code, out = _cli(monkeypatch, capsys, "sweep", "--config", str(cfg))
    assert code == 0, out
    assert f"runner=dask at {dask_cluster}" in out
    local, remote = _runs("equity_sweep")
    assert remote.data.metrics == local.data.metrics  # type: ignore[attr-defined]
    assert len(local.data.metrics) > 10  # type: ignore[attr-defined]
    # the chunks ran on the cluster's workers
    from distributed import Client

    with Client(dask_cluster, timeout=60) as client:
        logs = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
    assert sum(logs.values()) >= 2 and all(v >= 1 for v in logs.values()), logs
