"""`runs compare` leaderboard + HTML report, `runs list`, and the UI launch commands."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner


@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    from rich.console import Console

    from tracking import cli as tracking_cli
    from tracking.cli import register

    monkeypatch.setattr(tracking_cli, "console", Console(width=250))
    app = typer.Typer()
    register(app)
    return app


class SweepCfg(BaseModel):
    fast: int
    slow: int
    fee_bps: float = 1.0


# (fast, slow) -> sharpe, drawdown; one run fails and must not be ranked
SWEEP = {(5, 20): (0.8, -0.30), (10, 50): (1.6, -0.20), (20, 100): (1.1, -0.10), (3, 10): (-0.2, -0.50)}


@pytest.fixture()
def sweep(store: Path, lake) -> dict[tuple[int, int], str]:  # type: ignore[no-untyped-def]
    from tracking.run_context import tracked_run

    lake.merge(
        "equity_bars",
        pd.DataFrame({"symbol": ["AAA"], "date": [dt.date(2021, 1, 4)], "close": [1.0], "source": ["t"]}),
    )
    ids = {}
    for (fast, slow), (sharpe, dd) in SWEEP.items():
        with tracked_run(
            "sweep", "test.sweep", SweepCfg(fast=fast, slow=slow), lake, run_name=f"ema{fast}x{slow}"
        ) as r:
            lake.read("equity_bars")
            r.log_metrics({"sharpe": sharpe, "max_drawdown": dd, "trades": fast * 2})
        ids[(fast, slow)] = r.run_id
    with pytest.raises(RuntimeError), tracked_run("sweep", "test.sweep", SweepCfg(fast=1, slow=2), lake) as r:
        r.log_metrics({"sharpe": 99.0})
        raise RuntimeError("boom")
    return ids


def test_leaderboard_ranks_finished_runs(sweep: dict[tuple[int, int], str]) -> None:
    from quantlake.errors import UserInputError
    from tracking.compare import leaderboard
    from tracking.errors import ExperimentNotFoundError

    board = leaderboard("sweep")  # default metric: sharpe
    assert board.metric == "sharpe" and board.total_runs == 4  # the failed run (sharpe 99) is left out
    assert list(board.runs["run_id"]) == [sweep[(10, 50)], sweep[(20, 100)], sweep[(5, 20)], sweep[(3, 10)]]
    assert list(board.runs["rank"]) == [1, 2, 3, 4]
    assert board.param_columns == ["fast", "slow"]  # fee_bps is the same everywhere
    assert board.lake_columns == ["equity_bars"]
    assert set(board.metric_columns) == {"max_drawdown", "trades"}

    top2 = leaderboard("sweep", metric="max_drawdown", top=2, ascending=True)
    assert list(top2.runs["run_id"]) == [sweep[(3, 10)], sweep[(5, 20)]]
    assert top2.total_runs == 4

    with pytest.raises(UserInputError, match="available: max_drawdown, sharpe, trades"):
        leaderboard("sweep", metric="sortino")
    with pytest.raises(ExperimentNotFoundError, match="sweep"):
        leaderboard("nope")


def test_report_and_cli(sweep: dict[tuple[int, int], str], store: Path, cli: typer.Typer) -> None:
    from tracking.compare import leaderboard, write_report

    path = write_report(leaderboard("sweep"))
    assert path.parent == store / "reports" and path.suffix == ".html"
    html = path.read_text()
    assert "ema10x50" in html and sweep[(10, 50)] in html
    assert html.index(sweep[(10, 50)]) < html.index(sweep[(3, 10)])  # ranked order in the table
    assert "Plotly.newPlot" in html and "parcoords" in html  # bar chart + parameters plot, js embedded
    assert '<script src="http' not in html  # plotly.js embedded: works offline

    runner = CliRunner(env={"COLUMNS": "250"})
    res = runner.invoke(cli, ["runs", "compare", "--experiment", "sweep", "--top", "3"], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "ema10x50" in res.output and "ema3x10" not in res.output
    reported = Path(res.output.split("report: ")[1].split()[0])
    assert reported.exists() and reported.parent == store / "reports"

    res = runner.invoke(cli, ["runs", "list", "-e", "sweep"], terminal_width=250)
    assert res.exit_code == 0, res.output
    # 5 runs in the job column (the failed run, unnamed, is also named after its job)
    assert res.output.count("test.sweep") >= 5 and "FAILED" in res.output and "equity_bars@0" in res.output


@pytest.mark.parametrize("width", [80, 120])
def test_run_tables_fit_the_terminal(sweep: dict[tuple[int, int], str], cli: typer.Typer, width: int) -> None:
    """`runs compare` and `runs list` at 80 and 120 columns: no line wider than the terminal, ids abbreviated,
    every value whole (metric columns used to be zero-width), fractions as percentages, counts as integers."""
    runner = CliRunner(env={"COLUMNS": str(width)})
    res = runner.invoke(cli, ["runs", "compare", "--experiment", "sweep", "--no-report"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= width, res.output
    words = res.output.replace("│", " ").split()
    for (fast, slow), run_id in sweep.items():
        assert f"ema{fast}x{slow}" in words and run_id[:8] in words and run_id not in res.output
    assert "1.6" in words and "-20.0%" in words and "20" in words  # sharpe, max_drawdown, trades
    res = runner.invoke(cli, ["runs", "list", "-e", "sweep"])
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.output.splitlines()) <= width, res.output
    words = res.output.replace("│", " ").split()
    assert all(run_id[:8] in words for run_id in sweep.values()) and "FAILED" in words


def test_ui_commands_point_at_quantlake_home(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracking.ui import mlflow_command, prefect_command, server_env

    monkeypatch.delenv("PREFECT_UI_API_URL", raising=False)

    cmd = mlflow_command(port=5123)
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{store / 'mlflow' / 'mlflow.db'}"
    assert cmd[cmd.index("--default-artifact-root") + 1] == (store / "mlflow" / "artifacts").as_uri()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5123"
    pcmd = prefect_command(port=4300)
    assert pcmd[-5:] == ["start", "--host", "127.0.0.1", "--port", "4300"]
    assert server_env()["PREFECT_UI_API_URL"] == "http://127.0.0.1:4300/api"  # the UI calls this server


def test_ui_refuses_busy_port(store: Path) -> None:
    from quantlake.errors import UserInputError
    from tracking.ui import check_port

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(UserInputError, match="already in use"):
            check_port("127.0.0.1", s.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
@pytest.mark.slow
def test_mlflow_ui_serves_the_runs(sweep: dict[tuple[int, int], str]) -> None:
    import json

    from tracking.ui import mlflow_command, start, stop

    port = _free_port()
    proc = start(mlflow_command(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 150  # ~15 s idle, over a minute on a loaded 2-core machine
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError("mlflow server did not come up") from None
                time.sleep(0.5)
        run_id = sweep[(10, 50)]
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=10) as resp:
            run = json.load(resp)["run"]
        assert run["info"]["run_name"] == "ema10x50"
        url = f"{base}/get-artifact?path=config.json&run_uuid={run_id}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert json.load(resp) == {"fast": 10, "slow": 50, "fee_bps": 1.0}
    finally:
        stop(proc)
    with pytest.raises(ProcessLookupError):  # the whole process group is gone (no orphaned workers)
        os.killpg(proc.pid, 0)
