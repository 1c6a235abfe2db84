"""Pre-trade risk limits: one :func:`validate` that says whether an order may go to the market and lists
**every** limit it breaks (not only the first).

Used by execution before any order and by backtests that opt in.  The objects it takes are defined in
:mod:`risk.book` and re-exported here: :class:`Order` (or :class:`ComboOrder` for legs entered as one
position), :class:`Account`, :class:`Position`.

Rules
-----
* Fractions are of current account equity.  Exposures are delta-adjusted (see :mod:`risk.book`).
* A limit fails when the figure **after** the trade is above the limit **and** the trade makes it worse
  (after > before).  So an order that reduces a breach is allowed — you can always trade back towards
  compliance — while an order that creates or deepens one is not.
* Drawdown control: at ``drawdown_reduce_at`` the per-trade risk budget is multiplied by
  ``drawdown_reduce_factor`` (and :attr:`LimitCheck.size_multiplier` tells sizing to do the same); at
  ``drawdown_halt_at`` every order that adds risk fails.  An order that only reduces existing positions is
  never stopped by drawdown, per-trade risk, correlation or position count.
* A limit that cannot be checked for lack of data (an option without Greeks under a Greek limit, an order
  without sector under a sector limit, no return history under the correlation limit) fails with a
  "cannot check" reason, unless ``fail_on_missing_data=False`` or the order only reduces positions, which
  turn it into a warning.
* Gross exposure nets an order with a position in the same instrument (selling half a long halves it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, model_validator

from quantlake.errors import ConfigError
from risk._model import RiskModel
from risk.book import (
    Account,
    BookArrays,
    ComboOrder,
    Greeks,
    Leg,
    Order,
    Position,
    book_max_loss,
    expiry_payoff_max_loss,
    is_reducing,
    legs_of,
    max_loss,
    net_positions,
)

__all__ = [
    "Account",
    "Breach",
    "ComboOrder",
    "Greeks",
    "LimitCheck",
    "Limits",
    "Order",
    "Position",
    "drawdown_multiplier",
    "validate",
]

Frac = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
EPS = 1e-9


class Limits(RiskModel):
    """Risk limits; ``None`` switches a limit off.  Defaults suit a cash account: no leverage, reduce size
    by half after a 10 % drawdown, halt new risk after 20 %.

    * ``max_positions`` — open instruments (each option contract and each stock counts once).
    * ``max_risk_per_trade`` / ``max_portfolio_risk`` — maximum loss (:func:`risk.book.max_loss`) of the
      order / of the whole book after it, as a fraction of equity.
    * ``max_gross_exposure`` / ``max_net_exposure`` — Σ|exposure| / equity and |Σ exposure| / equity
      (leverage).
    * ``max_symbol_concentration`` / ``max_sector_concentration`` — |net exposure| of one underlying (stock
      and its options) / of one sector, over equity.
    * ``max_delta`` — |Σ dollar delta| / equity; ``max_gamma`` — |Σ dollar gamma per 1 % move| / equity;
      ``max_vega`` — |Σ vega per vol point| / equity; ``max_theta`` — |Σ theta per day| / equity (the
      book's daily time decay, earned or paid).  They need Greeks on every option.  (``max_delta`` equals
      the net exposure when every option has Greeks; it differs in refusing to guess without them.)
    * Option positions: ``max_risk_per_trade`` is the maximum loss of each new position (a spread or
      condor entered as a :class:`ComboOrder` is one position, measured by its payoff at expiry), and the
      gross exposure counts an underlying with short options at most by its maximum loss (a defined-risk
      spread is not leverage: :mod:`risk.book`).
    * ``max_correlation`` — the correlation of the new position's daily P&L (its underlying's returns,
      signed by its delta) with the book's (returns weighted by the book's exposures) over the last
      ``correlation_lookback`` days, at least ``correlation_min_periods`` of them.
    """

    max_positions: Annotated[int, Field(ge=1)] | None = None
    max_risk_per_trade: Frac | None = None
    max_portfolio_risk: Frac | None = None
    max_gross_exposure: Frac | None = 1.0
    max_net_exposure: Frac | None = 1.0
    max_symbol_concentration: Frac | None = None
    max_sector_concentration: Frac | None = None
    max_delta: Frac | None = None
    max_gamma: Frac | None = None
    max_vega: Frac | None = None
    max_theta: Frac | None = None
    drawdown_reduce_at: Annotated[float, Field(gt=0.0, lt=1.0)] | None = 0.10
    drawdown_reduce_factor: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    drawdown_halt_at: Annotated[float, Field(gt=0.0, lt=1.0)] | None = 0.20
    max_correlation: Annotated[float, Field(ge=-1.0, le=1.0)] | None = None
    correlation_lookback: Annotated[int, Field(ge=5)] = 63
    correlation_min_periods: Annotated[int, Field(ge=3)] = 20
    fail_on_missing_data: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Limits:
        if (
            self.drawdown_reduce_at is not None
            and self.drawdown_halt_at is not None
            and self.drawdown_reduce_at >= self.drawdown_halt_at
        ):
            raise ValueError("drawdown_reduce_at must be below drawdown_halt_at")
        if self.correlation_min_periods > self.correlation_lookback:
            raise ValueError("correlation_min_periods must not exceed correlation_lookback")
        return self

    @classmethod
    def unlimited(cls) -> Limits:
        """Every limit off (useful as a base for ``model_copy(update=...)``)."""
        return cls(
            max_gross_exposure=None, max_net_exposure=None, drawdown_reduce_at=None, drawdown_halt_at=None
        )


@dataclass(frozen=True)
class Breach:
    """One failed limit: ``code`` is the :class:`Limits` field name (``drawdown_halt_at`` for the halt)."""

    code: str
    message: str
    value: float
    limit: float


@dataclass(frozen=True)
class LimitCheck:
    """The verdict of :func:`validate`.  ``bool(check)`` is ``check.passed``."""

    passed: bool
    reasons: tuple[Breach, ...]
    warnings: tuple[str, ...] = ()
    size_multiplier: float = 1.0
    metrics: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # name -> (before, after)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(b.code for b in self.reasons)

    def summary(self) -> str:
        if self.passed:
            return "passed" + (f" (warnings: {'; '.join(self.warnings)})" if self.warnings else "")
        return "rejected: " + "; ".join(b.message for b in self.reasons)


def drawdown_multiplier(account: Account, limits: Limits) -> float:
    """1 below ``drawdown_reduce_at``, ``drawdown_reduce_factor`` from there, 0 from ``drawdown_halt_at``."""
    dd = account.drawdown
    if limits.drawdown_halt_at is not None and dd >= limits.drawdown_halt_at - EPS:
        return 0.0
    if limits.drawdown_reduce_at is not None and dd >= limits.drawdown_reduce_at - EPS:
        return limits.drawdown_reduce_factor
    return 1.0


# ------------------------------------------------------------------------------------------ figures
def _figures(legs: Sequence[Leg], equity: float) -> dict[str, float]:
    """Book-level figures (fractions of equity) for the limit checks; NaN where data is missing."""
    out: dict[str, float] = {}
    if not legs:
        return {"gross": 0.0, "net": 0.0, "delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0}
    a = BookArrays.of(legs)
    exposure = a.exposure
    out["gross"] = _gross(legs, a, exposure) / equity
    out["net"] = abs(float(exposure.sum())) / equity
    out["delta"] = abs(float(a.dollar_delta.sum())) / equity
    out["gamma"] = abs(float(a.dollar_gamma.sum())) / equity
    out["vega"] = abs(float(a.vega_per_point.sum())) / equity
    out["theta"] = abs(float(a.theta_per_day.sum())) / equity
    return out


def _gross(legs: Sequence[Leg], a: BookArrays, exposure: npt.NDArray[np.float64]) -> float:
    """Σ |exposure| of each instrument (orders net with positions in the same one), per underlying; an
    underlying holding short options counts at most its maximum loss at expiry (:mod:`risk.book`: a
    defined-risk spread by what it can lose, not by its legs' notionals)."""
    keys = [leg.key for leg in legs]
    index: dict[object, int] = {}
    codes = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.intp)
    by_instrument = np.abs(np.bincount(codes, weights=exposure, minlength=len(index)))
    instrument_symbol = np.empty(len(index), dtype=object)
    instrument_symbol[codes] = a.symbol
    total = 0.0
    for sym in dict.fromkeys(a.symbol.tolist()):
        gross = float(by_instrument[instrument_symbol == sym].sum())
        mask = a.symbol == sym
        if (a.is_option & mask & (a.units < 0)).any():
            gross = min(gross, expiry_payoff_max_loss(a.subset(mask)))
        total += gross
    return total


