"""Parameter combinations of a sweep: the full grid, or a random sample, of strategy parameters and swept
costs/stops, filtered by the strategy's constraint (e.g. ``fast < slow``)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from backtests.equity.config import (
    COST_PARAMS,
    CostsConfig,
    RangeSpec,
    SearchConfig,
    StrategyConfig,
    UniformSpec,
)
from backtests.equity.strategies import STRATEGIES
from quantlake.errors import ConfigError

MAX_COMBINATIONS = 1_000_000


def candidate_values(spec: Any, bounds_only: bool = False) -> list[Any]:
    """The values a grid takes for ``spec`` (a distribution gives its bounds when ``bounds_only``)."""
    if isinstance(spec, RangeSpec):
        return spec.values()
    if isinstance(spec, UniformSpec):
        if not bounds_only:
            raise ConfigError("a {uniform: [lo, hi]} parameter needs search.method: random")
        lo, hi = spec.uniform
        return [int(lo), int(hi)] if spec.integer else [lo, hi]
    if isinstance(spec, list):
        if not spec:
            raise ConfigError("an empty list of parameter values")
        return list(dict.fromkeys(spec))
    return [spec]


def _specs(strategy: StrategyConfig, costs: CostsConfig) -> dict[str, Any]:
    sdef = STRATEGIES[strategy.kind]
    specs: dict[str, Any] = {**sdef.defaults(), **strategy.params}
    for name in COST_PARAMS:
        spec = getattr(costs, name)
        if isinstance(spec, list | RangeSpec | UniformSpec):  # swept costs/stops become parameters
            specs[name] = spec
    return specs


def _coerce(strategy: StrategyConfig, combos: pd.DataFrame) -> pd.DataFrame:
    sdef = STRATEGIES[strategy.kind]
    for name in combos.columns:
        if name in sdef.param_names:
            uniq = {v: sdef.check_value(name, v) for v in pd.unique(combos[name])}
            combos[name] = combos[name].map(uniq)
    return combos


def grid(strategy: StrategyConfig, costs: CostsConfig) -> pd.DataFrame:
    specs = _specs(strategy, costs)
    values = {k: candidate_values(v) for k, v in specs.items()}
    n = math.prod(len(v) for v in values.values())
    if n > MAX_COMBINATIONS:
        raise ConfigError(
            f"the grid has {n:,} combinations (max {MAX_COMBINATIONS:,}); use search.method: random"
        )
    combos = pd.DataFrame(list(itertools.product(*values.values())), columns=list(values))
    return combos


def _draw(spec: Any, n: int, rng: np.random.Generator) -> list[Any]:
    if isinstance(spec, UniformSpec):
        lo, hi = spec.uniform
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) if spec.log else rng.uniform(lo, hi, n)
        return [int(v) for v in np.rint(x)] if spec.integer else [float(v) for v in x]
    vals = candidate_values(spec)
    return [vals[i] for i in rng.integers(0, len(vals), n)]


def random_sample(strategy: StrategyConfig, costs: CostsConfig, search: SearchConfig) -> pd.DataFrame:
    """``search.n`` distinct combinations drawn independently per parameter (constraint applied; fewer if
    the space is smaller)."""
    specs = _specs(strategy, costs)
    rng = np.random.default_rng(search.seed)
    sdef = STRATEGIES[strategy.kind]
    out = pd.DataFrame(columns=list(specs))
    for _ in range(20):
        draw = pd.DataFrame({k: _draw(v, 4 * search.n, rng) for k, v in specs.items()})
        draw = _coerce(strategy, draw)
        draw = draw[sdef.valid(draw)]
        out = pd.concat([out, draw], ignore_index=True).drop_duplicates(ignore_index=True)
        if len(out) >= search.n:
            break
    return out.iloc[: search.n].reset_index(drop=True)


def combinations(strategy: StrategyConfig, costs: CostsConfig, search: SearchConfig) -> pd.DataFrame:
    """Validated combinations, one row each (index = combination id 0..C-1)."""
    sdef = STRATEGIES[strategy.kind]
    if search.method == "grid":
        combos = _coerce(strategy, grid(strategy, costs))
        keep = sdef.valid(combos)
        combos = combos[keep].reset_index(drop=True)
    else:
        combos = random_sample(strategy, costs, search)
    if combos.empty:
        raise ConfigError(
            f"strategy.params: no combination satisfies {sdef.name}'s constraint ({sdef.constraint_text})"
        )
    combos.index.name = "combo"
    return combos.infer_objects()


def swept(combos: pd.DataFrame) -> list[str]:
    """Parameters that take more than one value."""
    return [c for c in combos.columns if combos[c].nunique(dropna=False) > 1]
