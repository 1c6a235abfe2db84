"""What the option engine shares with strategies: the bar, the engine's settings, the :class:`Strategy`
protocol and the read-only :class:`Context` a strategy decides on (the engine itself: :mod:`engine`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import pandas as pd

from backtests.options.account import Position
from backtests.options.config import (
    ChainSourceMode,
    Commissions,
    Delay,
    FillConfig,
    InterestConfig,
    MarginConfig,
    OptionsBacktestConfig,
)
from backtests.options.contracts import Contract
from backtests.options.orders import OptionOrder, Order, ShareOrder
from backtests.options.quotes import LegQuotes
from risk.limits import Limits
from risk.position_sizing import SizingSpec

if TYPE_CHECKING:
    from backtests.options.engine import Engine


@dataclass(frozen=True)
class Bar:
    date: dt.date
    close: float
    open: float = float("nan")  # only read for ``settlement_price: open``
    rate: float = 0.0
    regime: str = "unknown"
    iv_rank: float = float("nan")
    vix: float = float("nan")
    signals: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineSettings:
    underlying: str
    settlement: Literal["cash", "physical"] = "cash"
    dividend_yield: float = 0.0
    chain_source: ChainSourceMode = "auto"
    fill: FillConfig = field(default_factory=FillConfig)
    delay: Delay = "next_bar"
    commissions: Commissions = field(default_factory=Commissions)
    margin: MarginConfig = field(default_factory=MarginConfig)
    interest: InterestConfig = field(default_factory=InterestConfig)
    settlement_price: Literal["close", "open"] = "close"
    sizing: SizingSpec | None = None  # the config's top-level ``sizing:`` (None: each strategy's own)
    limits: Limits | None = None  # pre-trade risk limits on opening orders (backtests.options.limits)

    @classmethod
    def from_config(cls, cfg: OptionsBacktestConfig, default_delay: Delay) -> EngineSettings:
        return cls(
            underlying=cfg.underlying, settlement=cfg.settlement, dividend_yield=cfg.market.dividend_yield,
            chain_source=cfg.chain.source, fill=cfg.execution.fill, delay=cfg.execution.delay or default_delay,
            commissions=cfg.commissions, margin=cfg.margin, interest=cfg.interest,
            settlement_price=cfg.market.settlement_price, sizing=cfg.sizing, limits=cfg.risk_limits,
        )


class Strategy(Protocol):
    name: str
    default_delay: Delay

    def on_bar(self, ctx: Context) -> list[Order]: ...


class Context:
    """What a strategy sees on a bar (read-only views plus chain access)."""

    def __init__(self, engine: Engine) -> None:
        self._e = engine

    @property
    def date(self) -> dt.date:
        return self._e.bar.date

    @property
    def bar(self) -> Bar:
        return self._e.bar

    @property
    def spot(self) -> float:
        return self._e.bar.close

    @property
    def underlying(self) -> str:
        return self._e.settings.underlying

    @property
    def cash(self) -> float:
        return self._e.account.cash

    @property
    def shares(self) -> float:
        return self._e.account.shares

    def equity(self) -> float:
        return self._e.account.equity(self.spot)

    def positions(self, tag: str | None = None) -> list[Position]:
        """Open positions not already being closed (optionally of one tag)."""
        closing = self._e.closing_ids()
        return [p for p in self._e.account.positions.values()
                if p.id not in closing and (tag is None or p.tag == tag)]

    def pending_opens(self, tag: str | None = None) -> int:
        return sum(1 for o in self._e.pending if isinstance(o, OptionOrder) and (tag is None or o.tag == tag))

    def pending_contracts(self, tag: str | None = None) -> int:
        return sum(o.units * sum(abs(leg.ratio) for leg in o.legs) for o in self._e.pending
                   if isinstance(o, OptionOrder) and (tag is None or o.tag == tag))

    def pending_shares(self) -> int:
        return sum(o.shares for o in self._e.pending if isinstance(o, ShareOrder))

    def chain(self) -> pd.DataFrame | None:
        """Today's chain with Greeks, or ``None`` when there is none."""
        snap = self._e.snapshot()
        return None if snap is None or len(snap) == 0 else snap.frame()

    def quotes(self, contracts: Sequence[Contract]) -> LegQuotes:
        return self._e.quotes(contracts)

    @property
    def is_roll_day(self) -> bool:
        """Today settles a standard monthly (third-Friday) expiration."""
        return self._e.bar.date in self._e.monthly_settlements

    @property
    def first_bar(self) -> bool:
        return self._e.bars_seen == 1

    @property
    def settings(self) -> EngineSettings:
        return self._e.settings

    def buying_power(self) -> float:
        """Excess buying power now (equity minus every requirement, see :mod:`margin`)."""
        return self._e.excess()[0]

    def skip(self, tag: str, reason: str, **details: float) -> None:
        """Record an entry the strategy decided not to make, and why (the run's ``skipped`` frame)."""
        self._e.skips.append({"date": self.date, "tag": tag, "reason": reason, **details})

    # ------------------------------------------------------------------ config-level sizing
    @property
    def sizing(self) -> SizingSpec | None:
        """The config's ``sizing:`` (None: the strategy sizes with its own settings)."""
        return self._e.settings.sizing

    def sizing_input(self, name: str) -> float:
        """``vol_factor`` (target / realized vol, capped) or ``atr`` of the underlying at today's close."""
        return float(self._e.sizing_inputs.get(self._e.bar.date, {}).get(name, float("nan")))

    def closed_returns_on_risk(self) -> list[float]:
        """P&L of each closed position over the capital it risked (maximum loss, else the premium paid)."""
        return [float(p["pnl"]) / float(p["risk"]) for p in self._e.account.closed if p.get("risk", 0) > 0]