def _group_sum(values: npt.NDArray[np.float64], keys: Sequence[object]) -> npt.NDArray[np.float64]:
    """Sum of ``values`` per distinct key, in order of first appearance (numpy: this runs per order)."""
    index: dict[object, int] = {}
    codes = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.intp)
    sums: npt.NDArray[np.float64] = np.bincount(codes, weights=values, minlength=len(index)).astype(float)
    return sums


def _by_group(legs: Sequence[Leg], keys: Sequence[object], equity: float) -> pd.Series:
    """|net exposure| per group (symbol or sector) over equity."""
    if not legs:
        return pd.Series(dtype=float)
    names = list(dict.fromkeys(keys))
    sums = _group_sum(BookArrays.of(legs).exposure, list(keys))
    return pd.Series(np.abs(sums) / equity, index=pd.Index(names, dtype=object))


def _correlation(
    legs_new: Sequence[Order], book: Sequence[Position], returns: pd.DataFrame, limits: Limits
) -> float | str:
    """Correlation of the new position's P&L with the book's, or a string saying why it cannot be had."""
    symbol = legs_new[0].symbol
    book_symbols = [p.symbol for p in book]
    exp_book = pd.Series(
        _group_sum(BookArrays.of(book).exposure, book_symbols), index=list(dict.fromkeys(book_symbols))
    )
    need = sorted({symbol, *exp_book.index})
    missing = [s for s in need if s not in returns.columns]
    if missing:
        return f"no return history for {', '.join(missing)}"
    window = returns[need].tail(limits.correlation_lookback).dropna()
    if len(window) < limits.correlation_min_periods:
        return f"only {len(window)} overlapping return days (need {limits.correlation_min_periods})"
    book_pnl = window[list(exp_book.index)].to_numpy() @ exp_book.to_numpy()
    new_sign = np.sign(BookArrays.of(legs_new).exposure.sum())
    new_pnl = window[symbol].to_numpy() * (new_sign or 1.0)
    if np.std(book_pnl) == 0 or np.std(new_pnl) == 0:
        return "a return series is constant"
    return float(np.corrcoef(new_pnl, book_pnl)[0, 1])


