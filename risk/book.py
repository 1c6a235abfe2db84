"""The objects risk checks talk about: :class:`Order`, :class:`ComboOrder`, :class:`Position`,
:class:`Account`, and the vectorized arithmetic of a book (exposure, dollar Greeks, maximum loss).

Units (DESIGN §5)
-----------------
* ``qty``: shares for stock, contracts for options.  Orders carry a positive ``qty`` and a ``side``;
  positions carry a signed ``qty`` (negative = short).
* ``price``: per unit of the instrument — the share price, or the option premium per share.  For a
  position it is the current **mark**, not the entry price (risk is measured from where the book is now).
* ``multiplier``: 1 for stock, 100 for options unless given.
* ``greeks``: of **one** unit of the instrument per share of underlying, in the raw units of
  ``features.pricing.bs_greeks`` (delta ∂V/∂S, gamma ∂²V/∂S², vega ∂V/∂σ per 1.00 of vol, theta per
  year).  A position's Greeks are these × signed qty × multiplier.
* For an option, ``symbol`` is the **underlying** and (``right``, ``strike``, ``expiry``) name the contract;
  ``underlying_price`` is required.  ``exercise`` (``european``/``american``) is how stress tests and VaR
  reprice it; unset, options on an index (``^…``, cash-settled) are European and the rest American.
* ``group``: legs entered as one position (a spread, a condor; the backtester's position id) share it.
  Informational: exposure limits already measure an underlying's option legs together (see below).

Derived figures (all in account currency)
-----------------------------------------
* exposure — delta-adjusted notional: stock ``qty·price·mult``; option ``delta·S·qty·mult``, or, when the
  option has no Greeks, ``±qty·S·mult`` (|delta| ≤ 1, so this bounds the true figure; the sign is that of a
  call/put, long/short).
* dollar delta = delta·S·qty·mult; dollar gamma = gamma·S²·qty·mult / 100 (change of dollar delta for a 1 %
  move); vega per vol point = vega·qty·mult / 100; theta per day = theta·qty·mult / 365.
* maximum loss — see :func:`max_loss`.
* gross exposure of an underlying that has options: the sum of its instruments' absolute exposures, but at
  most the maximum loss of everything held on it (:func:`expiry_payoff_max_loss`) — a defined-risk structure
  counts by what it can lose, not by its legs' notionals (a 5-wide put spread on a $450 stock is $500 less
  the credit at risk, not 2 × $45,000 of notional).  Stock-only underlyings are unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from quantlake.errors import InvalidSymbolError
from quantlake.tables import validate_symbol
from risk._model import RiskModel

OPTION_MULTIPLIER = 100.0
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class Greeks(RiskModel):
    """Greeks of one unit (one option on one share), raw DESIGN §5 units, as ``bs_greeks`` returns them."""

    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0


class Instrument(RiskModel):
    """Fields common to orders and positions (see the module docstring for units)."""

    symbol: str
    price: NonNegFloat
    multiplier: PositiveFloat = 1.0
    sector: str | None = None
    right: Literal["C", "P"] | None = None
    strike: PositiveFloat | None = None
    expiry: dt.date | None = None
    underlying_price: PositiveFloat | None = None
    iv: PositiveFloat | None = None
    greeks: Greeks | None = None
    max_loss: NonNegFloat | None = None
    stop_price: NonNegFloat | None = None
    exercise: Literal["european", "american"] | None = None
    group: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _option_multiplier(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("right") is not None and data.get("multiplier") is None:
            data = {**data, "multiplier": OPTION_MULTIPLIER}
        return data

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        try:
            return validate_symbol(value)
        except InvalidSymbolError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("right", mode="before")
    @classmethod
    def _right(cls, value: Any) -> Any:
        return value.strip().upper()[:1] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _option_fields(self) -> Instrument:
        fields = {"right": self.right, "strike": self.strike, "expiry": self.expiry}
        given = [k for k, v in fields.items() if v is not None]
        if given and len(given) < 3:
            missing = sorted(set(fields) - set(given))
            raise ValueError(f"an option needs right, strike and expiry; missing {missing}")
        if self.is_option and self.underlying_price is None:
            raise ValueError("an option needs underlying_price (the underlying's price now)")
        return self

    @property
    def is_option(self) -> bool:
        return self.right is not None

    @property
    def key(self) -> tuple[str, str | None, float | None, dt.date | None]:
        """What makes two orders/positions the same instrument."""
        return (self.symbol, self.right, self.strike, self.expiry)

    @property
    def spot(self) -> float:
        """Price of the underlying: ``underlying_price`` for options, ``price`` for stock."""
        return float(self.underlying_price if self.underlying_price is not None else self.price)

    def describe(self) -> str:
        if self.is_option:
            return f"{self.symbol} {self.expiry} {self.strike:g}{self.right}"
        return self.symbol


class Order(Instrument):
    """One instrument to buy or sell.  ``max_loss`` (currency, whole order) overrides the computed one;
    ``stop_price`` bounds the loss at ``|price - stop| · qty · mult`` (gaps through the stop are ignored)."""

    qty: PositiveFloat
    side: Literal["buy", "sell"]

    @field_validator("side", mode="before")
    @classmethod
    def _side(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side == "buy" else -self.qty


class ComboOrder(RiskModel):
    """Several legs entered as one position (a spread, a condor, a covered call).

    ``max_loss`` (currency) overrides the computed one — give it for calendars and diagonals, whose
    maximum loss the expiry-payoff rule of :func:`max_loss` cannot see.
    """

    legs: Annotated[tuple[Order, ...], Field(min_length=1)]
    max_loss: NonNegFloat | None = None
    tag: str = ""

    @model_validator(mode="after")
    def _one_underlying(self) -> ComboOrder:
        if len({leg.symbol for leg in self.legs}) > 1:
            raise ValueError("all legs of a combo must share one underlying symbol")
        return self

    @property
    def symbol(self) -> str:
        return self.legs[0].symbol


class Position(Instrument):
    """An open position: signed ``qty`` (negative = short) marked at ``price``."""

    qty: float

    @field_validator("qty")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0 or not np.isfinite(value):
            raise ValueError("qty must be a finite non-zero number (negative = short)")
        return value

    @property
    def signed_qty(self) -> float:
        return self.qty


class Account(RiskModel):
    """Account figures risk checks use: ``equity`` for every limit, ``peak_equity`` for drawdown control.
    ``cash`` is carried for buying-power checks (execution's broker adapters, the option engine's margin)."""

    equity: PositiveFloat
    cash: float = 0.0
    peak_equity: PositiveFloat | None = None

    @property
    def drawdown(self) -> float:
        """Current drawdown from the peak as a positive fraction (0 at a new high)."""
        peak = max(self.peak_equity or self.equity, self.equity)
        return 1.0 - self.equity / peak


Leg = Order | Position


# ----------------------------------------------------------------------------------- vectorized book
@dataclass(frozen=True)
class BookArrays:
    """Column arrays of a list of legs (orders as signed quantities), for vectorized figures."""

    symbol: npt.NDArray[np.object_]
    sector: npt.NDArray[np.object_]
    units: npt.NDArray[np.float64]  # signed qty × multiplier
    price: npt.NDArray[np.float64]
    spot: npt.NDArray[np.float64]
    is_option: npt.NDArray[np.bool_]
    is_call: npt.NDArray[np.bool_]
    strike: npt.NDArray[np.float64]
    expiry: npt.NDArray[np.object_]
    has_greeks: npt.NDArray[np.bool_]
    delta: npt.NDArray[np.float64]
    gamma: npt.NDArray[np.float64]
    vega: npt.NDArray[np.float64]
    theta: npt.NDArray[np.float64]

    @classmethod
    def of(cls, legs: Sequence[Leg]) -> BookArrays:
        def col(values: Iterable[Any], dtype: Any = float) -> Any:
            return np.array(list(values), dtype=dtype)

        greeks = [leg.greeks for leg in legs]
        opt = col((leg.is_option for leg in legs), bool)
        stock_delta = np.where(opt, np.nan, 1.0)  # stock: delta 1 per share, other Greeks 0
        return cls(
            symbol=col((leg.symbol for leg in legs), object),
            sector=col((leg.sector for leg in legs), object),
            units=col(leg.signed_qty * leg.multiplier for leg in legs),
            price=col(leg.price for leg in legs),
            spot=col(leg.spot for leg in legs),
            is_option=opt,
            is_call=col((leg.right == "C" for leg in legs), bool),
            strike=col((leg.strike if leg.strike is not None else np.nan) for leg in legs),
            expiry=col((leg.expiry for leg in legs), object),
            has_greeks=~opt | col((g is not None for g in greeks), bool),
            delta=np.where(opt, col(g.delta if g else np.nan for g in greeks), stock_delta),
            gamma=np.where(opt, col(g.gamma if g else np.nan for g in greeks), 0.0),
            vega=np.where(opt, col(g.vega if g else np.nan for g in greeks), 0.0),
            theta=np.where(opt, col(g.theta if g else np.nan for g in greeks), 0.0),
        )

    def subset(self, mask: npt.NDArray[np.bool_]) -> BookArrays:
        """The legs where ``mask`` is true (cheaper than building the arrays again from the legs)."""
        return BookArrays(**{f.name: getattr(self, f.name)[mask] for f in dataclasses.fields(self)})

    @property
    def exposure(self) -> npt.NDArray[np.float64]:
        """Delta-adjusted notional per leg (see the module docstring for options without Greeks)."""
        stock = self.units * self.price
        sign = np.where(self.is_call, 1.0, -1.0)
        fallback = sign * self.units * self.spot
        option = np.where(self.has_greeks, self.delta * self.spot * self.units, fallback)
        return np.where(self.is_option, option, stock)

    @property
    def dollar_delta(self) -> npt.NDArray[np.float64]:
        return np.where(self.is_option, self.delta * self.spot * self.units, self.units * self.price)

    @property
    def dollar_gamma(self) -> npt.NDArray[np.float64]:
        return self.gamma * self.spot**2 * self.units / 100.0

    @property
    def vega_per_point(self) -> npt.NDArray[np.float64]:
        return self.vega * self.units / 100.0

    @property
    def theta_per_day(self) -> npt.NDArray[np.float64]:
        """Time decay per calendar day in currency (theta is per year, DESIGN §5)."""
        return self.theta * self.units / 365.0


def expiry_payoff_max_loss(arrays: BookArrays) -> float:
    """Largest loss of legs on ONE underlying if held until the options expire, measured from today's prices.

    P&L(S) = Σ units · (value_at_expiry(S) − price), with value = S for stock and intrinsic value for
    options.  P&L is piecewise linear in S with kinks at the strikes, so its minimum over S ≥ 0 is at
    S = 0, at a strike, or −∞ if the slope above the highest strike is negative (short calls or short
    stock not covered: unlimited loss).  Exact for stock plus options of one expiry (verticals, condors,
    butterflies, covered calls); for several expiries later-dated options are valued at intrinsic value
    too, which overstates the loss of long calendars and understates that of short ones — give
    ``max_loss`` for those.
    """
    if arrays.units.size == 0:
        return 0.0
    strikes = arrays.strike[arrays.is_option]
    s = np.concatenate(([0.0], np.unique(strikes)))[:, None]  # candidate underlying prices, one per row
    call = np.maximum(s - arrays.strike, 0.0)
    put = np.maximum(arrays.strike - s, 0.0)
    value = np.where(arrays.is_option, np.where(arrays.is_call, call, put), s)
    pnl = ((value - arrays.price) * arrays.units).sum(axis=1)
    slope_up = float(arrays.units[~arrays.is_option | arrays.is_call].sum())
    if slope_up < -1e-12:
        return float("inf")
    return float(max(0.0, -pnl.min()))


def max_loss(legs: Sequence[Leg], override: float | None = None) -> float:
    """Maximum loss (currency) of legs on one underlying, in this order of precedence:

    1. ``override`` (a combo's ``max_loss``), else, for a single leg, its own ``max_loss``;
    2. a single leg with ``stop_price``: ``|price − stop| · |qty| · mult``;
    3. :func:`expiry_payoff_max_loss` — long stock loses its value, long options their premium, a short
       put ``(strike − premium) · mult`` per contract, short calls / short stock are unlimited (``inf``).
    """
    if override is not None:
        return float(override)
    if len(legs) == 1:
        leg = legs[0]
        if leg.max_loss is not None:
            return float(leg.max_loss)
        if leg.stop_price is not None:
            return abs(leg.price - leg.stop_price) * abs(leg.signed_qty) * leg.multiplier
    return expiry_payoff_max_loss(BookArrays.of(legs))


def book_max_loss(legs: Sequence[Leg]) -> float:
    """Maximum loss of a whole book (positions, and orders as if filled): legs with their own ``max_loss``
    or ``stop_price`` count that; the rest are grouped by underlying and measured together (so spreads
    and covered calls net) with :func:`expiry_payoff_max_loss`."""
    explicit = sum(max_loss([leg]) for leg in legs if leg.max_loss is not None or leg.stop_price is not None)
    rest = [leg for leg in legs if leg.max_loss is None and leg.stop_price is None]
    if not rest:
        return explicit
    arrays = BookArrays.of(rest)  # once for the book; each underlying with options is a slice of it
    index: dict[str, int] = {}
    codes = np.array([index.setdefault(str(sym), len(index)) for sym in arrays.symbol], dtype=np.intp)
    n = len(index)
    with_options = np.bincount(codes, weights=arrays.is_option.astype(float), minlength=n) > 0
    # stock only: P&L(S) = Σ units·(S − price) is linear; its minimum over S ≥ 0 is at S = 0 unless the
    # net position is short (unlimited loss) -- what expiry_payoff_max_loss gives, vectorized over symbols
    net_units = np.bincount(codes, weights=arrays.units, minlength=n)
    cost = np.bincount(codes, weights=arrays.units * arrays.price, minlength=n)
    stock_loss = np.where(net_units < -1e-12, np.inf, np.maximum(cost, 0.0))
    total = float(stock_loss[~with_options].sum())
    for code in np.flatnonzero(with_options):
        total += expiry_payoff_max_loss(arrays.subset(codes == code))
    return explicit + total


def legs_of(order: Order | ComboOrder) -> tuple[Order, ...]:
    return order.legs if isinstance(order, ComboOrder) else (order,)


def net_positions(positions: Sequence[Position], orders: Sequence[Order]) -> dict[tuple[Any, ...], float]:
    """Signed quantity per instrument key after applying ``orders`` (keys that net to zero are dropped)."""
    qty: dict[tuple[Any, ...], float] = {}
    legs: list[Leg] = [*positions, *orders]
    for leg in legs:
        qty[leg.key] = qty.get(leg.key, 0.0) + leg.signed_qty
    return {k: v for k, v in qty.items() if abs(v) > 1e-12}


def is_reducing(order: Order | ComboOrder, positions: Sequence[Position]) -> bool:
    """True when every leg only shrinks an existing position (same instrument, opposite sign, no flip)."""
    held: dict[tuple[Any, ...], float] = {}
    for p in positions:
        held[p.key] = held.get(p.key, 0.0) + p.qty
    for leg in legs_of(order):
        q = held.get(leg.key, 0.0)
        if q == 0 or np.sign(q) == np.sign(leg.signed_qty) or abs(leg.signed_qty) > abs(q) + 1e-12:
            return False
    return True
