"""The combinations a sweep tries, from named swept values (:mod:`backtests.research.specs` grammar): the full
grid, or a seeded random sample.  Equity and option sweeps both call these; what a name means (a strategy
parameter, a cost, an option-config path) and which combinations are valid is their business (``prepare``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from backtests.research.specs import RangeSpec, SearchConfig, UniformSpec
from quantlake.errors import ConfigError

MAX_COMBINATIONS = 1_000_000


def is_swept(spec: Any) -> bool:
    """A list, a range or a distribution (anything else is one fixed value)."""
    return isinstance(spec, list | RangeSpec | UniformSpec)


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


def draw(spec: Any, n: int, rng: np.random.Generator) -> list[Any]:
    """``n`` random values of ``spec``: from its distribution, or uniformly among its grid values."""
    if isinstance(spec, UniformSpec):
        lo, hi = spec.uniform
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) if spec.log else rng.uniform(lo, hi, n)
        return [int(v) for v in np.rint(x)] if spec.integer else [float(v) for v in x]
    vals = candidate_values(spec)
    return [vals[i] for i in rng.integers(0, len(vals), n)]


def grid(specs: Mapping[str, Any], limit: int = MAX_COMBINATIONS) -> pd.DataFrame:
    """Every combination of the specs' values, one row each, columns in the specs' order."""
    values = {k: candidate_values(v) for k, v in specs.items()}
    n = math.prod(len(v) for v in values.values())
    if n > limit:
        raise ConfigError(f"the grid has {n:,} combinations (max {limit:,}); use search.method: random")
    return pd.DataFrame(list(itertools.product(*values.values())), columns=list(values))


def random_sample(
    specs: Mapping[str, Any],
    search: SearchConfig,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame,
) -> pd.DataFrame:
    """``search.n`` distinct combinations drawn independently per parameter with seed ``search.seed``.

    ``prepare`` coerces a batch of draws and drops the invalid ones; fewer than ``n`` rows come back when the
    space is smaller (20 batches of ``4 n`` draws are tried)."""
    rng = np.random.default_rng(search.seed)
    out = pd.DataFrame(columns=list(specs))
    for _ in range(20):
        batch = prepare(pd.DataFrame({k: draw(v, 4 * search.n, rng) for k, v in specs.items()}))
        out = pd.concat([out, batch], ignore_index=True).drop_duplicates(ignore_index=True)
        if len(out) >= search.n:
            break
    return out.iloc[: search.n].reset_index(drop=True)
