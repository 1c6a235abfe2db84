"""Every command that runs a Prefect flow has --no-flow, and arguments are validated before any flow (or
Prefect itself) starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from quantlake.cli import app

FLOW_COMMANDS = [
    ["ingest", "equity"], ["ingest", "options"], ["ingest", "macro"], ["ingest", "cot"],
    ["features", "build"], ["sweep"], ["walkforward"], ["montecarlo"], ["options-backtest"], ["models", "monitor"],
    ["trade", "reconcile"],
]  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


def test_every_flow_command_offers_no_flow() -> None:
    runner = CliRunner()
    for path in FLOW_COMMANDS:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, (path, res.output)
        assert "--no-flow" in res.output, path


def _ql(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    code = (
        f"import sys; sys.argv = ['quantlake', *{args!r}]\nfrom quantlake.cli import main\n"
        "try:\n    main()\nfinally:\n    print('PREFECT_IMPORTED', 'prefect' in sys.modules)\n"
    )
    env = {**os.environ, "QUANTLAKE_HOME": str(home), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                          cwd=REPO)


def test_as_of_is_checked_before_any_flow_starts(tmp_path: Path) -> None:
    data = tmp_path / "vendor"
    data.mkdir()
    (data / "SPY.csv").write_text("date,close\n2024-01-02,470.0\n2024-01-03,468.8\n")
    ok = _ql(["ingest", "equity", "--source", "csv", "--path", str(data), "--no-flow", "--no-progress"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    for pin, needle in [("equity_bars=7", "has no version 7"), ("no_such_table=0", "no_such_table")]:
        res = _ql(["sweep", "--config", "configs/equity/ema_cross_sample.yaml", "--as-of", pin], tmp_path)
        assert res.returncode == 2, res.stderr
        assert needle in res.stderr and res.stderr.count("\n") == 1
        assert "PREFECT_IMPORTED False" in res.stdout
