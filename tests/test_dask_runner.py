"""`--runner dask` ends cleanly: no CommClosedError traceback and none of Dask's ~40 INFO lines of cluster
start-up and teardown in the command's output (task failures still surface as failed tasks)."""

from __future__ import annotations

import logging

import pytest


@pytest.mark.slow
@pytest.mark.integration
def test_dask_task_runner_is_quiet(ql_home, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from prefect import flow, task

    from flows.equity_sweep import task_runner

    @task
    def square(x: int) -> int:
        return x * x

    @flow
    def fan_out() -> list[int]:
        return [f.result() for f in square.map([1, 2, 3, 4])]

    from prefect.logging.configuration import setup_logging

    # Prefect's console handler keeps the stderr of the test that first configured logging in this worker (a
    # capture stream closed since: "--- Logging error --- ... I/O operation on closed file"): this test's stderr
    setup_logging(incremental=False)
    caplog.set_level(logging.DEBUG)
    assert fan_out.with_options(task_runner=task_runner("dask", 2))() == [1, 4, 9, 16]
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert "CommClosedError" not in text and "Traceback" not in text
    chatter = [r for r in caplog.records if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert chatter == [], [r.getMessage() for r in chatter[:5]]


@pytest.mark.integration
def test_an_expected_error_in_a_chunk_logs_one_line(ql_home, capfd: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """A quantlake error inside a research chunk fails the run with its one-line message, no traceback
    (the research flow, like every flow, is wrapped by quantlake_errors_fail_cleanly; the chunk task now too)."""
    from prefect import flow

    from flows._common import quantlake_errors_fail_cleanly
    from flows.equity_sweep import prefect_runner
    from quantlake.errors import ConfigError

    def boom(item: int) -> int:
        raise ConfigError(f"chunk {item}: symbol XYZ has no bars in the window")

    @flow
    @quantlake_errors_fail_cleanly
    def research() -> list[int]:
        return list(prefect_runner(boom, [1]))  # the runner yields results as they come

    from prefect.logging.configuration import setup_logging

    # Prefect's console handler keeps the stderr of the test that first configured logging in this worker
    # (a capture stream closed since): configure it again on this test's stderr
    setup_logging(incremental=False)
    with pytest.raises(ConfigError, match="XYZ has no bars"):
        research()
    out = capfd.readouterr()
    text = out.out + out.err
    assert "XYZ has no bars" in text and "Traceback" not in text
