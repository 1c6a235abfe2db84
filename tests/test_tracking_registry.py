"""Signal models as pyfunc, the registry, and the promotion gate with champion/previous aliases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from tracking.signal_models import ClassifierSignalModel, CrossRule, RuleSignalModel, ThresholdRule


@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


def features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "AAA", "BBB"],
            "date": pd.to_datetime(["2021-01-04", "2021-01-05", "2021-01-06", "2021-01-04"]).date,
            "ema_fast": [1.0, 2.0, 3.0, 5.0],
            "ema_slow": [1.5, 1.5, np.nan, 4.0],
            "rsi_14": [25.0, 50.0, 80.0, np.nan],
            "regime": ["calm", "stress", "calm", "other"],
        }
    )


def test_rule_models() -> None:
    f = features()
    cross = RuleSignalModel(CrossRule(fast="ema_fast", slow="ema_slow")).predict(None, f)
    assert list(cross.columns) == ["symbol", "date", "signal"]
    assert cross["signal"].tolist() == [0.0, 1.0, 0.0, 1.0]  # NaN input → flat
    short = RuleSignalModel(CrossRule(fast="ema_fast", slow="ema_slow", allow_short=True)).predict(None, f)
    assert short["signal"].tolist() == [-1.0, 1.0, 0.0, 1.0]
    rsi = RuleSignalModel(ThresholdRule(feature="rsi_14", long_below=30, short_above=70)).predict(None, f)
    assert rsi["signal"].tolist() == [1.0, 0.0, -1.0, 0.0]
    from quantlake.errors import UserInputError

    with pytest.raises(UserInputError, match="ema_slow"):
        RuleSignalModel(CrossRule(fast="ema_fast", slow="ema_slow")).predict(None, f.drop(columns="ema_slow"))


class Fixed:
    """A stand-in classifier with a constant P(up)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.column_stack([np.full(len(x), 1 - self.p), np.full(len(x), self.p)])


def test_regime_weighted_ensemble() -> None:
    model = ClassifierSignalModel(
        [Fixed(0.9), Fixed(0.3)],
        ["ema_fast"],
        long_threshold=0.6,
        short_threshold=0.4,
        regime_column="regime",
        regime_weights={"calm": [1.0, 0.0], "stress": [1.0, 3.0]},
        default_weights=[1.0, 1.0],
    )
    out = model.predict(None, features())
    # calm → 0.9 (long); stress → (0.9 + 3·0.3)/4 = 0.45 (flat); unknown regime → mean 0.6 (long)
    assert out["prob_up"].tolist() == pytest.approx([0.9, 0.45, 0.9, 0.6])
    assert out["signal"].tolist() == [1.0, 0.0, 1.0, 1.0]


class TrainCfg(BaseModel):
    label: str = "x"


def _register(lake, name: str, metrics: dict[str, float], model=None) -> str:  # type: ignore[no-untyped-def]
    from tracking.registry import log_signal_model
    from tracking.run_context import tracked_run

    model = model or RuleSignalModel(CrossRule(fast="ema_fast", slow="ema_slow"))
    with tracked_run("strategies", "test.register", TrainCfg(), lake) as run:
        run.log_metrics(metrics)
        logged = log_signal_model(run, model, features(), registered_name=name)
    assert logged.version is not None
    return logged.version


GOOD = {"oos_sharpe": 1.2, "oos_max_drawdown": -0.12, "oos_dsr": 0.99, "oos_trades": 40, "n_trials": 5}
BAD = {"oos_sharpe": 0.2, "oos_max_drawdown": -0.45, "oos_dsr": 0.60, "oos_trades": 40, "n_trials": 5}
BETTER = {**GOOD, "oos_sharpe": 1.5}
WEAKER = {**GOOD, "oos_sharpe": 0.9}


