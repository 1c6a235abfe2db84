"""Validated configuration of a portfolio backtest (``quantlake portfolio --config FILE``).

A portfolio holds several **assets** in one cash account: a symbol (bought and held, on its adjusted close)
or a **strategy sleeve** — an equity strategy with fixed parameters on one symbol, whose account value (its
NAV from the equity backtester, with its own costs and ``sizing``) is the asset.  Weights come from
:mod:`risk.portfolio` estimated on trailing returns only; the account rebalances on a calendar or when a
weight leaves its band.  Every error names the field (:class:`quantlake.errors.ConfigError`, exit 2).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backtests.equity.config import CostsConfig, ExecutionConfig, StrategyConfig, validate_symbol
from risk.position_sizing import SizingSpec

Method = Literal["equal", "fixed", "min_variance", "max_sharpe", "risk_parity", "hrp"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssetConfig(_Model):
    """One asset: ``symbol`` alone (buy and hold, adjusted close), or ``symbol`` + ``strategy`` (a sleeve:
    the strategy's account value on that symbol; its parameters must be fixed values)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,40}$")]
    symbol: str
    strategy: StrategyConfig | None = None
    costs: CostsConfig = CostsConfig()
    execution: ExecutionConfig = ExecutionConfig()
    sizing: SizingSpec = SizingSpec()

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        return validate_symbol(v)

    @model_validator(mode="after")
    def _fixed(self) -> AssetConfig:
        if self.strategy is not None:
            swept = [k for k, v in self.strategy.params.items() if not isinstance(v, int | float | bool | str)]
            if swept:
                raise ValueError(f"strategy.params: a sleeve trades fixed parameters; {swept} are swept")
            from backtests.equity.strategies import STRATEGIES

            if STRATEGIES[self.strategy.kind].pairs:
                raise ValueError("strategy: pairs sleeves are not supported (one symbol per sleeve)")
        return self


class WeightsConfig(_Model):
    """How target weights are chosen at each estimation date, from the assets' daily returns over the last
    ``lookback`` bars up to that date's close (``equal`` and ``fixed`` need none)."""

    method: Method = "risk_parity"
    lookback: Annotated[int, Field(ge=20, le=5000)] = 126
    fixed: dict[str, Fraction] | None = None
    lower: Fraction = 0.0
    upper: Fraction = 1.0
    risk_free: float = 0.0  # per day, for max_sharpe

    @model_validator(mode="after")
    def _fixed_weights(self) -> WeightsConfig:
        if self.method == "fixed":
            if not self.fixed:
                raise ValueError("fixed: give the weight of each asset for method 'fixed'")
            if abs(sum(self.fixed.values()) - 1.0) > 1e-9:
                raise ValueError(f"fixed: weights must sum to 1, got {sum(self.fixed.values()):g}")
        if self.lower > self.upper:
            raise ValueError(f"lower {self.lower} is above upper {self.upper}")
        return self


class RebalanceConfig(_Model):
    """``calendar``: trade to the targets after every estimation date (``every``: month, week or quarter
    ends, or ``bars`` for every ``bars`` bars).  ``band``: targets are still estimated on that calendar, but
    the account trades only when a weight is more than ``band`` away from its target (checked every close).
    A decision at a close trades at the next bar's close."""

    mode: Literal["calendar", "band"] = "calendar"
    every: Literal["month", "week", "quarter", "bars"] = "month"
    bars: Annotated[int, Field(ge=1, le=1000)] = 21
    band: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05


class PortfolioCosts(_Model):
    """Costs of the portfolio's own rebalancing trades (fractions of traded value)."""

    fees: Fraction = 0.0005
    slippage: Fraction = 0.0


class PortfolioConfig(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,60}$")] = "portfolio"
    assets: Annotated[list[AssetConfig], Field(min_length=2, max_length=100)]
    start: dt.date | None = None
    end: dt.date | None = None
    init_cash: Annotated[float, Field(gt=0.0)] = 100_000.0
    weights: WeightsConfig = WeightsConfig()
    rebalance: RebalanceConfig = RebalanceConfig()
    costs: PortfolioCosts = PortfolioCosts()
    periods_per_year: Annotated[float, Field(gt=0.0)] = 252.0
    output_dir: str | None = None  # default: $QUANTLAKE_HOME/reports/portfolio/<name>

    @model_validator(mode="after")
    def _consistent(self) -> PortfolioConfig:
        names = [a.name for a in self.assets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"assets: names must be unique, {dup} repeat")
        if self.weights.method == "fixed" and set(self.weights.fixed or {}) != set(names):
            raise ValueError(f"weights.fixed: give exactly the assets {names}")
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        if self.weights.lower * len(names) > 1 + 1e-9 or self.weights.upper * len(names) < 1 - 1e-9:
            raise ValueError(f"weights.lower/upper: {len(names)} assets cannot sum to 1 within "
                             f"[{self.weights.lower}, {self.weights.upper}]")  # fmt: skip
        return self


def load_portfolio_config(path: Any) -> PortfolioConfig:
    """Read a YAML/JSON file into :class:`PortfolioConfig` (errors name the file and the field)."""
    from backtests.equity.config import load_config

    return load_config(path, PortfolioConfig)


__all__ = ["AssetConfig", "PortfolioConfig", "RebalanceConfig", "WeightsConfig", "load_portfolio_config"]
