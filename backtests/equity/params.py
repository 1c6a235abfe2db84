"""Parameter combinations of a sweep: the full grid, or a random sample, of strategy parameters and swept
costs/stops, filtered by the strategy's constraint (e.g. ``fast < slow``).  The generic grid and sampling are
:mod:`backtests.research.search`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from backtests.equity.config import COST_PARAMS, CostsConfig, SearchConfig, StrategyConfig
from backtests.equity.strategies import STRATEGIES
from backtests.research.search import grid as search_grid
from backtests.research.search import is_swept
from backtests.research.search import random_sample as search_sample
from quantlake.errors import ConfigError


def _specs(strategy: StrategyConfig, costs: CostsConfig) -> dict[str, Any]:
    sdef = STRATEGIES[strategy.kind]
    specs: dict[str, Any] = {**sdef.defaults(), **strategy.params}
    for name in COST_PARAMS:
        spec = getattr(costs, name)
        if is_swept(spec):  # swept costs/stops become parameters
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
    return search_grid(_specs(strategy, costs))


def random_sample(strategy: StrategyConfig, costs: CostsConfig, search: SearchConfig) -> pd.DataFrame:
    """``search.n`` distinct combinations drawn independently per parameter (constraint applied; fewer if
    the space is smaller)."""
    sdef = STRATEGIES[strategy.kind]

    def prepare(draw: pd.DataFrame) -> pd.DataFrame:
        draw = _coerce(strategy, draw)
        return draw[sdef.valid(draw)]

    return search_sample(_specs(strategy, costs), search, prepare)


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