# ----------------------------------------------------------------------------------------- validate
def _check_types(order: object, account: object, positions: Sequence[object], limits: object) -> None:
    """Clear errors for arguments that are not the risk.book models (a dict or a float used to fail deep
    inside with AttributeError)."""
    if not isinstance(order, Order | ComboOrder):
        raise ConfigError(f"order must be a risk.book.Order or ComboOrder, got {type(order).__name__}")
    if not isinstance(account, Account):
        raise ConfigError(f"account must be a risk.book.Account, got {type(account).__name__}")
    for i, p in enumerate(positions):
        if not isinstance(p, Position):
            raise ConfigError(f"positions[{i}] must be a risk.book.Position, got {type(p).__name__}")
    if limits is not None and not isinstance(limits, Limits):
        raise ConfigError(f"limits must be a risk.limits.Limits, got {type(limits).__name__}")


def validate(
    order: Order | ComboOrder,
    account: Account,
    positions: Sequence[Position] = (),
    limits: Limits | None = None,
    returns: pd.DataFrame | None = None,
) -> LimitCheck:
    """Check ``order`` against ``limits`` for ``account`` holding ``positions``.

    ``returns`` (daily simple returns, one column per symbol, date index) is needed only for
    ``max_correlation``.  Returns a :class:`LimitCheck` with every failed limit in ``reasons``.
    """
    _check_types(order, account, positions, limits)
    limits = limits or Limits()
    equity = account.equity
    legs = legs_of(order)
    book: list[Leg] = list(positions)
    after: list[Leg] = [*positions, *legs]
    reducing = is_reducing(order, positions)
    size_mult = drawdown_multiplier(account, limits)
    reasons: list[Breach] = []
    warnings: list[str] = []
    metrics: dict[str, tuple[float, float]] = {}

    def fail(code: str, message: str, value: float, limit: float) -> None:
        reasons.append(Breach(code, message, value, limit))

    def missing(code: str, why: str) -> None:
        msg = f"cannot check {code}: {why}"
        if limits.fail_on_missing_data and not reducing:
            fail(code, msg, math.nan, math.nan)
        else:
            warnings.append(msg)

    def worse(code: str, name: str, before: float, now: float, limit: float | None) -> None:
        metrics[name] = (before, now)
        if limit is not None and now > limit + EPS and now > before + EPS:
            fail(code, f"{name} {now:.4g} would exceed {limit:.4g} (now {before:.4g})", now, limit)

    # drawdown halt
    if not reducing and size_mult == 0.0 and limits.drawdown_halt_at is not None:
        fail(
            "drawdown_halt_at",
            f"drawdown {account.drawdown:.1%} ≥ {limits.drawdown_halt_at:.0%}: new risk is halted",
            account.drawdown,
            limits.drawdown_halt_at,
        )

    # position count
    n_before = len(net_positions(positions, ()))
    n_after = len(net_positions(positions, legs))
    if not reducing:
        worse("max_positions", "positions", n_before, n_after, limits.max_positions)

    # risk per trade (budget shrinks in a drawdown) and for the whole book
    combo_override = order.max_loss if isinstance(order, ComboOrder) else None
    trade_risk = 0.0 if reducing else max_loss(legs, combo_override) / equity
    metrics["trade_risk"] = (0.0, trade_risk)
    if limits.max_risk_per_trade is not None and not reducing:
        budget = limits.max_risk_per_trade * (size_mult if size_mult > 0 else 1.0)
        if trade_risk > budget + EPS:
            note = f" (reduced ×{size_mult:g} by drawdown)" if 0 < size_mult < 1 else ""
            fail(
                "max_risk_per_trade",
                f"trade risk {trade_risk:.4g} of equity exceeds {budget:.4g}{note}",
                trade_risk,
                budget,
            )
    if limits.max_portfolio_risk is not None:
        new_legs: list[Leg] = list(legs)
        if combo_override is not None:  # the combo's max loss counted once, on its first leg
            new_legs = [
                leg.model_copy(update={"max_loss": combo_override if i == 0 else 0.0})
                for i, leg in enumerate(legs)
            ]
        worse(
            "max_portfolio_risk",
            "portfolio risk",
            book_max_loss(positions) / equity,
            book_max_loss([*positions, *new_legs]) / equity,
            limits.max_portfolio_risk,
        )

    # exposures and Greeks
    fig_before, fig_after = _figures(book, equity), _figures(after, equity)
    worse(
        "max_gross_exposure",
        "gross exposure",
        fig_before["gross"],
        fig_after["gross"],
        limits.max_gross_exposure,
    )
    worse("max_net_exposure", "net exposure", fig_before["net"], fig_after["net"], limits.max_net_exposure)
    greek_limits = {"delta": limits.max_delta, "gamma": limits.max_gamma, "vega": limits.max_vega,
                    "theta": limits.max_theta}
    no_greeks = sorted({leg.describe() for leg in after if leg.is_option and leg.greeks is None})
    for greek, limit in greek_limits.items():
        if limit is None:
            continue
        if no_greeks:
            missing(f"max_{greek}", f"no greeks for {', '.join(no_greeks)}")
            continue
        worse(f"max_{greek}", f"portfolio {greek}", fig_before[greek], fig_after[greek], limit)

    # concentration
    symbol = legs[0].symbol
    sym_before = _by_group(book, [p.symbol for p in book], equity).get(symbol, 0.0)
    sym_after = _by_group(after, [p.symbol for p in after], equity).get(symbol, 0.0)
    worse(
        "max_symbol_concentration",
        f"{symbol} concentration",
        float(sym_before),
        float(sym_after),
        limits.max_symbol_concentration,
    )
    if limits.max_sector_concentration is not None:
        sector = legs[0].sector
        if sector is None:
            missing("max_sector_concentration", f"order for {symbol} has no sector")
        else:
            sec_book = [p for p in book if p.sector == sector]
            sec_after = [p for p in after if p.sector == sector]
            worse(
                "max_sector_concentration",
                f"sector {sector} concentration",
                float(_by_group(sec_book, [sector] * len(sec_book), equity).sum()),
                float(_by_group(sec_after, [sector] * len(sec_after), equity).sum()),
                limits.max_sector_concentration,
            )
            unlabeled = sorted({p.symbol for p in positions if p.sector is None})
            if unlabeled:
                warnings.append(f"positions without sector not counted: {', '.join(unlabeled)}")

    # correlation to the book
    if limits.max_correlation is not None and not reducing and positions:
        corr = (
            _correlation(legs, positions, returns, limits) if returns is not None else "no returns were given"
        )
        if isinstance(corr, str):
            missing("max_correlation", corr)
        else:
            metrics["correlation"] = (math.nan, corr)
            if corr > limits.max_correlation + EPS:
                fail(
                    "max_correlation",
                    f"correlation {corr:.2f} with the book exceeds {limits.max_correlation:.2f}",
                    corr,
                    limits.max_correlation,
                )

    return LimitCheck(not reasons, tuple(reasons), tuple(warnings), size_mult, metrics)
