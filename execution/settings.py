"""Validated configuration of the scanner and of trading runs (pydantic; errors name the bad field).

Secrets are never part of these models: broker keys and the SMTP password are read from environment
variables or Prefect Secret blocks at the moment they are used (see :mod:`execution.notify` and
:mod:`execution.brokers`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from execution._model import ExecModel
from quantlake.tables import validate_symbol
from risk.position_sizing import SizingSpec

Period = Annotated[int, Field(ge=2, le=1000)]
Money = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Frac = Annotated[float, Field(gt=0.0, lt=1.0)]
STRATEGY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
BrokerName = Literal["paper", "alpaca", "ibkr"]


def _symbols(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    try:
        out = [validate_symbol(s) for s in value]
    except Exception as exc:  # InvalidSymbolError → a field error naming the list
        raise ValueError(str(exc)) from None
    if not out:
        raise ValueError("give at least one symbol or leave it unset for the whole lake")
    return sorted(set(out))


class ScanConfig(ExecModel):
    """The daily scanner.

    Universe: symbols with a bar on ``as_of`` whose close is in [``min_price``, ``max_price``], whose
    average volume over ``volume_window`` bars is at least ``min_volume`` (close-only series without volume
    pass only with ``allow_missing_volume``), not an index (``^...``) unless ``include_indices``, and — when
    ``min_market_cap`` is set — with a known market cap (``market_caps``) at least that large.

    Signals: for each ``(fast, slow)`` in ``ema_pairs`` an EMA cross between the previous bar and ``as_of``;
    context: the latest RSI cross above ``rsi_upper`` / below ``rsi_lower`` within ``rsi_window`` bars (with
    its date) and whether the MACD histogram confirms the direction.
    """

    as_of: dt.date | None = None
    symbols: list[str] | None = None
    min_price: Money = 10.0
    max_price: Money = 100.0
    min_volume: Money = 500_000.0
    volume_window: Annotated[int, Field(ge=1, le=250)] = 20
    allow_missing_volume: bool = False
    include_indices: bool = False
    min_market_cap: Money | None = None
    market_caps: dict[str, Money] = Field(default_factory=dict)
    ema_pairs: list[tuple[Period, Period]] = Field(default_factory=lambda: [(9, 21), (50, 200)], min_length=1)
    rsi_period: Period = 14
    rsi_upper: Annotated[float, Field(gt=50.0, lt=100.0)] = 70.0
    rsi_lower: Annotated[float, Field(gt=0.0, lt=50.0)] = 30.0
    rsi_window: Annotated[int, Field(ge=1, le=20)] = 5
    macd_fast: Period = 12
    macd_slow: Period = 26
    macd_signal: Period = 9
    top: Annotated[int, Field(ge=1, le=1000)] = 20
    chart_bars: Annotated[int, Field(ge=10, le=500)] = 90

    _sym = field_validator("symbols")(_symbols)

    @field_validator("market_caps")
    @classmethod
    def _caps(cls, value: dict[str, float]) -> dict[str, float]:
        return {validate_symbol(k): v for k, v in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> ScanConfig:
        if self.min_price > self.max_price:
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        bad = [p for p in self.ema_pairs if p[0] >= p[1]]
        if bad:
            raise ValueError(f"ema_pairs: fast must be shorter than slow, got {bad}")
        if len(set(self.ema_pairs)) != len(self.ema_pairs):
            raise ValueError(f"ema_pairs has duplicates: {self.ema_pairs}")
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be shorter than macd_slow")
        return self


class CostModel(ExecModel):
    """Costs the paper broker charges: commission = max(``min_commission``, ``per_share`` × qty +
    ``commission_bps`` × notional / 10⁴); the fill price moves against the order by ``slippage_bps``."""

    per_share: Money = 0.005
    commission_bps: Money = 0.0
    min_commission: Money = 1.0
    slippage_bps: Annotated[float, Field(ge=0.0, le=1000.0)] = 5.0

    def fill_price(self, reference: float, side: str) -> float:
        move = self.slippage_bps / 1e4
        return reference * (1.0 + move) if side == "buy" else reference * (1.0 - move)

    def commission(self, qty: float, price: float) -> float:
        return max(self.min_commission, self.per_share * qty + self.commission_bps * qty * price / 1e4)


class TradeConfig(ExecModel):
    """One trading run of a registered model.

    * ``model`` — registered model name; its ``champion`` version decides target positions in [-1, 1].
    * ``strategy`` — name in client order ids and the audit trail (default: the model name).
    * ``max_position_fraction`` — equity fraction one full (±1) target position gets; sizing rounds down.
    * ``order_timeout_hours`` — an open order older than this is cancelled at the next run.
    * ``alert_drawdown`` / ``kill_drawdown`` — drawdown from the peak (positive fraction) that sends an alert
      / that trips the kill switch (no new orders until ``quantlake trade --reset-kill-switch``).
    * ``circuit_failures`` / ``circuit_reset_seconds`` — consecutive broker failures that open the circuit
      breaker, and how long it stays open.
    * ``strict_reconcile`` — fail the run when the broker's positions differ from the audit trail.
    * ``instrument`` — ``equity``: ``model`` is a signal model trading shares; ``options``: ``model`` is a
      registered option strategy (:mod:`execution.option_trader`), traded with its backtest's own objects.
    * ``option_limits`` — :class:`risk.limits.Limits` fields the option trader checks every opening package
      against (:func:`risk.limits.validate` with the package's legs and Greeks and the book's positions);
      defaults: no leverage limits, the book's maximum loss at most the equity (``max_portfolio_risk`` 1).
    * ``option_replace_minutes`` / ``_steps`` / ``_fraction`` — live brokers: a working option limit is
      cancelled/replaced every that many minutes of the run, its net limit moved that fraction of the way to
      the natural price, at most ``_steps`` times (0 minutes: off; across bars the backtest's
      ``limit_ttl_bars`` rule cancels).
    * ``sizing`` — the equity sweeps' ``sizing:`` (:class:`risk.position_sizing.SizingSpec`) per symbol at
      the trading date's close, at most ``max_position_fraction``; None: ``max_position_fraction`` × |signal|.
    """

    model: str
    strategy: str | None = None
    broker: BrokerName = "paper"
    account: str = "default"
    as_of: dt.date | None = None
    symbols: list[str] | None = None
    feature_table: str = "features_technical"
    max_position_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.10
    allow_short: bool = False
    initial_cash: Annotated[float, Field(gt=0.0)] = 100_000.0
    costs: CostModel = Field(default_factory=CostModel)
    order_timeout_hours: Annotated[float, Field(gt=0.0)] = 30.0
    fill_wait_seconds: Annotated[float, Field(ge=0.0, le=3600.0)] = 0.0
    alert_drawdown: Frac = 0.10
    kill_drawdown: Frac = 0.20
    circuit_failures: Annotated[int, Field(ge=1, le=100)] = 3
    circuit_reset_seconds: Annotated[float, Field(gt=0.0)] = 300.0
    strict_reconcile: bool = False
    max_order_value_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    sizing: SizingSpec | None = None
    instrument: Literal["equity", "options"] = "equity"
    option_limits: dict[str, float | int | bool | None] = Field(default_factory=dict)
    option_replace_minutes: Annotated[float, Field(ge=0.0, le=390.0)] = 0.0
    option_replace_steps: Annotated[int, Field(ge=0, le=20)] = 2
    option_replace_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5

    _sym = field_validator("symbols")(_symbols)

    @field_validator("model", "strategy", "account")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not STRATEGY_RE.fullmatch(value):
            raise ValueError(f"{value!r}: use 1-64 characters from A-Z a-z 0-9 _ . - (starting alphanumeric)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TradeConfig:
        if self.alert_drawdown >= self.kill_drawdown:
            raise ValueError("alert_drawdown must be below kill_drawdown")
        return self

    @property
    def strategy_name(self) -> str:
        return self.strategy or self.model
