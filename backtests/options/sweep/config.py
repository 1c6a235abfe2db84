"""Validated configuration of an option sweep, and its expansion into trials (one option backtest config each).

A sweep config is an option backtest config (:class:`backtests.options.config.OptionsBacktestConfig`) in which
any setting under ``strategy`` (its parameters, ``dte``, ``width``, ``exits``, ``sizing`` ...), ``execution``,
``commissions``, ``margin``, ``interest`` or ``risk_limits`` may take several values, written as in equity
sweeps:

* a list ``value: [0.10, 0.16, 0.20]`` (for a setting that is itself a list, such as ``exits.exit_regimes``,
  a plain list is one value: sweep it with ``{values: [[], [iv_expansion]]}``);
* an inclusive range ``profit_target: {range: [0.25, 0.75], step: 0.25}``;
* for ``search: {method: random, n: 100, seed: 0}`` only, a distribution ``{uniform: [lo, hi]}`` (``log: true``,
  ``integer: true``).

plus the research sections: ``search``, ``metric`` (what selects the combination), ``chunks`` (how many task
chunks the trials are split into), ``overfitting`` (CSCV blocks), optional ``walkforward`` and ``montecarlo``
(as in equity research, :mod:`backtests.research.specs`), and ``report`` (``heatmap`` parameters,
``child_runs``: the top N trials also logged as MLflow child runs).

A swept setting is named by its path without the leading ``strategy.`` (``short_put.value``,
``exits.profit_target``, ``execution.fill.mode``).  Every combination is validated as a whole backtest config;
combinations that are not valid (``dte.min`` above ``dte.max`` ...) are dropped and counted in the notes; when
none is valid the first error is a :class:`~quantlake.errors.ConfigError` naming the field.  The underlying,
dates, chains and market are fixed: every trial reads the same days (and shares their chains).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backtests.config_files import read_file
from backtests.options.config import OptionsBacktestConfig, describe_errors, parse_config
from backtests.research import search
from backtests.research.specs import (
    MonteCarloSpec,
    OverfittingSpec,
    RangeSpec,
    SearchConfig,
    UniformSpec,
    WalkForwardSpec,
)
from quantlake.errors import ConfigError

SWEEPABLE = ("strategy", "execution", "commissions", "margin", "interest", "risk_limits")
# selection metrics: the backtest's own figures (sharpe on daily returns in excess of the cash rate);
# in walk-forward windows each is measured on the window's excess daily returns under the name on the right
METRICS: dict[str, str] = {
    "sharpe": "sharpe",
    "sortino": "sortino",
    "calmar": "calmar",
    "cagr": "annualized_return",
    "total_return": "total_return",
    "max_drawdown": "max_drawdown",
    "ann_vol": "volatility",
}
LOWER_IS_BETTER = frozenset({"ann_vol"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepReport(_Model):
    heatmap: tuple[str, str] | None = Field(
        default=None, description="two swept settings (default: the first two swept)"
    )
    child_runs: int = Field(default=0, ge=0, le=50, description="top N trials also logged as MLflow child runs")
    plots: bool = True
    output_dir: Path | None = Field(
        default=None, description="default: $QUANTLAKE_HOME/reports/options_sweep/<name>-<time>"
    )


class OptionsSweepConfig(_Model):
    """An option backtest config with swept settings plus the research sections (see the module doc)."""

    name: str = Field(default="options_sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,60}$")
    underlying: str
    start: dt.date
    end: dt.date
    initial_cash: float = Field(default=1_000_000.0, gt=0)
    strategy: dict[str, Any]
    chain: dict[str, Any] = Field(default_factory=dict)
    market: dict[str, Any] = Field(default_factory=dict)
    execution: dict[str, Any] = Field(default_factory=dict)
    commissions: dict[str, Any] = Field(default_factory=dict)
    margin: dict[str, Any] = Field(default_factory=dict)
    interest: dict[str, Any] = Field(default_factory=dict)
    risk_limits: dict[str, Any] | None = None
    search: SearchConfig = Field(default_factory=SearchConfig)
    metric: Literal["sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown", "ann_vol"] = "sharpe"
    chunks: int = Field(default=4, ge=1, le=1000, description="task chunks the trials are split into")
    overfitting: OverfittingSpec = Field(default_factory=OverfittingSpec)
    walkforward: WalkForwardSpec | None = None
    montecarlo: MonteCarloSpec | None = None
    report: SweepReport = Field(default_factory=SweepReport)

    @field_validator("strategy")
    @classmethod
    def _kind(cls, v: dict[str, Any]) -> dict[str, Any]:
        kind = v.get("kind")
        if isinstance(kind, list | dict):
            raise ValueError("kind: one strategy per sweep (run a sweep for each kind)")
        if not isinstance(kind, str):
            raise ValueError("needs a kind, e.g. kind: put_credit_spread")
        return v

    @model_validator(mode="after")
    def _trials(self) -> OptionsSweepConfig:
        try:
            trials = expand(self)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.report.heatmap is not None:
            for p in self.report.heatmap:
                if p not in trials.params.columns:
                    raise ValueError(f"report.heatmap: {p!r} is not a swept setting (swept: "
                                     f"{', '.join(trials.params.columns) or 'none'})")
        return self

    def backtest_data(self) -> dict[str, Any]:
        """The backtest part, as an :class:`OptionsBacktestConfig` mapping with the sweep specs still in it."""
        data = self.model_dump(mode="json", include={"name", "underlying", "start", "end", "initial_cash",
                                                     "strategy", "chain", "market", *SWEEPABLE})
        return {k: v for k, v in data.items() if (v != {} and v is not None) or k == "strategy"}


# ------------------------------------------------------------------------------------------ spec grammar
@dataclass(frozen=True)
class Values:
    """``{values: [...]}``: explicit values, for settings that are lists themselves."""

    values: tuple[Any, ...]


def _unwrap(ann: Any) -> Any:
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann
            ann = args[0]
        else:
            return ann


def _is_sequence(ann: Any) -> bool:
    return get_origin(_unwrap(ann)) in (list, tuple, set, frozenset)


def _submodel(ann: Any, node: Mapping[str, Any]) -> type[BaseModel] | None:
    """The model a nested mapping validates as (a strategy union resolved by its ``kind``)."""
    inner = _unwrap(ann)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    if get_origin(inner) in (Union, types.UnionType):
        for member in get_args(inner):
            m = _unwrap(member)
            if isinstance(m, type) and issubclass(m, BaseModel) and "kind" in m.model_fields \
                    and m.model_fields["kind"].default == node.get("kind"):
                return m
    return None


def _as_spec(value: Mapping[str, Any], where: str) -> Any:
    keys = set(value)
    try:
        if "range" in keys and keys <= {"range", "step"}:
            return RangeSpec.model_validate(value)
        if "uniform" in keys and keys <= {"uniform", "log", "integer"}:
            return UniformSpec.model_validate(value)
    except ValidationError as exc:
        msg = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"{where}: {msg}") from None
    if keys == {"values"}:
        vals = value["values"]
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"{where}: values must be a non-empty list")
        return Values(tuple(tuple(v) if isinstance(v, list) else v for v in vals))
    return None


def find_specs(data: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """Path → spec (list, :class:`RangeSpec`, :class:`UniformSpec` or :class:`Values`) of every swept setting."""
    out: dict[tuple[str, ...], Any] = {}

    def walk(node: Mapping[str, Any], path: tuple[str, ...], model: type[BaseModel] | None) -> None:
        for key, value in node.items():
            p = (*path, str(key))
            where = ".".join(p)
            ann = model.model_fields[key].annotation if model is not None and key in model.model_fields else None
            if isinstance(value, Mapping):
                spec = _as_spec(value, where)
                if spec is not None:
                    out[p] = spec
                else:
                    walk(value, p, _submodel(ann, value) if ann is not None else None)
            elif isinstance(value, list) and not (ann is not None and _is_sequence(ann)):
                out[p] = value
        return None

    for section in SWEEPABLE:
        node = data.get(section)
        if isinstance(node, Mapping):
            ann = OptionsBacktestConfig.model_fields[section].annotation
            walk(node, (section,), _submodel(ann, node))
    if ("strategy", "kind") in out:
        raise ConfigError("strategy.kind: one strategy per sweep (run a sweep for each kind)")
    return out


def param_name(path: tuple[str, ...]) -> str:
    return ".".join(path[1:] if path[0] == "strategy" else path)


def _grid_spec(spec: Any) -> Any:
    return list(spec.values) if isinstance(spec, Values) else spec


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = list(value) if isinstance(value, tuple) else value


def config_value(value: Any) -> Any:
    """A cell of the trials frame as a config value (numpy scalars as Python ones; a missing value — a swept
    ``null`` that pandas stored as NaN — as None)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


