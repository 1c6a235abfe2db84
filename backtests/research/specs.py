"""The research sections of a config (equity sweeps and option sweeps share them): walk-forward, Monte Carlo
and the overfitting statistics.  Validated by pydantic; unknown fields are errors naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# metrics where smaller is better when selecting (drawdown is stored as a negative number: larger is better)
LOWER_IS_BETTER = frozenset({"volatility"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
