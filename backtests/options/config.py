"""Validated configuration of an option backtest (pydantic), loadable from YAML or JSON files.

Every model forbids unknown fields, so a typo is an error that names the field (``strategy.exits.stop_los:
Extra inputs are not permitted``) instead of a silently ignored setting.  :func:`load_config` and
:func:`parse_config` turn validation failures into :class:`quantlake.errors.ConfigError` (CLI exit 2).

Units: fractions are decimals (``0.5`` = 50 %), deltas are absolute values (``0.30`` selects the 30-delta
call or the -0.30-delta put), prices per share of underlying, cash in the account currency.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backtests.config_files import read_file
from backtests.options.chain_config import (  # re-exported: the engine and callers import them from here
    CASH_SETTLED_INDEXES,
    LEGACY_CHAIN_MODES,
    ChainConfig,
)
from backtests.options.chain_config import (
    ChainSourceMode as ChainSourceMode,
)
from quantlake.errors import ConfigError, InvalidSymbolError
from quantlake.tables import validate_symbol
from risk.limits import Limits
from risk.position_sizing import SizingSpec
from risk.sizing import AdaptiveSizing

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
Regime = Literal["low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral"]
Delay = Literal["next_bar", "same_bar"]


def _symbol(value: str) -> str:
    try:
        return validate_symbol(value)
    except InvalidSymbolError as exc:  # a ValueError lets pydantic name the field
        raise ValueError(str(exc)) from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------------ execution
class FillConfig(_Model):
    """How option orders fill against the bar's quotes.

    * ``market``: buys pay the ask, sells get the bid (the natural price), then ``slippage`` against you.
    * ``mid``: the mid price, then ``slippage`` against you.
    * ``limit``: the package gets a limit ``mid + limit_offset * (natural - mid)`` (net, when the order is
      created); it fills on a later bar (or the same bar with ``delay: same_bar``) when the package's
      ``limit_fill`` reference price (``natural`` or ``mid``) is at or better than the limit, at the limit
      (or at the reference if that is better: a gap through the limit).  An unfilled limit is cancelled
      after ``limit_ttl_bars`` bars; the strategy decides again.
    """

    mode: Literal["market", "mid", "limit"] = "market"
    slippage: NonNegFloat = 0.0  # price per share per leg, always against the trader (market and mid fills)
    limit_offset: Fraction = 0.5
    limit_fill: Literal["natural", "mid"] = "natural"
    limit_ttl_bars: Annotated[int, Field(ge=1, le=30)] = 1
    share_slippage: NonNegFloat = 0.0  # price per share, for stock/index-unit trades at the close


class Commissions(_Model):
    per_contract: NonNegFloat = 0.65
    per_share: NonNegFloat = 0.005
    min_per_order: NonNegFloat = 0.0  # applies to option orders and share orders separately
    exercise_fee: NonNegFloat = 0.0  # per contract exercised or assigned (physical delivery)


class MarginConfig(_Model):
    """Buying-power rule (see :mod:`backtests.options.margin`).

    ``short_puts``: ``cash_secured`` holds the full strike in cash; ``reg_t`` uses the naked formula
    ``premium + max(naked_pct * S - OTM amount, naked_min_pct * K)``.  Naked short calls always use Reg-T.
    ``stock``: share of a long stock position's value that must be equity (1.0 = cash account, 0.5 = Reg-T).
    """

    short_puts: Literal["cash_secured", "reg_t"] = "cash_secured"
    naked_pct: Fraction = 0.20
    naked_min_pct: Fraction = 0.10
    stock: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    short_stock: Annotated[float, Field(ge=1.0, le=3.0)] = 1.5
    enabled: bool = True


class InterestConfig(_Model):
    """Cash (including collateral) earns the risk-free rate; a debit balance pays it plus ``borrow_spread``."""

    on_cash: bool = True
    borrow_spread: NonNegFloat = 0.0


class ExecutionConfig(_Model):
    fill: FillConfig = FillConfig()
    # None: the strategy's own rule (next_bar, except the CBOE buy-write/put-write which trade on the roll date)
    delay: Delay | None = None


class RateConfig(_Model):
    """Risk-free rate: a FRED series in ``macro_series`` (percent, bond-equivalent; converted to a continuously
    compounded decimal) or a constant (decimal, continuously compounded)."""

    series: str | None = "DGS2"
    constant: float | None = None
    fallback: float = 0.0  # used before the series' first value

    @model_validator(mode="after")
    def _one(self) -> RateConfig:
        if self.constant is not None and not -0.05 <= self.constant <= 0.5:
            raise ValueError(f"constant rate {self.constant} is not a plausible decimal rate (-0.05..0.5)")
        if self.constant is None and not self.series:
            raise ValueError("give either a rate series or a constant")
        return self


class MarketConfig(_Model):
    """The underlying's market.

    ``settlement``: ``auto`` is cash for index symbols (``^...``) and index option underlyings named as chain
    files name them (SPX, NDX, RUT, VIX, XSP ...: :data:`CASH_SETTLED_INDEXES`), else physical delivery.
    ``settlement_price``: expiring options settle at the expiry day's ``close`` (PM-settled: equity options,
    SPX weeklies) or its ``open`` (AM-settled: SPX/RUT monthlies; an index with closes only has open = close).
    ``dividend_yield``: continuous yield used to price options and credited to shares held.
    ``iv_rank`` / ``regime_rules``: where the IV rank and the regime label come from (see the fields); the run
    says which it used (the daily ``iv_rank_source`` column, ``iv_rank_days_*`` metrics).
    """

    settlement: Literal["auto", "cash", "physical"] = "auto"
    settlement_price: Literal["close", "open"] = "close"
    rate: RateConfig = RateConfig()
    dividend_yield: Annotated[float, Field(ge=0.0, le=0.2)] = 0.0
    regime_symbol: str | None = None  # row of features_regime to use; None: the underlying, else ^VIX
    require_regime: bool = False
    # IV rank strategies read: the underlying's own (features_surface.iv_rank_252) where it exists, else the
    # VIX rank of features_regime (auto); only the underlying's (underlying); only the VIX's (vix)
    iv_rank: Literal["auto", "underlying", "vix"] = "auto"
    # regime labels: the VIX rules of features_regime (vix), or the underlying's HV/IV rule set of
    # features_surface (hv_iv; needs observed chains of the underlying)
    regime_rules: Literal["vix", "hv_iv"] = "vix"
    # an underlying traded on its chains' level (no equity_bars, e.g. SPX): the index whose official open/close
    # settles a leg whose expiry is a trading day the chains skip (on the first bar after it); None: ^GSPC for
    # SPX, ^NDX for NDX, ^RUT for RUT when the lake has their bars; "": the last chain level before the expiry
    settlement_symbol: str | None = None

    @field_validator("regime_symbol", "settlement_symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        return v if not v else _symbol(v)  # "" as None, except settlement_symbol: no reference index


# ------------------------------------------------------------------------------------------ selection
class StrikeRule(_Model):
    """How to pick a strike on one expiry.

    ``by``: ``delta`` (absolute delta ``value``), ``pct_otm`` (``value`` out of the money as a fraction of
    the spot: 0.05 = 5 % OTM; negative is in the money), ``atm`` (``atm`` tie rule: ``nearest``,
    ``at_or_above`` or ``at_or_below`` the spot).
    """

    by: Literal["delta", "pct_otm", "atm"] = "delta"
    value: float = 0.30
    atm: Literal["nearest", "at_or_above", "at_or_below"] = "nearest"

    @model_validator(mode="after")
    def _range(self) -> StrikeRule:
        if self.by == "delta" and not 0.0 < self.value < 1.0:
            raise ValueError(f"value: a target delta must be between 0 and 1, got {self.value}")
        if self.by == "pct_otm" and not -0.5 < self.value < 0.9:
            raise ValueError(f"value: pct_otm must be between -0.5 and 0.9, got {self.value}")
        return self


class DteWindow(_Model):
    """Expiry choice: among expiries with ``min`` <= days to expiry <= ``max`` (third-Friday monthlies only
    when ``monthly_only``), the one closest to ``target`` (default: the window's middle)."""

    min: Annotated[int, Field(ge=0)] = 25
    max: Annotated[int, Field(ge=0)] = 50
    target: Annotated[int, Field(ge=0)] | None = None
    monthly_only: bool = True

    @model_validator(mode="after")
    def _order(self) -> DteWindow:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    @property
    def target_days(self) -> float:
        return float(self.target) if self.target is not None else (self.min + self.max) / 2.0


class WidthRule(_Model):
    """Spread width: ``points`` of strike, or ``pct`` of the spot; the listed strike closest to it is used."""

    points: PositiveFloat | None = None
    pct: Annotated[float, Field(gt=0.0, lt=0.5)] | None = None

    @model_validator(mode="after")
    def _one(self) -> WidthRule:
        if (self.points is None) == (self.pct is None):
            raise ValueError("give exactly one of points or pct")
        return self

    def distance(self, spot: float) -> float:
        return float(self.points) if self.points is not None else float(self.pct or 0.0) * spot


class ExitRules(_Model):
    """Managed exits, checked every bar on mid marks (the close order then fills by the fill rule).

    * ``profit_target``: close when the profit is this fraction of the entry credit (or debit).
    * ``stop_loss``: close when the loss is this multiple of the entry credit (or debit): 2.0 on a 1.00
      credit closes when it costs 3.00 to buy back.
    * ``time_exit``: close when this fraction of the entry-to-expiry time has elapsed.
    * ``dte_exit``: close when the nearest leg has at most this many days to expiry.
    * ``exit_regimes``: close when the regime becomes one of these (and differs from the entry regime).
    """

    profit_target: Annotated[float, Field(gt=0.0, le=10.0)] | None = None
    stop_loss: Annotated[float, Field(gt=0.0, le=20.0)] | None = None
    time_exit: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    dte_exit: Annotated[int, Field(ge=0)] | None = None
    exit_regimes: list[Regime] = []


class SizingConfig(_Model):
    """Contracts per entry.

    ``fixed``: ``contracts``.  ``risk``: contracts whose maximum loss (spreads: width - credit; long
    premium: the debit) is ``risk_fraction`` of equity (:func:`risk.sizing.spread_contracts`).
    ``notional``: contracts whose notional (strike x 100) is ``notional_fraction`` of equity.

    Risk sizing rounds down, so one contract whose maximum loss exceeds the budget (``risk_fraction`` x
    equity) rounds to zero.  Then ``min_contracts`` are traded when their maximum loss is at most
    ``min_contracts_max_risk`` times the budget; otherwise the entry is skipped and the run's ``skipped``
    frame says why (``min_contracts: 0`` always skips).
    """

    method: Literal["fixed", "risk", "notional"] = "fixed"
    contracts: Annotated[int, Field(ge=1)] = 1
    risk_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.02
    notional_fraction: Annotated[float, Field(gt=0.0, le=5.0)] = 1.0
    max_contracts: Annotated[int, Field(ge=1)] = 1000
    min_contracts: Annotated[int, Field(ge=0)] = 1
    min_contracts_max_risk: Annotated[float, Field(ge=1.0, le=10.0)] = 2.0


# ------------------------------------------------------------------------------------------ strategies
class RollRule(_Model):
    """When to roll a short option to the next expiry: at ``at_dte`` days left, or when its absolute delta
    exceeds ``delta_above``.  With neither, the option is held to expiry (and assignment)."""

    at_dte: Annotated[int, Field(ge=0)] | None = None
    delta_above: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None


class CoveredCallConfig(_Model):
    kind: Literal["covered_call"] = "covered_call"
    shares: Annotated[int, Field(ge=100)] | None = None  # None: as many 100-share lots as the cash buys
    call: StrikeRule = StrikeRule(by="delta", value=0.30)
    dte: DteWindow = DteWindow()
    roll: RollRule = RollRule(at_dte=None, delta_above=None)
    rebuy_shares: bool = True  # buy the shares back after they are called away
    cover_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # share of the shares held that calls are written on

    @field_validator("shares")
    @classmethod
    def _lots(cls, v: int | None) -> int | None:
        if v is not None and v % 100:
            raise ValueError(f"shares must be a multiple of 100 (one contract covers 100), got {v}")
        return v


class ProtectivePutConfig(_Model):
    kind: Literal["protective_put"] = "protective_put"
    shares: Annotated[int, Field(ge=100)] | None = None
    put: StrikeRule = StrikeRule(by="pct_otm", value=0.05)
    dte: DteWindow = DteWindow()
    roll: RollRule = RollRule(at_dte=5)
    protection_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # share of the shares held that puts protect

    @field_validator("shares")
    @classmethod
    def _lots(cls, v: int | None) -> int | None:
        if v is not None and v % 100:
            raise ValueError(f"shares must be a multiple of 100 (one contract covers 100), got {v}")
        return v


class BuyWriteConfig(_Model):
    """CBOE BXM rule: hold the index, sell the one-month call with the strike at or just above the index
    level on each monthly expiration date and hold it to the next one."""

    kind: Literal["buy_write"] = "buy_write"
    strike: Literal["nearest", "at_or_above", "at_or_below"] = "at_or_above"
    notional_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    start_immediately: bool = False  # write at the first bar instead of waiting for the first roll date


class PutWriteConfig(_Model):
    """CBOE PUT rule: sell the one-month put with the strike at or just below the index level on each
    monthly expiration date, hold it to the next, keep the full strike as collateral in cash (earning
    the rate)."""

    kind: Literal["put_write"] = "put_write"
    strike: Literal["nearest", "at_or_above", "at_or_below"] = "at_or_below"
    collateral_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    start_immediately: bool = False


class PackageEntries(_Model):
    """What every one-package-per-entry strategy shares: risk sizing, how many may be open, in which regimes
    to enter (None: any)."""

    sizing: SizingConfig = SizingConfig(method="risk", risk_fraction=0.02)
    max_open: Annotated[int, Field(ge=1, le=50)] = 1
    entry_regimes: list[Regime] | None = None


class CreditSpreadExits(ExitRules):
    profit_target: Annotated[float, Field(gt=0.0, le=10.0)] | None = 0.5
    stop_loss: Annotated[float, Field(gt=0.0, le=20.0)] | None = 2.0
    time_exit: Annotated[float, Field(gt=0.0, le=1.0)] | None = 0.8
    exit_regimes: list[Regime] = ["iv_expansion"]


class PutCreditSpreadConfig(PackageEntries):
    kind: Literal["put_credit_spread"] = "put_credit_spread"
    short_put: StrikeRule = StrikeRule(by="delta", value=0.20)
    width: WidthRule = WidthRule(pct=0.02)
    dte: DteWindow = DteWindow(min=30, max=50, target=45)
    exits: CreditSpreadExits = CreditSpreadExits()


class IronCondorConfig(PackageEntries):
    kind: Literal["iron_condor"] = "iron_condor"
    short_put: StrikeRule = StrikeRule(by="delta", value=0.16)
    short_call: StrikeRule = StrikeRule(by="delta", value=0.16)
    width: WidthRule = WidthRule(pct=0.02)
    dte: DteWindow = DteWindow(min=30, max=50, target=45)
    exits: CreditSpreadExits = CreditSpreadExits()


class DebitExits(ExitRules):
    profit_target: Annotated[float, Field(gt=0.0, le=10.0)] | None = 0.5
    stop_loss: Annotated[float, Field(gt=0.0, le=20.0)] | None = 0.5
    dte_exit: Annotated[int, Field(ge=0)] | None = 5


class ButterflyConfig(PackageEntries):
    """A butterfly around ``center`` (default: the strike nearest the spot), wings ``width`` away on each
    side, on the expiry the ``dte`` window picks.

    * ``style: call`` / ``put``: the long butterfly, +1 / -2 / +1 of calls (puts) at K - w, K, K + w: a debit,
      the most it can lose; the most it can make is w - debit, with the underlying at K at expiry.
    * ``style: iron``: the short ATM straddle with long wings (+1 put K - w, -1 put K, -1 call K, +1 call
      K + w): a credit, the most it can lose is w - credit.

    Where the chain has no strike exactly w above, the upper wing is the nearest listed one (a broken wing);
    the maximum loss sized on is the package's worst payoff at expiry either way."""

    kind: Literal["butterfly"] = "butterfly"
    style: Literal["call", "put", "iron"] = "call"
    center: StrikeRule = StrikeRule(by="atm", value=0.0)
    width: WidthRule = WidthRule(pct=0.02)
    dte: DteWindow = DteWindow(min=20, max=50, target=30)
    exits: DebitExits = DebitExits()
    sizing: SizingConfig = SizingConfig(method="risk", risk_fraction=0.01)


class CalendarExits(ExitRules):
    profit_target: Annotated[float, Field(gt=0.0, le=10.0)] | None = 0.25
    stop_loss: Annotated[float, Field(gt=0.0, le=20.0)] | None = 0.5
    dte_exit: Annotated[int, Field(ge=0)] | None = 2  # days left on the front month


class CalendarConfig(PackageEntries):
    """A long calendar (time) spread: sell the ``front`` expiry, buy the ``back`` expiry, same strike
    (``strike`` rule on the front expiry, default at the money) and right: a debit that gains from time decay
    of the front month and from a rise in the back month's implied vol.  Closed by ``exits`` (``dte_exit``
    counts days left on the front month); a package whose front leg settled is closed the next bar."""

    kind: Literal["calendar"] = "calendar"
    right: Literal["C", "P"] = "C"
    strike: StrikeRule = StrikeRule(by="atm", value=0.0)
    front: DteWindow = DteWindow(min=20, max=40, target=30)
    back: DteWindow = DteWindow(min=50, max=100, target=60)
    exits: CalendarExits = CalendarExits()
    sizing: SizingConfig = SizingConfig(method="risk", risk_fraction=0.01)

    @model_validator(mode="after")
    def _order(self) -> CalendarConfig:
        if self.back.min <= self.front.max:
            raise ValueError(f"back.min ({self.back.min}) must be beyond front.max ({self.front.max}): the back "
                             "month must expire after the front month")
        return self


class EmaCrossoverConfig(_Model):
    """Buy a call when the fast EMA crosses above the slow one, a put when it crosses below (backtrader's
    EMA and CrossOver on the close); expiry: the first third-Friday monthly at least ``min_dte`` away."""

    kind: Literal["ema_crossover"] = "ema_crossover"
    fast: Annotated[int, Field(ge=2, le=400)] = 20
    slow: Annotated[int, Field(ge=3, le=800)] = 50
    direction: Literal["both", "calls_only", "puts_only"] = "both"
    strike: StrikeRule = StrikeRule(by="atm", value=0.0)
    min_dte: Annotated[int, Field(ge=1, le=400)] = 30
    exits: ExitRules = ExitRules(profit_target=1.0, stop_loss=0.5, dte_exit=5)
    close_on_opposite: bool = True
    sizing: SizingConfig = SizingConfig(method="risk", risk_fraction=0.02)

    @model_validator(mode="after")
    def _order(self) -> EmaCrossoverConfig:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class LongPremiumExits(ExitRules):
    profit_target: Annotated[float, Field(gt=0.0, le=10.0)] | None = 0.5
    stop_loss: Annotated[float, Field(gt=0.0, le=20.0)] | None = 0.5
    time_exit: Annotated[float, Field(gt=0.0, le=1.0)] | None = 0.5
    exit_regimes: list[Regime] = ["iv_contraction", "neutral"]


class IvRankRouterConfig(_Model):
    """Adaptive IV-rank router (decides when flat, once per bar).

    * regime ``neutral`` → stand aside;
    * IV rank >= ``sell_above`` and regime in ``sell_regimes`` → sell premium (``sell_structure``);
    * IV rank <= ``buy_below`` and regime in ``buy_regimes`` (the regime says IV will expand) → buy
      premium (``buy_structure``): an ATM ``straddle``, a ``strangle`` at ``strangle_delta``, a
      ``call_debit_spread`` or ``put_debit_spread`` (long at the money, short ``debit_width`` further out),
      or ``debit_spreads`` (both: the long straddle with short wings, cheaper and of defined cost);
    * contracts = ``base`` sizing x regime multiplier x confidence multiplier (:mod:`risk.sizing`);
      confidence is ``high`` beyond ``strong_sell``/``strong_buy``, else ``medium``.
    """

    kind: Literal["iv_rank_router"] = "iv_rank_router"
    sell_above: Fraction = 0.5
    strong_sell: Fraction = 0.8
    buy_below: Fraction = 0.2
    strong_buy: Fraction = 0.05
    sell_regimes: list[Regime] = ["high_vol", "iv_contraction", "low_vol"]
    buy_regimes: list[Regime] = ["iv_expansion"]
    sell_structure: Literal["iron_condor", "put_credit_spread"] = "iron_condor"
    buy_structure: Literal["straddle", "strangle", "call_debit_spread", "put_debit_spread", "debit_spreads"] = \
        "straddle"
    short_delta: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.16
    strangle_delta: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.30
    width: WidthRule = WidthRule(pct=0.02)
    debit_width: WidthRule = WidthRule(pct=0.03)
    dte: DteWindow = DteWindow(min=30, max=50, target=45)
    sell_exits: CreditSpreadExits = CreditSpreadExits()
    buy_exits: LongPremiumExits = LongPremiumExits()
    base: SizingConfig = SizingConfig(method="risk", risk_fraction=0.02)
    adaptive: AdaptiveSizing = AdaptiveSizing()

    @model_validator(mode="after")
    def _thresholds(self) -> IvRankRouterConfig:
        if not self.buy_below < self.sell_above:
            raise ValueError("buy_below must be below sell_above")
        if self.strong_sell < self.sell_above:
            raise ValueError("strong_sell must be at least sell_above")
        if self.strong_buy > self.buy_below:
            raise ValueError("strong_buy must be at most buy_below")
        return self


StrategyConfig = Annotated[
    CoveredCallConfig
    | ProtectivePutConfig
    | BuyWriteConfig
    | PutWriteConfig
    | PutCreditSpreadConfig
    | IronCondorConfig
    | EmaCrossoverConfig
    | IvRankRouterConfig
    | ButterflyConfig
    | CalendarConfig,
    Field(discriminator="kind"),
]


class TrackingConfig(_Model):
    experiment: str = "options_backtest"
    run_name: str | None = None


class OutputConfig(_Model):
    plots: bool = True
    tearsheet: bool = True  # quantstats' HTML tearsheet of the daily returns (as equity sweeps write)
    directory: str | None = None  # None: $QUANTLAKE_HOME/reports/options/<name>-<time>-<run id> (one per run)


class OptionsBacktestConfig(_Model):
    """One option backtest: an underlying, a date range, a strategy and the account's rules."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")] = "options_backtest"
    underlying: str
    start: dt.date
    end: dt.date
    initial_cash: Annotated[float, Field(gt=0.0)] = 1_000_000.0
    strategy: StrategyConfig
    chain: ChainConfig = ChainConfig()
    market: MarketConfig = MarketConfig()
    execution: ExecutionConfig = ExecutionConfig()
    commissions: Commissions = Commissions()
    margin: MarginConfig = MarginConfig()
    interest: InterestConfig = InterestConfig()
    sizing: SizingSpec | None = None  # overrides the strategy's own sizing (risk.position_sizing; max-loss budget)
    tracking: TrackingConfig = TrackingConfig()
    outputs: OutputConfig = OutputConfig()
    risk_limits: Limits | None = None  # opt-in pre-trade limits on openings (backtests.options.limits)

    @field_validator("risk_limits", mode="before")
    @classmethod
    def _limits(cls, v: Any) -> Any:
        try:  # "Limits.max_theta: ..." is reported as "risk_limits: max_theta: ..."
            return Limits.model_validate(v) if isinstance(v, dict) else v
        except ConfigError as exc:
            raise ValueError(str(exc).replace("Limits.", "")) from None

    @model_validator(mode="before")
    @classmethod
    def _legacy_chains(cls, data: Any) -> Any:
        """Configs (and recorded runs) written before ``chain.source``: ``chains: {mode: ...}``."""
        if not isinstance(data, dict) or "chains" not in data:
            return data
        data = dict(data)
        legacy = data.pop("chains")
        if "chain" in data:
            raise ValueError("chains: replaced by chain.source; give only chain")
        mode = legacy.get("mode", "observed_else_modeled") if isinstance(legacy, dict) else legacy
        if mode not in LEGACY_CHAIN_MODES:
            raise ValueError(f"chains.mode: {mode!r} is not one of {sorted(LEGACY_CHAIN_MODES)} (now chain.source)")
        data["chain"] = {"source": LEGACY_CHAIN_MODES[mode]}
        return data

    @field_validator("underlying")
    @classmethod
    def _underlying(cls, v: str) -> str:
        return _symbol(v)

    @model_validator(mode="after")
    def _range(self) -> OptionsBacktestConfig:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    @property
    def settlement(self) -> Literal["cash", "physical"]:
        if self.market.settlement != "auto":
            return self.market.settlement
        return "cash" if self.underlying.startswith("^") or self.underlying in CASH_SETTLED_INDEXES else "physical"


# ------------------------------------------------------------------------------------------ loading
def describe_errors(exc: ValidationError) -> str:
    """Every validation error of ``exc`` as ``field.path: message`` (joined by ``; ``)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(config)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_config(data: Any, source: str = "config") -> OptionsBacktestConfig:
    """Validate a mapping (already parsed YAML/JSON, or keyword data) as :class:`OptionsBacktestConfig`."""
    if isinstance(data, OptionsBacktestConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}")
    try:
        return OptionsBacktestConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid options backtest {source}: {describe_errors(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"invalid options backtest {source}: {exc}") from None


def load_config(path: str | Path) -> OptionsBacktestConfig:
    """Read a ``.yaml``/``.yml``/``.json`` file and validate it (errors name the file and the field)."""
    return parse_config(read_file(path), source=str(path))
