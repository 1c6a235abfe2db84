"""Research configs: validation messages name the field, parameter grids and random draws, and the CLI's
user errors (one line, exit 2, before anything heavy starts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from backtests.equity.config import (
    SearchConfig,
    SweepConfig,
    WalkForwardConfig,
    load_config,
    validate,
)
from backtests.equity.params import combinations, swept
from quantlake.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "equity"


def cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"strategy": {"kind": "sma_cross", "params": {"fast": [5, 10], "slow": [20, 50]}},
                            "symbols": ["SPY"]}  # fmt: skip
    base.update(over)
    return base


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    c = load_config(path, WalkForwardConfig if "walkforward" in path.name else SweepConfig)
    assert len(combinations(c.strategy, c.costs, c.search)) >= 1


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (cfg(strategy={"kind": "nope"}), "strategy.kind: unknown strategy 'nope'; choose one of:"),
        (cfg(strategy={"kind": "sma_cross", "params": {"fats": 3}}), "params.fats: unknown parameter of sma_cross"),
        (cfg(strategy={"kind": "sma_cross", "params": {"fast": {"range": [9, 3]}}}), "range [9.0, 3.0] is backwards"),
        (cfg(strategy={"kind": "sma_cross", "params": {"fast": 0}}), "params.fast: 0: Input should be greater than or equal to 1"),
        (cfg(costs={"fees": 1.5}), "costs.fees: 1.5 is not a fraction in [0, 1)"),
        (cfg(costs={"sl_stop": 0.05, "tsl_stop": 0.1}), "sl_stop and tsl_stop: choose one"),
        (cfg(metric="alpha"), "metric: unknown metric 'alpha'"),
        (cfg(symbols=["SPY", "bad sym"]), "symbols: invalid symbol 'bad sym'"),
        (cfg(start="2020-01-01", end="2019-01-01"), "start 2020-01-01 is after end 2019-01-01"),
        (cfg(strategy={"kind": "pairs"}), "pairs: the pairs strategy needs a list of pairs"),
        (cfg(pairs=["GDX/GLD"]), "pairs: only the pairs strategy takes pairs"),
        ({"strategy": {"kind": "pairs"}, "pairs": ["GLD/GLD"]}, "trades a symbol against itself"),
        (cfg(report={"heatmap": ["fast", "window"]}), "report.heatmap: 'window' is not a parameter of sma_cross"),
        (cfg(strategy={"kind": "ma_atr_trend"}, costs={"sl_stop": 0.1}), "this strategy sets its own ATR stop"),
        (cfg(overfitting={"cscv_splits": 7}), "overfitting.cscv_splits: must be even"),
        (cfg(walkforward={"train_bars": 5}), "walkforward.train_bars"),
        (cfg(chunk_size=0), "chunk_size"),
        (cfg(extra=1), "extra: Extra inputs are not permitted"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(SweepConfig, data)
    assert needle in str(err.value)


def test_grid_applies_the_constraint() -> None:
    """The benchmark grid: fast 5..15 x slow 15..30 with fast < slow = 175 pairs."""
    c = validate(SweepConfig, cfg(strategy={"kind": "ema_cross", "params": {"fast": {"range": [5, 15]},
                                                                          "slow": {"range": [15, 30]}}}))  # fmt: skip
    combos = combinations(c.strategy, c.costs, c.search)
    assert len(combos) == 175 and (combos["fast"] < combos["slow"]).all()
    assert swept(combos) == ["fast", "slow"]
    assert combos["rsi_filter"].unique().tolist() == ["not_overbought"]  # defaults fill the rest


def test_swept_costs_become_parameters_and_grids_need_no_distributions() -> None:
    c = validate(SweepConfig, cfg(costs={"sl_stop": [None, 0.05], "tp_stop": {"range": [0.1, 0.3], "step": 0.1}}))
    combos = combinations(c.strategy, c.costs, c.search)
    assert len(combos) == 4 * 2 * 3
    assert sorted(combos["tp_stop"].unique().tolist()) == pytest.approx([0.1, 0.2, 0.3])
    bad = validate(SweepConfig, cfg(strategy={"kind": "sma_cross", "params": {"fast": {"uniform": [2, 9]}}}))
    with pytest.raises(ConfigError, match=r"needs search\.method: random"):
        combinations(bad.strategy, bad.costs, bad.search)


def test_random_search_is_seeded_distinct_and_in_bounds() -> None:
    data = cfg(strategy={"kind": "bollinger_reversion",
                         "params": {"window": {"uniform": [10, 60], "integer": True}, "k": {"uniform": [1.0, 3.0]}}},
               search={"method": "random", "n": 30, "seed": 5})  # fmt: skip
    c = validate(SweepConfig, data)
    a = combinations(c.strategy, c.costs, c.search)
    b = combinations(c.strategy, c.costs, c.search)
    assert len(a) == 30 and not a.duplicated().any()
    assert a.equals(b)
    assert a["window"].between(10, 60).all() and a["k"].between(1.0, 3.0).all()
    assert (a["window"] == a["window"].round()).all()
    other = combinations(c.strategy, c.costs, SearchConfig(method="random", n=30, seed=6))
    assert not other.equals(a)


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    js = tmp_path / "c.json"
    js.write_text('{"strategy": {"kind": "tsmom"}, "symbols": ["SPY"]}')
    assert load_config(js).strategy.kind == "tsmom"


# ------------------------------------------------------------------------------------------------ CLI
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from quantlake import cli

    monkeypatch.setattr(sys, "argv", ["quantlake", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "content", "extra", "needle"),
    [
        ("sweep", None, [], "does not exist"),
        ("sweep", "strategy: {kind: sma_cross, params: {fast: [5, 10], slow: 3}}\n", [],
         "no combination satisfies sma_cross's constraint (fast < slow)"),
        ("walkforward", "strategy: {kind: sma_cross}\nwalkforward: {mode: sideways}\n", [],
         "walkforward.mode: Input should be 'rolling' or 'anchored'"),
        ("montecarlo", "strategy: {kind: sma_cross}\nmontecarlo: {n_sims: 1}\n", [], "montecarlo.n_sims"),
        ("sweep", "strategy: {kind: sma_cross}\n", ["--runner", "spark"], "--runner: unknown task runner 'spark'"),
        ("sweep", "strategy: {kind: sma_cross}\n", ["--as-of", "equity_bars"], "TABLE=VERSION"),
    ],
)  # fmt: skip
def test_cli_user_errors_exit_2(
    tmp_path: Path,
    ql_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    content: str | None,
    extra: list[str],
    needle: str,
) -> None:
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    code, err = run_cli(monkeypatch, capsys, command, "--config", str(path), "--runner", "none", *extra)
    assert code == 2, err
    assert needle in " ".join(err.split())
    assert "Traceback" not in err


def test_cli_commands_are_registered() -> None:
    from typer.testing import CliRunner

    from quantlake.cli import app

    for command in ("sweep", "walkforward", "montecarlo"):
        res = CliRunner().invoke(app, [command, "--help"])
        assert res.exit_code == 0 and "--config" in res.output and "--runner" in res.output