# ------------------------------------------------------------------------------------------ expansion
@dataclass
class Trials:
    """The trials of a sweep: their swept values (index = trial id) and validated backtest configs."""

    params: pd.DataFrame
    configs: list[OptionsBacktestConfig]
    notes: list[str] = field(default_factory=list)

    @property
    def swept(self) -> list[str]:
        return [c for c in self.params.columns if self.params[c].nunique(dropna=False) > 1]

    def __len__(self) -> int:
        return len(self.configs)


def expand(cfg: OptionsSweepConfig) -> Trials:
    """Every trial of ``cfg`` (grid or random sample), each validated as a backtest config."""
    base = cfg.backtest_data()
    specs = find_specs(base)
    names = {path: param_name(path) for path in specs}
    by_name = {names[p]: _grid_spec(s) for p, s in specs.items()}
    paths = {names[p]: p for p in specs}
    errors: list[str] = []

    def trial_config(row: Mapping[str, Any]) -> OptionsBacktestConfig | None:
        data = copy.deepcopy(base)
        for name, value in row.items():
            _set(data, paths[name], config_value(value))
        data["outputs"] = {"plots": False}
        try:
            return parse_config(data, source="trial")
        except ConfigError as exc:
            where = ", ".join(f"{k}={config_value(v)}" for k, v in row.items())
            errors.append(f"{where}: {exc}" if where else str(exc))
            return None

    if cfg.search.method == "random":
        def prepare(batch: pd.DataFrame) -> pd.DataFrame:
            ok = [trial_config(row) is not None for row in batch.to_dict("records")]
            return batch[ok]

        params = search.random_sample(by_name, cfg.search, prepare) if by_name else pd.DataFrame(index=[0])
    else:
        params = search.grid(by_name) if by_name else pd.DataFrame(index=[0])
    configs: list[OptionsBacktestConfig] = []
    keep: list[int] = []
    for i, row in enumerate(params.to_dict("records")):
        made = trial_config(row)
        if made is not None:
            configs.append(made.model_copy(update={"name": f"{cfg.name}-t{len(configs):04d}"}))
            keep.append(i)
    if not configs:
        raise ConfigError(f"no valid combination; first error: {errors[0]}" if errors else "no combination")
    out = params.iloc[keep].reset_index(drop=True)
    out.index.name = "trial"
    notes = []
    if len(keep) < len(params) and cfg.search.method == "grid":
        notes.append(f"{len(params) - len(keep)} of {len(params)} combinations are not valid configs and were "
                     f"dropped; first: {errors[0]}")
    return Trials(out.infer_objects(), configs, notes)


# ------------------------------------------------------------------------------------------ loading
def parse_sweep_config(data: Any, source: str = "config") -> OptionsSweepConfig:
    if isinstance(data, OptionsSweepConfig):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    try:
        return OptionsSweepConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"invalid options sweep {source}: {describe_errors(exc)}") from None


def load_sweep_config(path: str | Path) -> OptionsSweepConfig:
    """Read a ``.yaml``/``.yml``/``.json`` sweep config and validate it (errors name the file and field)."""
    return parse_sweep_config(read_file(path), source=str(path))
