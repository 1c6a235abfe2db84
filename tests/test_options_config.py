"""Backtest configs: YAML/JSON loading, every example config validates, errors name the bad field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtests.options.config import OptionsBacktestConfig, load_config, parse_config
from quantlake.errors import ConfigError, MalformedFileError, UserInputError

EXAMPLES = sorted((Path(__file__).parents[1] / "configs" / "options").glob("*.yaml"))
BASE = {"underlying": "^GSPC", "start": "2015-01-01", "end": "2016-01-01", "strategy": {"kind": "put_write"}}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, OptionsBacktestConfig) and cfg.name == path.stem
    assert cfg.strategy.kind in path.stem


def test_examples_cover_every_strategy() -> None:
    import typing

    from backtests.options.config import StrategyConfig

    union = typing.get_args(StrategyConfig)[0]
    every = {m.model_fields["kind"].default for m in typing.get_args(union)}
    assert {"covered_call", "butterfly", "calendar", "iv_rank_router"} <= every
    assert {load_config(p).strategy.kind for p in EXAMPLES} == every
    # every example states where its prices come from
    assert all("chain:" in p.read_text() for p in EXAMPLES)


def test_json_and_yaml_load_the_same(tmp_path: Path) -> None:
    j = tmp_path / "c.json"
    j.write_text(json.dumps(BASE))
    y = tmp_path / "c.yaml"
    y.write_text("underlying: ^gspc\nstart: 2015-01-01\nend: 2016-01-01\nstrategy: {kind: put_write}\n")
    assert load_config(j) == load_config(y)
    assert load_config(y).settlement == "cash" and load_config(y).underlying == "^GSPC"
    assert parse_config({**BASE, "underlying": "aapl"}).settlement == "physical"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": {"kind": "iron_condor", "exits": {"stop_los": 2}}}, "strategy.iron_condor.exits.stop_los"),
        ({"strategy": {"kind": "straddle_magic"}}, "strategy"),
        ({"underlying": "BAD SYMBOL!"}, "underlying"),
        ({"start": "2017-01-01"}, "start"),
        ({"strategy": {"kind": "iron_condor", "width": {"points": 10, "pct": 0.02}}}, "strategy.iron_condor.width"),
        ({"strategy": {"kind": "covered_call", "shares": 150}}, "strategy.covered_call.shares"),
        ({"strategy": {"kind": "put_credit_spread", "short_put": {"by": "delta", "value": 1.5}}},
         "strategy.put_credit_spread.short_put"),
        ({"strategy": {"kind": "ema_crossover", "fast": 50, "slow": 20}}, "strategy.ema_crossover"),
        ({"execution": {"fill": {"mode": "vwap"}}}, "execution.fill.mode"),
        ({"commissions": {"per_contract": -1}}, "commissions.per_contract"),
        ({"market": {"rate": {"series": None}}}, "market.rate"),
    ],
)
def test_errors_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({**BASE, **change})
    assert field in str(exc.value)
    assert isinstance(exc.value, UserInputError) and exc.value.exit_code == 2


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("underlying: [unclosed\n")
    with pytest.raises(MalformedFileError, match=r"bad\.yaml"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)
