"""Trading a registered champion (``models:/NAME@champion``) through the library, the Prefect flow and the CLI.

Signals are checked against an independent computation of the rule (EMA12 / EMA26 - 1 > 0 with pandas'
``ewm``), target sizes against hand arithmetic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from quantlake.config import quiet_environment
from quantlake.lake import Lake
from quantlake.tables import EQUITY_BARS

quiet_environment()  # before Prefect reads its settings: a generous ephemeral-server start-up timeout
DAYS = pd.bdate_range("2023-06-01", periods=90).date
AS_OF = DAYS[-2]
SHAPES = {  # close paths: up, down, a wave that turns, flat
    "UPP": lambda i: 20 + 0.2 * i,
    "DWN": lambda i: 80 - 0.3 * i,
    "WAV": lambda i: 50 + 5 * math.sin(i / 9.0),
    "FLT": lambda i: 30.0,
}


@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


@pytest.fixture()
def flake(store: Path) -> Lake:
    rows = [{"symbol": s, "date": d, "open": f(i), "close": f(i), "adj_close": f(i), "volume": 1e6, "source": "t"}
            for s, f in SHAPES.items() for i, d in enumerate(DAYS)]  # fmt: skip
    lake = Lake(store / "lake")
    lake.merge("equity_bars", pd.DataFrame(rows), EQUITY_BARS)
    return lake


class Cfg(BaseModel):
    label: str = "rule"


def register_champion(lake: Lake, name: str = "rule_x") -> str:
    from tracking.promotion import promote
    from tracking.registry import log_signal_model
    from tracking.run_context import tracked_run
    from tracking.signal_models import RuleSignalModel, ThresholdRule

    model = RuleSignalModel(ThresholdRule(feature="ema_ratio", long_above=0.0))
    example = pd.DataFrame({"symbol": ["UPP"], "date": [pd.Timestamp(DAYS[0])], "ema_ratio": [0.01]})
    with tracked_run("strategies", "test.paper", Cfg(), lake) as run:
        logged = log_signal_model(run, model, example, registered_name=name)
    assert logged.version is not None
    promote(name, logged.version, force=True)
    return logged.version


def expected_longs() -> set[str]:
    """Independently: EMA12 / EMA26 - 1 > 0 at AS_OF from the closes (pandas ewm, adjust=False)."""
    out = set()
    for s, f in SHAPES.items():
        px = pd.Series([f(i) for i, d in enumerate(DAYS) if d <= AS_OF], dtype=float)
        ratio = px.ewm(span=12, adjust=False).mean().iloc[-1] / px.ewm(span=26, adjust=False).mean().iloc[-1] - 1
        if ratio > 1e-12:
            out.add(s)
    return out


@pytest.mark.integration
def test_champion_from_the_registry_trades(flake: Lake) -> None:
    from execution.errors import NoChampionError
    from execution.settings import TradeConfig
    from execution.trader import run_trade

    version = register_champion(flake)
    result = run_trade(TradeConfig(model="rule_x", as_of=AS_OF), flake)
    assert result.model == f"models:/rule_x@champion (v{version})"
    longs = expected_longs()
    assert longs == {"UPP", "WAV"} or longs == {"UPP"}  # sanity of the fixture itself
    assert set(result.orders["symbol"]) == longs and set(result.orders["side"]) == {"buy"}
    closes = {s: SHAPES[s](list(DAYS).index(AS_OF)) for s in longs}
    assert dict(zip(result.orders["symbol"], result.orders["qty"], strict=True)) == {
        s: float(np.floor(10_000 / closes[s])) for s in longs
    }
    with pytest.raises(NoChampionError, match="quantlake models promote nope"):
        run_trade(TradeConfig(model="nope", as_of=AS_OF), flake)


@pytest.mark.integration
def test_flow_completes_then_fails_visibly_on_the_kill_switch(flake: Lake, store: Path) -> None:
    from execution import audit
    from execution.errors import KillSwitchError
    from flows.paper_trade import paper_trade_flow

    register_champion(flake)
    out = paper_trade_flow({"model": "rule_x", "as_of": AS_OF.isoformat()})
    assert isinstance(out, dict) and out["orders"] == {"accepted": len(expected_longs())}
    flow_ids = set(audit.orders(flake, "paper", "default")["flow_run_id"])
    assert len(flow_ids) == 1 and len(next(iter(flow_ids))) == 36  # the Prefect flow-run id (a UUID)

    audit.record_account(flake, "paper", "default", "rule_x", DAYS[10], 150_000, 150_000, 150_000, {}, [], False)
    with pytest.raises(KillSwitchError, match="reached the kill level 20%"):
        paper_trade_flow({"model": "rule_x", "as_of": DAYS[-1].isoformat()})
    alerts = [json.loads(line) for line in (store / "reports" / "alerts.jsonl").read_text().splitlines()]
    assert any(a["kind"] == "drawdown" and a["severity"] == "critical" for a in alerts)

    from execution.errors import StaleDataError

    before = len(audit.orders(flake, "paper", "default"))
    with pytest.raises(StaleDataError, match="stale"):  # bars from 2023: a failed fetch, not a trading day
        paper_trade_flow({"model": "rule_x"}, max_age_days=3)
    assert len(audit.orders(flake, "paper", "default")) == before


@pytest.mark.integration
def test_cli_trade_dry_run_status_export_and_risk_report(
    flake: Lake, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from quantlake import cli
    from quantlake.cli import app

    register_champion(flake)
    runner = CliRunner()
    dry = runner.invoke(app, ["trade", "--model", "rule_x", "--as-of", AS_OF.isoformat(), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "DRY RUN" in dry.output and "planned" in dry.output
    assert not flake.exists("exec_orders")
    for day in DAYS[-5:]:
        done = runner.invoke(app, ["trade", "--model", "rule_x", "--as-of", day.isoformat()])
        assert done.exit_code == 0, done.output
    for width in (80, 120):  # fits the terminal: every line, no value cut
        status = runner.invoke(app, ["trade", "status"], env={"COLUMNS": str(width)})
        assert status.exit_code == 0 and "account snapshots" in status.output
        assert max(len(line) for line in status.output.splitlines()) <= width, status.output
        assert "…" not in status.output and "100,000" in status.output
    out = tmp_path / "risk"
    exported = runner.invoke(app, ["trade", "export", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    equity = pd.read_parquet(out / "equity.parquet")
    assert len(equity) == 5 and equity["equity"].iloc[0] == 100_000.0
    positions = json.loads((out / "positions.json").read_text())
    assert {p["symbol"] for p in positions} <= {"UPP", "WAV"} and all(p["qty"] > 0 for p in positions)
    report = runner.invoke(app, ["risk", "report", "--returns", str(out / "equity.parquet"), "--positions",
                                 str(out / "positions.json"), "--no-lake", "--format", "json"])  # fmt: skip
    assert report.exit_code == 0, report.output
    monkeypatch.setattr(sys, "argv", ["quantlake", "trade", "--model", "nope", "--as-of", AS_OF.isoformat()])
    with pytest.raises(SystemExit) as exit_info:  # through quantlake.cli.main: one line, exit code 2
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "no champion" in err and "Traceback" not in err
