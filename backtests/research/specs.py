"""The research parts of a config that equity sweeps and option sweeps share: how a swept value is written
(a list, ``{range: [lo, hi], step: s}`` or, for random search, ``{uniform: [lo, hi]}``), the search method,
and the walk-forward, Monte Carlo and overfitting sections.  Validated by pydantic; unknown fields are errors
naming the field."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# metrics where smaller is better when selecting (drawdown is stored as a negative number: larger is better)
LOWER_IS_BETTER = frozenset({"volatility"})
Scalar = int | float | bool | str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeSpec(_Model):
    """Inclusive grid ``range: [lo, hi]`` with ``step`` (ints stay ints)."""

    range: tuple[float, float]
    step: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> RangeSpec:
        lo, hi = self.range
        if lo > hi:
            raise ValueError(f"range [{lo}, {hi}] is backwards")
        if (hi - lo) / self.step > 100_000:
            raise ValueError("range has more than 100,000 values; use a larger step")
        return self

    def values(self) -> list[Scalar]:
        lo, hi = self.range
        n = math.floor((hi - lo) / self.step + 1e-9) + 1
        vals = [lo + i * self.step for i in range(n)]
        if all(float(v).is_integer() for v in (lo, hi, self.step)):
            return [round(v) for v in vals]
        return [round(v, 12) for v in vals]


class UniformSpec(_Model):
    """A distribution for random search: uniform on ``[lo, hi]`` (log-uniform with ``log``, ints with ``integer``)."""

    uniform: tuple[float, float]
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _order(self) -> UniformSpec:
        lo, hi = self.uniform
        if lo > hi:
            raise ValueError(f"uniform [{lo}, {hi}] is backwards")
        if self.log and lo <= 0:
            raise ValueError("log-uniform needs lo > 0")
        return self


class SearchConfig(_Model):
    method: Literal["grid", "random"] = "grid"
    n: int = Field(default=50, ge=1, le=1_000_000, description="random search: number of combinations drawn")
    seed: int = 0


class WalkForwardSpec(_Model):
    mode: Literal["rolling", "anchored"] = "rolling"
    train_bars: int = Field(default=756, ge=20, description="in-sample length in bars (756 ≈ 3 years)")
    test_bars: int = Field(default=252, ge=5, description="out-of-sample length in bars")
    step_bars: int | None = Field(
        default=None, ge=1, description="window step (default: test_bars, non-overlapping OOS)"
    )


MCMethod = Literal["bootstrap", "shuffle", "parametric"]
MC_METHODS: tuple[MCMethod, ...] = ("bootstrap", "shuffle", "parametric")


class MonteCarloSpec(_Model):
    n_sims: int = Field(default=2000, ge=10, le=1_000_000)
    methods: list[MCMethod] = Field(default_factory=lambda: list(MC_METHODS), min_length=1)
    ruin_level: float = Field(
        default=0.5, gt=0, lt=1, description="ruin = equity at or below this fraction of the start"
    )
    fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="capital fraction per trade (default: equity research 1/number of symbols traded; "
        "option research the trade's own return on the account)",
    )
    seed: int = 0

    @field_validator("methods")
    @classmethod
    def _unique(cls, v: list[MCMethod]) -> list[MCMethod]:
        return list(dict.fromkeys(v))


class OverfittingSpec(_Model):
    cscv_splits: int = Field(
        default=16, ge=2, le=24, description="even number of CSCV blocks (C(16,8) = 12,870 splits)"
    )

    @field_validator("cscv_splits")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even")
        return v