def test_pyfunc_roundtrip_through_registry(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    from tracking.registry import model_input

    model = RuleSignalModel(ThresholdRule(feature="rsi_14", long_below=30, short_above=70))
    version = _register(lake, "rsi_rule", GOOD, model)
    assert version == "1"
    loaded = mlflow.pyfunc.load_model("models:/rsi_rule/1")
    f = features()
    got = loaded.predict(model_input(f, model))
    want = model.predict(None, model_input(f, model))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)
    inputs = {c["name"] for c in json.loads(loaded.metadata.get_input_schema().to_json())}
    assert inputs == {"symbol", "date", "rsi_14"}
    from tracking.registry import get_version

    mv = get_version("rsi_rule", 1)
    assert mv.tags["quantlake.kind"] == "rule" and float(mv.tags["oos_sharpe"]) == 1.2


def test_promotion_gate_aliases_and_audit_log(store: Path, lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    from tracking import cli as tracking_cli
    from tracking.errors import ModelNotFoundError
    from tracking.promotion import history, promote
    from tracking.registry import by_alias, get_version, list_models

    v1, v2, v3, v4 = (_register(lake, "ema_cross", m) for m in (GOOD, BAD, BETTER, WEAKER))
    v5 = _register(lake, "ema_cross", {"oos_sharpe": 2.0})  # logged no drawdown/DSR/trades

    d1 = promote("ema_cross", v1)
    assert d1.promoted and d1.outcome == "promoted" and d1.previous_champion is None
    assert str(by_alias("ema_cross", "champion").version) == v1

    d2 = promote("ema_cross", v2)
    assert not d2.promoted and d2.outcome == "rejected"
    failed = {c.name for c in d2.checks if not c.passed}
    assert failed == {"oos_sharpe", "max_drawdown", "deflated_sharpe", "beats_champion"}
    assert str(by_alias("ema_cross", "champion").version) == v1
    assert get_version("ema_cross", v2).tags["promotion.decision"] == "rejected"
    assert "FAIL oos_sharpe: 0.200 vs minimum 0.500" in get_version("ema_cross", v2).tags["promotion.reasons"]

    d3 = promote("ema_cross", v3, note="better sharpe")
    assert d3.outcome == "promoted"
    assert str(by_alias("ema_cross", "champion").version) == v3
    assert str(by_alias("ema_cross", "previous").version) == v1
    assert get_version("ema_cross", v1).tags["promotion.demoted_by"] == v3

    d4 = promote("ema_cross", v4)  # passes every threshold but is worse than the champion
    assert d4.outcome == "rejected" and [c.name for c in d4.checks if not c.passed] == ["beats_champion"]
    d5 = promote("ema_cross", v5)
    assert {c.detail for c in d5.checks if not c.passed} >= {
        "metric oos_max_drawdown was not logged by the model's run"
    }

    # --force through the CLI: recorded as forced, previous champion kept as `previous`
    app = typer.Typer()
    tracking_cli.register(app)
    monkeypatch.setattr(tracking_cli, "console", Console(width=200))
    runner = CliRunner()
    res = runner.invoke(app, ["models", "promote", "ema_cross", "--version", v2])
    assert res.exit_code == 1 and "rejected" in res.output and "FAIL" in res.output
    res = runner.invoke(
        app, ["models", "promote", "ema_cross", "--version", v2, "--force", "--note", "manual override"]
    )
    assert res.exit_code == 0, res.output
    assert "forced" in res.output
    assert str(by_alias("ema_cross", "champion").version) == v2
    assert str(by_alias("ema_cross", "previous").version) == v3
    assert get_version("ema_cross", v2).tags["promotion.forced"] == "true"

    log = history("ema_cross")
    assert [h["decision"] for h in log] == [
        "forced",
        "rejected",
        "rejected",
        "rejected",
        "promoted",
        "rejected",
        "promoted",
    ]
    assert log[0]["previous_champion"] == v3 and "FAIL" in log[0]["reasons"]

    summary = {m.name: m for m in list_models()}["ema_cross"]
    assert (summary.champion, summary.previous, summary.versions) == (v2, v3, 5)
    res = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})  # every column shown, whatever the terminal
    assert res.exit_code == 0 and "ema_cross" in res.output and "forced" in res.output

    with pytest.raises(ModelNotFoundError, match="versions: 1, 2, 3, 4, 5"):
        promote("ema_cross", 42)
