"""``quantlake scan``: through the root CLI in-process (no Prefect), outputs where the README says, and
user mistakes as one line with exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_execution_scan import HAND, put_bars
from typer.testing import CliRunner

from quantlake.cli import app, main

HAND_ARGS = ["--min-price", "1", "--min-volume", "0", "--ema", "3:6"]


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["quantlake", *argv])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_scan_run_writes_every_output(lake, ql_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    dates = put_bars(lake, {"HAND": HAND, "FLAT": [10.0] * 10})
    monkeypatch.setenv("QUANTLAKE_MOTD_PATH", str(tmp_path / "motd"))
    for key in [k for k in __import__("os").environ if k.startswith("QUANTLAKE_SMTP_")]:
        monkeypatch.delenv(key)
    r = CliRunner().invoke(app, ["scan", "run", "--as-of", str(dates[7]), *HAND_ARGS], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "HAND" in r.output and "ema_3_6" in r.output and "bull" in r.output
    out = ql_home / "reports" / "scan" / f"signals_{dates[7]}.json"
    assert f"JSON: {out}" in r.output
    assert json.loads(out.read_text())["signals"][0]["symbol"] == "HAND"
    assert "quantlake scan 2024-01-11: 1 signal(s)" in (tmp_path / "motd").read_text()
    shown = CliRunner().invoke(app, ["scan", "show"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "daily_signals 2024-01-11" in shown.output and "HAND" in shown.output
    # `quantlake scan` alone = `scan run` with defaults: latest date (bar 9: HAND's bear cross is EMA 3/6,
    # not a default pair) and the default $10-$100 filter
    bare = CliRunner().invoke(app, ["scan"], env={"COLUMNS": "200"})
    assert bare.exit_code == 0, bare.output
    assert "scan 2024-01-15" in bare.output and "no EMA crosses" in bare.output


def test_scan_user_errors_are_one_line_exit_2(lake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    put_bars(lake, {"HAND": HAND})
    cases = [
        (["scan", "run", "--ema", "fast"], "--ema 'fast': use FAST:SLOW, e.g. 9:21"),
        (["scan", "run", "--ema", "21:9"], "ScanConfig: ema_pairs: fast must be shorter than slow"),
        (["scan", "run", "--min-price", "50", "--max-price", "5"], "min_price 50.0 is above max_price 5.0"),
        (["scan", "run", "--as-of", "2024-01-06"], "no bars on 2024-01-06"),
        (["scan", "run", "--config", str(tmp_path / "nope.yaml")], "does not exist"),
        (["scan", "run", "--symbols", "BAD!"], "ScanConfig.symbols"),
        (["scan", "show"], "daily_signals' does not exist yet"),
    ]
    for argv, expected in cases:
        code = run_main(argv, monkeypatch)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert expected in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err


def test_scan_config_file(lake, tmp_path: Path, ql_home: Path) -> None:  # type: ignore[no-untyped-def]
    dates = put_bars(lake, {"HAND": HAND})
    cfg = tmp_path / "scan.yaml"
    cfg.write_text("min_price: 1\nmin_volume: 0\nema_pairs: [[3, 6]]\nrsi_window: 3\n")
    r = CliRunner().invoke(app, ["scan", "run", "--config", str(cfg), "--as-of", str(dates[9]), "--no-motd",
                                 "--no-store"], env={"COLUMNS": "200"})  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads((ql_home / "reports" / "scan" / "latest.json").read_text())
    assert data["config"]["rsi_window"] == 3 and [s["direction"] for s in data["signals"]] == ["bear"]
    assert not lake.exists("daily_signals")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    r2 = CliRunner().invoke(app, ["scan", "run", "--config", str(bad)])
    assert "must be a mapping of ScanConfig fields" in str(r2.exception)
