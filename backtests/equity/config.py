"""Validated configuration of equity research runs (pydantic), loadable from YAML or JSON files.

One :class:`SweepConfig` describes a whole run: the strategy and the values of its parameters to search,
symbols or pairs and dates, costs and stops, execution timing, universe and regime filters, the metric that
selects a combination, position sizing (``sizing:``, :class:`risk.position_sizing.SizingSpec`), and optional
walk-forward and Monte Carlo sections.  Every validation error names the
field (``strategy.params.fast: ...``) and is raised as :class:`quantlake.errors.ConfigError` (exit code 2).

A parameter value in ``strategy.params`` (and a cost such as ``sl_stop``) is either fixed (``fast: 10``),
a list of values (``fast: [5, 10, 15]``), an inclusive range (``fast: {range: [5, 15], step: 1}``) or, for
random search only, a distribution (``k: {uniform: [1.5, 3.0]}``, ``window: {uniform: [10, 60], integer: true}``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from backtests.research.specs import (  # noqa: F401  (re-exported: equity configs name them)
    LOWER_IS_BETTER,
    MC_METHODS,
    MCMethod,
    MonteCarloSpec,
    OverfittingSpec,
    RangeSpec,
    Scalar,
    SearchConfig,
    UniformSpec,
    WalkForwardSpec,
)
from quantlake.errors import ConfigError, InvalidSymbolError
from quantlake.tables import validate_symbol as _validate_symbol
from risk.position_sizing import SizingSpec

M = TypeVar("M", bound=BaseModel)

METRICS = (
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "volatility",
    "var_95",
    "win_rate",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "trades",
    "exposure",
)
REGIMES = ("low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral")


def validate_symbol(symbol: str) -> str:
    """:func:`quantlake.tables.validate_symbol` as a ValueError, so pydantic names the field."""
    try:
        return _validate_symbol(symbol)
    except InvalidSymbolError as exc:
        raise ValueError(str(exc)) from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ParamSpec = RangeSpec | UniformSpec | list[Scalar] | Scalar
CostSpec = RangeSpec | UniformSpec | list[float | None] | float | None


class StrategyConfig(_Model):
    kind: str = Field(description="strategy name, see backtests.equity.strategies.STRATEGIES")
    params: dict[str, ParamSpec] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        from backtests.equity.strategies import STRATEGIES

        if v not in STRATEGIES:
            raise ValueError(f"unknown strategy {v!r}; choose one of: {', '.join(sorted(STRATEGIES))}")
        return v

    @model_validator(mode="after")
    def _params(self) -> StrategyConfig:
        from backtests.equity.strategies import STRATEGIES

        STRATEGIES[self.kind].check_params(self.params)
        return self


class CostsConfig(_Model):
    """Fees and slippage as fractions of traded value; stops as fractions of the entry price."""

    fees: CostSpec = 0.0005
    fixed_fees: float = Field(default=0.0, ge=0)
    slippage: CostSpec = 0.0005
    sl_stop: CostSpec = None
    tsl_stop: CostSpec = Field(
        default=None, description="trailing stop (fraction below the highest price since entry)"
    )
    tp_stop: CostSpec = None

    @field_validator("fees", "slippage", "sl_stop", "tsl_stop", "tp_stop")
    @classmethod
    def _fraction(cls, v: CostSpec) -> CostSpec:
        vals: list[float] = []
        if isinstance(v, RangeSpec):
            vals = [float(x) for x in v.values()]
        elif isinstance(v, UniformSpec):
            vals = list(v.uniform)
        elif isinstance(v, list):
            vals = [float(x) for x in v if x is not None]
        elif v is not None:
            vals = [float(v)]
        for x in vals:
            if not 0.0 <= x < 1.0:
                raise ValueError(f"{x} is not a fraction in [0, 1) (e.g. 0.001 = 0.1%)")
        return v

    @model_validator(mode="after")
    def _one_stop_loss(self) -> CostsConfig:
        if self.sl_stop is not None and self.tsl_stop is not None:
            raise ValueError(
                "sl_stop and tsl_stop: choose one (vectorbt keeps a single stop-loss per position)"
            )
        return self


class ExecutionConfig(_Model):
    """When a signal trades (DESIGN §5: a signal at t trades at t+1's open).

    ``next_open``: at the next bar's open; symbols without opens (close-only series) fall back to the next
    close and are reported with ``fill = next_close``.  ``next_close``: at the next close.  ``close``: at the
    close of the signal bar (only for comparisons with engines that fill on the close)."""

    fill: Literal["next_open", "next_close", "close"] = "next_open"
    init_cash: float = Field(default=10_000.0, gt=0)
    price: Literal["close", "adj_close"] = Field(
        default="close",
        description="adj_close scales open/high/low by adj_close/close (dividends reinvested)",
    )


class UniverseConfig(_Model):
    """Point-in-time universe: a symbol may be entered on day t only if its close and its average dollar
    volume over ``window`` days (both known at t's close) pass.  Close-only series have no volume: they fail
    a dollar-volume filter."""

    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, gt=0)
    min_dollar_volume: float | None = Field(default=None, ge=0)
    window: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _order(self) -> UniverseConfig:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        return self

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.min_price, self.max_price, self.min_dollar_volume))


class RegimeConfig(_Model):
    """Trade only in chosen regimes of the ``features_regime`` table (the regime at t is known at t's close).

    ``symbol``: whose regime to use (``null`` = each traded symbol's own; e.g. ``SPY`` or ``^VIX`` for a
    market-wide regime).  ``exit_on_change``: close positions when the regime leaves the allowed set."""

    allow: list[Literal["low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral"]] = Field(
        min_length=1
    )
    symbol: str | None = None
    exit_on_change: bool = True
    table: str = "features_regime"

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        return None if v is None else validate_symbol(v)


class ReportSpec(_Model):
    heatmap: tuple[str, str] | None = Field(
        default=None, description="two parameters (default: the first two swept)"
    )
    tearsheet: bool = True
    output_dir: Path | None = Field(
        default=None, description="default: $QUANTLAKE_HOME/reports/equity/<name>-<time>"
    )


class SweepConfig(_Model):
    name: str = Field(default="sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,60}$")
    strategy: StrategyConfig
    symbols: list[str] | None = Field(
        default=None, description="null: every symbol of equity_bars (not for pairs)"
    )
    pairs: list[str] | None = Field(
        default=None, description="pairs strategy: 'Y/X' (trade Y against beta * X)"
    )
    start: dt.date | None = None
    end: dt.date | None = None
    interval: str = Field(
        default="1d",
        description="bar interval: 1d (equity_bars) or any interval the lake holds or can resample to (5m, 1h, 4h...)",
    )
    htf_interval: str | None = Field(
        default=None,
        description="multi-timeframe strategies (mtf_trend): the higher timeframe, coarser than interval (e.g. 4h); "
        "its bars are used only once closed",
    )
    search: SearchConfig = Field(default_factory=SearchConfig)
    costs: CostsConfig = Field(default_factory=CostsConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    sizing: SizingSpec = Field(
        default_factory=SizingSpec, description="fraction of cash per entry (risk.position_sizing); all_in by default"
    )
    universe: UniverseConfig = Field(default_factory=UniverseConfig)
    regime: RegimeConfig | None = None
    metric: str = Field(default="sharpe", description="metric that selects the best combination")
    chunk_size: int = Field(default=10, ge=1, le=10_000, description="symbols (or pairs) per vectorized call")
    overfitting: OverfittingSpec = Field(default_factory=OverfittingSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    walkforward: WalkForwardSpec | None = None
    montecarlo: MonteCarloSpec | None = None

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = list(dict.fromkeys(validate_symbol(s) for s in v))
        if not out:
            raise ValueError("list is empty (omit it for every symbol)")
        return out

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        from quantlake.calendars import check_interval
        from quantlake.errors import UserInputError

        try:
            return check_interval(v)
        except UserInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("htf_interval")
    @classmethod
    def _htf_interval(cls, v: str | None, info: ValidationInfo) -> str | None:
        from quantlake.calendars import check_interval, parse_interval
        from quantlake.errors import UserInputError

        if v is None:
            return None
        try:
            v = check_interval(v)
        except UserInputError as exc:
            raise ValueError(str(exc)) from None
        low = info.data.get("interval")
        if low is not None and parse_interval(v) <= parse_interval(low):
            raise ValueError(f"{v} is not coarser than interval {low} (the higher timeframe, e.g. 4h over 15m)")
        return v

    @property
    def periods_per_year(self) -> float:
        """Bars a year at ``interval`` on the symbols' calendar (252 for daily NYSE bars, 8,760 for hourly
        crypto): the annualization of every statistic of the run."""
        from quantlake.calendars import calendar_for_symbol, periods_per_year

        syms = self.symbols or [s for p in self.pairs or [] for s in p.split("/")]
        cals = {calendar_for_symbol(s) for s in syms} or {"XNYS"}
        if len(cals) > 1:
            raise ConfigError("symbols: crypto pairs (24/7) and exchange symbols cannot be mixed in one sweep")
        return periods_per_year(self.interval, cals.pop())

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = []
        for p in v:
            legs = [s for s in p.replace("~", "/").split("/") if s.strip()]
            if len(legs) != 2:
                raise ValueError(f"pair {p!r} must look like 'GDX/GLD'")
            y, x = (validate_symbol(s) for s in legs)
            if y == x:
                raise ValueError(f"pair {p!r} trades a symbol against itself")
            out.append(f"{y}/{x}")
        if not out:
            raise ValueError("list is empty")
        return list(dict.fromkeys(out))

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; choose one of: {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SweepConfig:
        from backtests.equity.strategies import STRATEGIES

        is_pairs = STRATEGIES[self.strategy.kind].pairs
        if is_pairs and not self.pairs:
            raise ValueError("pairs: the pairs strategy needs a list of pairs such as ['GDX/GLD']")
        if not is_pairs and self.pairs:
            raise ValueError(
                f"pairs: only the pairs strategy takes pairs (strategy is {self.strategy.kind!r})"
            )
        if is_pairs and not self.sizing.is_all_in:
            raise ValueError("sizing: the pairs strategy sizes its legs itself (remove sizing)")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if STRATEGIES[self.strategy.kind].needs_htf and self.htf_interval is None:
            raise ValueError(
                f"htf_interval: the {self.strategy.kind} strategy needs a higher timeframe (e.g. htf_interval: 4h)"
            )
        if not STRATEGIES[self.strategy.kind].needs_htf and self.htf_interval is not None:
            raise ValueError(
                f"htf_interval: only the mtf_trend strategy uses a higher timeframe (strategy is {self.strategy.kind!r})"
            )
        if STRATEGIES[self.strategy.kind].uses_sl_stop and (
            self.costs.sl_stop is not None or self.costs.tsl_stop is not None
        ):
            raise ValueError("costs.sl_stop: this strategy sets its own ATR stop; remove sl_stop/tsl_stop")
        if self.report.heatmap is not None:
            known = set(STRATEGIES[self.strategy.kind].param_names) | set(COST_PARAMS)
            for p in self.report.heatmap:
                if p not in known:
                    raise ValueError(f"report.heatmap: {p!r} is not a parameter of {self.strategy.kind}")
        return self

    @property
    def is_pairs(self) -> bool:
        from backtests.equity.strategies import STRATEGIES

        return STRATEGIES[self.strategy.kind].pairs


COST_PARAMS = ("fees", "slippage", "sl_stop", "tsl_stop", "tp_stop")


class WalkForwardConfig(SweepConfig):
    """A sweep whose walk-forward section is required (``quantlake walkforward``)."""

    walkforward: WalkForwardSpec = Field(default_factory=WalkForwardSpec)


class MonteCarloConfig(SweepConfig):
    """A sweep whose Monte Carlo section is required (``quantlake montecarlo``)."""

    montecarlo: MonteCarloSpec = Field(default_factory=MonteCarloSpec)


# ------------------------------------------------------------------------------------------- loading
def _clean_loc(loc: tuple[Any, ...]) -> str:
    parts = []
    for p in loc:
        text = str(p)
        # pydantic names the union member it tried ("RangeSpec", "function-after[...]", "list[...]", "int")
        if isinstance(p, str) and (text[:1].isupper() or "[" in text or text in _UNION_TAGS):
            continue
        parts.append(text)
    return ".".join(parts)


_UNION_TAGS = {"int", "float", "bool", "str", "none"}


def format_errors(exc: ValidationError) -> str:
    """One ``field.path: message`` per bad field (a union's alternatives merged)."""
    by_loc: dict[str, list[str]] = {}
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        by_loc.setdefault(_clean_loc(err["loc"]) or "<root>", []).append(msg)
    parts = []
    for loc, msgs in by_loc.items():
        uniq = list(dict.fromkeys(msgs))
        custom = [m for m in uniq if not m.startswith("Input should be")]
        shown = custom or uniq[-1:]
        parts.append(f"{loc}: {'; '.join(shown[:2])}")
    return "; ".join(parts)


def validate(model: type[M], data: Mapping[str, Any], source: str = "config") -> M:
    """``model`` from ``data`` or :class:`ConfigError` naming each bad field."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"invalid {source}: {format_errors(exc)}") from None


def load_config(path: str | Path, model: type[M] = SweepConfig) -> M:  # type: ignore[assignment]
    """Read a YAML (``.yaml``/``.yml``) or JSON file into ``model``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}"
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    return validate(model, data, source=f"config {p.name}")
