"""Position sizing: how many units (shares, contracts) to trade.

Every function is a pure, vectorized formula: scalars give a float, numpy arrays and pandas Series give
the same shape back, so one call sizes a whole backtest.  Quantities are **non-negative whole lots**
(rounded down, never up: sizing must not exceed the budget); the direction of a trade is the order's side.
Fractions are decimals (``0.02`` = 2 %), volatilities annualized decimals (``0.20`` = 20 %).

Methods
-------
* :func:`fixed_quantity` — always the same number of units.
* :func:`percent_of_equity` — a fixed share of equity in notional.
* :func:`kelly_fraction` (win rate and payoff ratio), :func:`kelly_mean_variance` (mean and variance of
  returns), :func:`kelly_from_trades`, scaled by :func:`fractional_kelly`.
* :func:`realized_vol` and :func:`vol_target_leverage` — target annual volatility / realized volatility,
  capped at a maximum leverage.
* :func:`risk_based_quantity` — the units whose loss at the stop (or at the defined maximum) is a given
  share of equity; :func:`credit_spread_max_risk` / :func:`debit_spread_max_risk` give the maximum risk per
  share of an option spread and :func:`spread_contracts` the contracts (multiplier 100).
* :func:`regime_multiplier`, :func:`confidence_multiplier` and :func:`adaptive_quantity` — the regime and
  confidence scaling of the adaptive options design, configured by :class:`AdaptiveSizing`.

These are hand-written because each is a one-line closed form; no sizing library is installed that would
add anything but a dependency.  Tests check them against hand-worked numbers and numerical optimisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar, cast, overload

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, model_validator

from quantlake.errors import ConfigError
from risk._model import RiskModel
from risk.errors import UnknownRegimeError

Num = TypeVar("Num", float, npt.NDArray[np.float64], pd.Series)

REGIMES: tuple[str, ...] = ("low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral")
CONFIDENCE_LEVELS: tuple[str, ...] = ("low", "medium", "high")
Regime = Literal["low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral"]
Confidence = Literal["low", "medium", "high"]


# ---------------------------------------------------------------------------------------------- helpers
def _whole_lots(units: Num, lot_size: float) -> Num:
    """Round a non-negative amount of units down to whole lots; NaN and negatives become 0."""
    if lot_size <= 0:
        raise ConfigError(f"lot_size must be > 0, got {lot_size}")
    lots = np.floor(np.nan_to_num(np.asarray(units, dtype=float), nan=0.0, posinf=0.0) / lot_size + 1e-9)
    out = np.maximum(lots, 0.0) * lot_size
    return _like(out, units)


def _like(values: npt.NDArray[np.float64], template: Num) -> Num:
    """Return ``values`` in the container type of ``template`` (float, ndarray or Series)."""
    if isinstance(template, pd.Series):
        return cast(Num, pd.Series(values, index=template.index, name=template.name))
    if np.ndim(values) == 0 and not isinstance(template, np.ndarray):
        return cast(Num, float(values))
    return cast(Num, np.asarray(values, dtype=float))


def _check_fraction(name: str, value: float, upper: float = 1.0) -> None:
    _finite(name, value)
    if not (0.0 <= value <= upper):
        raise ConfigError(f"{name} must be between 0 and {upper}, got {value}")


def _finite(name: str, value: object) -> None:
    """A scalar argument must be a finite number: NaN or inf would size silently to 0 or to infinity.

    Arrays and Series may hold NaN where there is no data yet (e.g. before a symbol listed); those elements
    size to 0, as documented per function."""
    if isinstance(value, np.ndarray | pd.Series) and np.ndim(value) > 0:
        return
    try:
        ok = bool(np.isfinite(float(value)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {type(value).__name__} {value!r}") from None
    if not ok:
        raise ConfigError(f"{name} must be a finite number, got {value}")


# ------------------------------------------------------------------------------------- simple methods
def fixed_quantity(qty: float, lot_size: float = 1.0) -> float:
    """Always ``qty`` units (rounded down to whole lots)."""
    _finite("qty", qty)
    if qty < 0:
        raise ConfigError(f"qty must be a finite number >= 0, got {qty}")
    return float(_whole_lots(float(qty), lot_size))


def percent_of_equity(
    equity: float, fraction: float, price: Num, multiplier: float = 1.0, lot_size: float = 1.0
) -> Num:
    """Units whose notional ``units * price * multiplier`` is at most ``fraction`` of ``equity``.

    >>> percent_of_equity(100_000, 0.10, 250.0)   # 10 % of 100k in a $250 stock
    40.0
    """
    _finite("equity", equity)
    _finite("price", price)
    _check_fraction("fraction", fraction, upper=10.0)
    unit_value = np.asarray(price, dtype=float) * multiplier
    with np.errstate(divide="ignore", invalid="ignore"):
        units = np.where(unit_value > 0, equity * fraction / unit_value, 0.0)
    return _whole_lots(_like(units, price), lot_size)


# ---------------------------------------------------------------------------------------------- Kelly
def kelly_fraction(win_rate: Num, payoff_ratio: Num) -> Num:
    """Kelly fraction of equity to risk for a bet won with probability ``p`` paying ``b`` per unit lost.

    f* = p - (1 - p) / b, floored at 0 (a negative edge means no bet).  ``payoff_ratio`` is the average
    win divided by the average loss (both positive).  The result is the share of equity that may be *lost*
    on one trade: multiply by equity and divide by the loss per unit (stop distance, max loss) to get units.
    """
    _finite("win_rate", win_rate)
    _finite("payoff_ratio", payoff_ratio)
    p = np.asarray(win_rate, dtype=float)
    b = np.asarray(payoff_ratio, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ConfigError("win_rate must be between 0 and 1")
    if np.any(b <= 0):
        raise ConfigError("payoff_ratio must be > 0")
    f = np.maximum(p - (1.0 - p) / b, 0.0)
    return _like(f, win_rate)


def kelly_mean_variance(mean: Num, variance: Num, risk_free: float = 0.0) -> Num:
    """Continuous-time Kelly leverage f* = (mu - r) / sigma^2 (floored at 0).

    ``mean``, ``variance`` and ``risk_free`` must be in the same period (e.g. all annual).  The result is the
    notional as a multiple of equity that maximises expected log growth ``r + f (mu - r) - f^2 sigma^2 / 2``.
    """
    _finite("mean", mean)
    _finite("variance", variance)
    _finite("risk_free", risk_free)
    mu = np.asarray(mean, dtype=float)
    var = np.asarray(variance, dtype=float)
    if np.any(var <= 0):
        raise ConfigError("variance must be > 0")
    return _like(np.maximum((mu - risk_free) / var, 0.0), mean)


def kelly_from_trades(trade_returns: npt.ArrayLike) -> float:
    """Kelly fraction from a sample of trade results (win rate and average win / average loss).

    Zero results count as neither win nor loss.  Returns 0 when there are no losses or no wins to estimate
    from (no edge can be measured).
    """
    r = np.asarray(trade_returns, dtype=float)
    r = r[np.isfinite(r)]
    wins, losses = r[r > 0], r[r < 0]
    if wins.size == 0 or losses.size == 0:
        return 0.0
    p = wins.size / (wins.size + losses.size)
    return float(kelly_fraction(p, float(wins.mean() / -losses.mean())))


def fractional_kelly(kelly: Num, fraction: float = 0.5, cap: float = 1.0) -> Num:
    """``fraction`` of the full Kelly bet (half Kelly by default), capped at ``cap``.

    Full Kelly maximises growth but its drawdowns are deep and it is very sensitive to estimation error;
    half Kelly keeps ~3/4 of the growth rate with half the volatility.
    """
    _finite("kelly", kelly)
    _check_fraction("fraction", fraction)
    _finite("cap", cap)
    if cap < 0:
        raise ConfigError(f"cap must be >= 0, got {cap}")
    out = np.clip(np.asarray(kelly, dtype=float) * fraction, 0.0, cap)
    return _like(out, kelly)


# ------------------------------------------------------------------------------ volatility targeting
def realized_vol(
    returns: pd.Series, window: int = 20, periods_per_year: int = 252, min_periods: int | None = None
) -> pd.Series:
    """Annualized rolling standard deviation (ddof=1) of simple returns, known at the close of each date."""
    if window < 2:
        raise ConfigError(f"window must be >= 2, got {window}")
    std = returns.rolling(window, min_periods=min_periods or window).std(ddof=1)
    return std * np.sqrt(periods_per_year)


def vol_target_leverage(realized: Num, target_vol: float, max_leverage: float = 1.0) -> Num:
    """Leverage = ``target_vol / realized`` capped to ``[0, max_leverage]``.

    Both volatilities annualized decimals.  A realized volatility of 0 gives ``max_leverage``; a missing one
    (NaN, e.g. during the warm-up window) gives 0 — no estimate, no position.
    """
    _finite("target_vol", target_vol)
    _finite("max_leverage", max_leverage)
    if target_vol <= 0:
        raise ConfigError(f"target_vol must be > 0, got {target_vol}")
    if max_leverage < 0:
        raise ConfigError(f"max_leverage must be >= 0, got {max_leverage}")
    rv = np.asarray(realized, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lev = np.where(rv > 0, target_vol / rv, max_leverage)
    lev = np.where(np.isfinite(rv), np.clip(lev, 0.0, max_leverage), 0.0)
    return _like(lev, realized)


# ---------------------------------------------------------------------------------------- risk based
def risk_based_quantity(
    equity: float, risk_fraction: float, risk_per_unit: Num, multiplier: float = 1.0, lot_size: float = 1.0
) -> Num:
    """Units whose loss at the stop (or the defined maximum) is at most ``risk_fraction`` of equity.

    ``risk_per_unit`` is the loss of one unit per share of underlying (stop distance for a stock, maximum
    loss per share for an option spread); ``multiplier`` is 100 for US equity options.

    >>> risk_based_quantity(50_000, 0.01, 2.5)           # risk 1 % = $500 with a $2.50 stop
    200.0
    >>> risk_based_quantity(50_000, 0.02, 3.6, 100)      # $1,000 on spreads risking $360 each
    2.0
    """
    _finite("equity", equity)
    _finite("risk_per_unit", risk_per_unit)
    _check_fraction("risk_fraction", risk_fraction)
    per_unit = np.asarray(risk_per_unit, dtype=float) * multiplier
    with np.errstate(divide="ignore", invalid="ignore"):
        units = np.where(per_unit > 0, equity * risk_fraction / per_unit, 0.0)
    return _whole_lots(_like(units, risk_per_unit), lot_size)


def stop_risk_per_unit(entry: Num, stop: Num) -> Num:
    """Loss per unit if the stop is hit: ``|entry - stop|``."""
    _finite("entry", entry)
    _finite("stop", stop)
    return _like(np.abs(np.asarray(entry, dtype=float) - np.asarray(stop, dtype=float)), entry)


def credit_spread_max_risk(width: Num, credit: Num) -> Num:
    """Maximum loss per share of a credit vertical (or an iron condor's wider side): width - credit."""
    _finite("width", width)
    _finite("credit", credit)
    w, c = np.asarray(width, dtype=float), np.asarray(credit, dtype=float)
    if np.any(c > w) or np.any(c < 0):
        raise ConfigError("credit must be between 0 and the spread width")
    return _like(w - c, width)


def debit_spread_max_risk(debit: Num) -> Num:
    """Maximum loss per share of a debit spread (or a long option): the debit paid."""
    _finite("debit", debit)
    if np.any(np.asarray(debit, dtype=float) < 0):
        raise ConfigError("debit must be >= 0")
    return debit


def spread_contracts(
    equity: float, risk_fraction: float, max_risk_per_share: Num, multiplier: float = 100.0
) -> Num:
    """Option spread contracts so that ``contracts * max_risk_per_share * multiplier <= equity * risk``."""
    _finite("max_risk_per_share", max_risk_per_share)
    return risk_based_quantity(equity, risk_fraction, max_risk_per_share, multiplier, lot_size=1.0)


# ------------------------------------------------------------------------- regime and confidence scaling
class RegimeMultipliers(RiskModel):
    """Multiplier of the risk budget per market regime (labels of the regime feature table).

    Defaults, and why:

    * ``low_vol`` 1.0 — calm market, cheap options: the baseline size.
    * ``iv_contraction`` 1.0 — implied vol falling from a high level: the best environment for the
      defined-risk premium selling the router does; full size.
    * ``high_vol`` 0.5 — larger daily moves and gaps make the same number of contracts riskier; half size.
    * ``iv_expansion`` 0.5 — implied vol rising: short premium is losing and long premium is getting
      expensive; half size.
    * ``neutral`` 0.0 — no edge identified: stand aside, as the adaptive IV-rank router does.

    Every multiplier must be in [0, 2].
    """

    low_vol: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    high_vol: Annotated[float, Field(ge=0.0, le=2.0)] = 0.5
    iv_expansion: Annotated[float, Field(ge=0.0, le=2.0)] = 0.5
    iv_contraction: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    neutral: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0

    def as_dict(self) -> dict[str, float]:
        return {r: float(getattr(self, r)) for r in REGIMES}


class ConfidenceScaling(RiskModel):
    """Multiplier per signal confidence: low → 0 (no trade), medium → half, high → full size.

    A numeric confidence (a model probability in [0, 1]) is first labelled: below ``medium_from`` is low,
    below ``high_from`` medium, otherwise high.
    """

    low: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    medium: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    high: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    medium_from: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.55
    high_from: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.65

    @model_validator(mode="after")
    def _ordered(self) -> ConfidenceScaling:
        if not (self.low <= self.medium <= self.high):
            raise ValueError("multipliers must satisfy low <= medium <= high")
        if not self.medium_from < self.high_from:
            raise ValueError("medium_from must be below high_from")
        return self

    def as_dict(self) -> dict[str, float]:
        return {c: float(getattr(self, c)) for c in CONFIDENCE_LEVELS}


class AdaptiveSizing(RiskModel):
    """Regime multipliers and confidence scaling together (see the two classes for the defaults)."""

    regimes: RegimeMultipliers = RegimeMultipliers()
    confidence: ConfidenceScaling = ConfidenceScaling()

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> AdaptiveSizing:
        """Build from a plain mapping (a YAML/JSON config section); errors name the bad field."""
        return cls.model_validate(dict(data))


DEFAULT_ADAPTIVE = AdaptiveSizing()


@overload
def regime_multiplier(regime: str, config: AdaptiveSizing = ...) -> float: ...
@overload
def regime_multiplier(regime: pd.Series, config: AdaptiveSizing = ...) -> pd.Series: ...
def regime_multiplier(
    regime: str | pd.Series, config: AdaptiveSizing = DEFAULT_ADAPTIVE
) -> float | pd.Series:
    """Risk-budget multiplier of a regime label (or a Series of labels). Unknown labels raise."""
    table = config.regimes.as_dict()
    if isinstance(regime, pd.Series):
        out = regime.map(table)
        bad = regime[out.isna()]
        if len(bad):
            raise UnknownRegimeError(
                f"unknown regime label(s) {sorted(map(str, set(bad)))}; known: {REGIMES}"
            )
        return out.astype(float)
    if regime not in table:
        raise UnknownRegimeError(f"unknown regime {regime!r}; known: {', '.join(REGIMES)}")
    return table[regime]


def confidence_label(probability: Num, config: AdaptiveSizing = DEFAULT_ADAPTIVE) -> npt.NDArray[np.str_]:
    """Label numeric confidences (probabilities in [0, 1]) as low / medium / high."""
    p = np.asarray(probability, dtype=float)
    if np.any(~np.isfinite(p) | (p < 0) | (p > 1)):
        raise ConfigError("confidence probabilities must be finite and between 0 and 1")
    c = config.confidence
    return np.where(p >= c.high_from, "high", np.where(p >= c.medium_from, "medium", "low"))


@overload
def confidence_multiplier(confidence: str | float, config: AdaptiveSizing = ...) -> float: ...
@overload
def confidence_multiplier(confidence: pd.Series, config: AdaptiveSizing = ...) -> pd.Series: ...
def confidence_multiplier(
    confidence: str | float | pd.Series, config: AdaptiveSizing = DEFAULT_ADAPTIVE
) -> float | pd.Series:
    """Multiplier of a confidence label (low/medium/high) or probability, or a Series of either."""
    table = config.confidence.as_dict()
    if isinstance(confidence, pd.Series):
        labels = confidence
        if pd.api.types.is_numeric_dtype(confidence):
            labels = pd.Series(
                confidence_label(confidence.to_numpy(dtype=float), config), index=confidence.index
            )
        out = labels.map(table)
        if out.isna().any():
            bad = sorted(map(str, set(labels[out.isna()])))
            raise UnknownRegimeError(f"unknown confidence label(s) {bad}; known: {CONFIDENCE_LEVELS}")
        return out.astype(float)
    if isinstance(confidence, int | float):
        return table[str(confidence_label(float(confidence), config))]
    if confidence not in table:
        raise UnknownRegimeError(f"unknown confidence {confidence!r}; known: {', '.join(CONFIDENCE_LEVELS)}")
    return table[confidence]


@overload
def adaptive_quantity(
    base_quantity: float,
    regime: str,
    confidence: str | float,
    config: AdaptiveSizing = ...,
    lot_size: float = ...,
) -> float: ...
@overload
def adaptive_quantity(
    base_quantity: npt.NDArray[np.float64],
    regime: str,
    confidence: str | float,
    config: AdaptiveSizing = ...,
    lot_size: float = ...,
) -> npt.NDArray[np.float64]: ...
@overload
def adaptive_quantity(
    base_quantity: float | pd.Series,
    regime: str | pd.Series,
    confidence: str | float | pd.Series,
    config: AdaptiveSizing = ...,
    lot_size: float = ...,
) -> pd.Series | float: ...
def adaptive_quantity(
    base_quantity: float | npt.NDArray[np.float64] | pd.Series,
    regime: str | pd.Series,
    confidence: str | float | pd.Series,
    config: AdaptiveSizing = DEFAULT_ADAPTIVE,
    lot_size: float = 1.0,
) -> float | npt.NDArray[np.float64] | pd.Series:
    """``base_quantity * regime multiplier * confidence multiplier``, rounded down to whole lots.

    A Series if any input is a Series (aligned on its index), else the type of ``base_quantity``.

    >>> adaptive_quantity(10.0, "high_vol", "medium")   # 10 contracts × 0.5 × 0.5
    2.0
    """
    rm = regime_multiplier(regime, config)
    cm = confidence_multiplier(confidence, config)
    series = [x for x in (base_quantity, rm, cm) if isinstance(x, pd.Series)]
    scaled = (
        np.asarray(base_quantity, dtype=float) * np.asarray(rm, dtype=float) * np.asarray(cm, dtype=float)
    )
    if series:
        return _whole_lots(
            pd.Series(np.broadcast_to(scaled, len(series[0])), index=series[0].index), lot_size
        )
    if isinstance(base_quantity, np.ndarray):
        return _whole_lots(np.asarray(scaled, dtype=float), lot_size)
    return _whole_lots(float(scaled), lot_size)
