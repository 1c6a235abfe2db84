"""A backtest on the sample lake as a tracked job: MLflow run with lineage, leg-day counts, frames and plots;
reproducible with ``runs reproduce``; the CLI command and the Prefect flow.

The chain source here is a Black-Scholes chain over the lake's closes (so these tests pin the plumbing, not
the chain model); ``test_options_lake.py`` runs on ``features.chains.ChainProvider``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from backtests.options.config import parse_config
from backtests.options.synthetic import BlackScholesChains

CONFIG = {
    "name": "pw_test", "underlying": "^GSPC", "start": "2015-01-02", "end": "2015-06-30",
    "strategy": {"kind": "put_write"}, "market": {"rate": {"series": "DGS2"}, "dividend_yield": 0.02},
}




@pytest.fixture()
def bs_chains(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every run in the test prices chains with Black-Scholes at 15 % vol over the lake's closes."""
    import backtests.options.runner as runner

    def source(lake, horizon_days=None, roots=None):  # type: ignore[no-untyped-def]
        bars = lake.read("equity_bars", columns=["date", "close"], where="symbol = ?", params=["^GSPC"])
        closes = pd.Series(bars["close"].to_numpy(), index=pd.to_datetime(bars["date"]))
        return BlackScholesChains(closes, vol=0.15, rate=0.01, dividend_yield=0.02, step=5.0, width=0.2,
                                  spread_pct=0.02, min_half_spread=0.05)

    monkeypatch.setattr(runner, "default_chain_source", source)
    yield


def test_tracked_run_logs_lineage_leg_days_frames_and_plots(store: Path, sample_lake, bs_chains, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from backtests.options.jobs import run_tracked
    from tracking.reproduce import reproduce
    from tracking.run_context import client

    cfg = parse_config({**CONFIG, "outputs": {"directory": str(tmp_path / "out")}})
    run_id, result = run_tracked(cfg, sample_lake)
    run = client().get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["quantlake.job"] == "options_backtest"
    assert {"lake.version.equity_bars", "lake.version.macro_series"} <= set(tags)
    assert tags["options.leg_days_modeled"] == str(result.leg_days["modeled"]) != "0"
    assert metrics["leg_days_observed"] == 0 and metrics["leg_days_modeled"] == result.leg_days["modeled"]
    assert metrics["positions"] == 5  # Jan, Feb, Mar, Apr, May expirations closed; June's still open
    assert run.data.params["strategy.kind"] == "put_write"
    names = {a.path for a in client().list_artifacts(run_id)}
    assert {"trades.parquet", "daily.parquet", "fills.parquet", "positions.parquet", "regimes.parquet",
            "metrics.json", "config.json", "lineage.json", "plots"} <= names
    plots = {a.path for a in client().list_artifacts(run_id, "plots")}
    assert plots == {"plots/equity.png", "plots/greeks.png"}
    # a quantstats tearsheet of the daily returns, in the folder and in the run
    assert "Strategy" in (tmp_path / "out" / "tearsheet.html").read_text()[:20000] or (
        tmp_path / "out" / "tearsheet.html").stat().st_size > 50_000
    assert {a.path for a in client().list_artifacts(run_id, "reports")} == {"reports/tearsheet.html"}
    daily = pd.read_parquet(tmp_path / "out" / "daily.parquet")
    assert {"equity", "delta", "gamma", "vega", "theta", "requirement", "excess"} <= set(daily.columns)
    held = daily[daily["date"] >= pd.Timestamp("2015-01-16").date()]  # first roll date: Jan 16, 2015
    assert (held["delta"] > 0).all() and (daily.loc[daily.index.difference(held.index), "delta"] == 0).all()
    trades = pd.read_parquet(tmp_path / "out" / "trades.parquet")
    assert trades[["entry_iv", "entry_delta", "exit_price", "entry_fees"]].notna().all().all()

    rep = reproduce(run_id, sample_lake.root)
    assert rep.identical, [m for m in rep.metrics if not m.identical]


def test_cli_runs_a_config(store: Path, sample_lake, bs_chains, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from backtests.options.cli import register

    monkeypatch.setenv("QUANTLAKE_HOME", str(store))
    import shutil

    shutil.copytree(sample_lake.root, store / "lake", dirs_exist_ok=True)
    path = tmp_path / "pw.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "end": "2015-03-31"}))
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, so the command is invoked by name
        pass

    out = CliRunner().invoke(app, ["options-backtest", "--config", str(path), "--no-flow", "--no-plots"])
    assert out.exit_code == 0, out.output
    assert "final_equity" in out.output and "MLflow run:" in out.output


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("underlying: ^GSPC\nstart: 2015-01-01\nend: 2016-01-01\nstrategy: {kind: iron_condor, "
                   "exits: {stop_los: 2}}\n")
    exe = Path(sys.executable).with_name("quantlake")
    env = {**os.environ, "QUANTLAKE_HOME": str(tmp_path / "home")}
    p = subprocess.run([str(exe), "options-backtest", "--config", str(bad)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "strategy.iron_condor.exits.stop_los" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_prefect_flow(store: Path, sample_lake, bs_chains, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    monkeypatch.setenv("QUANTLAKE_HOME", str(store))
    shutil.copytree(sample_lake.root, store / "lake", dirs_exist_ok=True)
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    from flows.options_backtest import options_backtest_flow

    # a fresh ephemeral server migrates its database first: slow on a loaded 2-core machine (quantlake's CLI
    # sets the same 120 s through quantlake.config.quiet_environment)
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120}):
        out = options_backtest_flow({**CONFIG, "end": "2015-02-27", "outputs": {"plots": False}})
    assert isinstance(out, dict) and len(out["run_id"]) == 32
    assert out["metrics"]["positions"] == 1
