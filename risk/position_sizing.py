"""The ``sizing:`` section of equity and option configs and of paper trading: one :class:`SizingSpec`, turned
into a **fraction of equity per new position** by :func:`equity_fractions` (per bar, known at the bar's
close) with the formulas of :mod:`risk.sizing`.

What the fraction means: the capital a new position ties up, as a share of equity — the notional for shares,
the maximum loss for a defined-risk option package (its margin), so one setting sizes both.

Methods
-------
* ``all_in`` — the whole account (equity sweeps: all cash, vectorbt's ``size=inf``; options: as many
  packages as equity covers at their maximum loss).
* ``fixed_fraction`` — ``fraction`` of equity (default 10 %).
* ``kelly`` — ``fraction`` (default ½: half Kelly) × the Kelly leverage, capped at ``cap``.  Equity configs
  estimate the continuous Kelly leverage μ/σ² (:func:`risk.sizing.kelly_mean_variance`) from the symbol's
  trailing ``lookback`` daily returns; option strategies the win rate and payoff of their own closed
  positions, as returns on maximum loss (:func:`risk.sizing.kelly_from_trades`), once ``min_trades`` of them
  exist (before that ``warmup_fraction``).
* ``vol_target`` — ``target_vol`` / realized volatility over ``vol_window`` bars
  (:func:`risk.sizing.vol_target_leverage`), capped at ``cap``; no estimate yet → no position.
* ``atr_risk`` — the position whose loss at a move of ``atr_multiple`` × ATR(``atr_period``) is
  ``risk_fraction`` of equity (:func:`risk.sizing.risk_based_quantity` per unit of equity): fraction =
  ``risk_fraction`` × close / (``atr_multiple`` × ATR), capped at ``cap``.  The ATR comes from the caller
  (``backtests.equity.indicators.atr``: risk must not import backtests).

Every fraction is capped at ``cap`` (default 1: no leverage); NaN (warm-up) becomes 0.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from risk.sizing import (
    fractional_kelly,
    kelly_from_trades,
    kelly_mean_variance,
    realized_vol,
    risk_based_quantity,
    vol_target_leverage,
)

FloatArray = npt.NDArray[np.float64]
Method = Literal["all_in", "fixed_fraction", "kelly", "vol_target", "atr_risk"]
METHODS: tuple[str, ...] = ("all_in", "fixed_fraction", "kelly", "vol_target", "atr_risk")
DEFAULT_FRACTION = {"fixed_fraction": 0.10, "kelly": 0.5}


class SizingSpec(BaseModel):
    """``sizing:`` of a config (see the module docstring for each method and field).  A plain pydantic model
    (not :class:`risk._model.RiskModel`) so the config that holds it names a bad field with its full path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "all_in"
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    cap: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    lookback: Annotated[int, Field(ge=20, le=5000)] = 252
    min_trades: Annotated[int, Field(ge=2, le=1000)] = 20
    warmup_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.02
    target_vol: Annotated[float, Field(gt=0.0, le=5.0)] = 0.15
    vol_window: Annotated[int, Field(ge=2, le=1000)] = 20
    atr_period: Annotated[int, Field(ge=2, le=500)] = 14
    atr_multiple: Annotated[float, Field(gt=0.0, le=50.0)] = 2.0
    risk_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.01

    @property
    def base_fraction(self) -> float:
        """``fraction``, or the method's default (fixed 10 %, Kelly ½)."""
        return float(self.fraction if self.fraction is not None else DEFAULT_FRACTION.get(self.method, 1.0))

    @property
    def is_all_in(self) -> bool:
        return self.method == "all_in"

    def describe(self) -> str:
        m = self.method
        if m == "all_in":
            return "all in"
        if m == "fixed_fraction":
            return f"{self.base_fraction:.1%} of equity"
        if m == "kelly":
            return f"{self.base_fraction:g} Kelly (lookback {self.lookback}), cap {self.cap:g}"
        if m == "vol_target":
            return f"vol target {self.target_vol:.0%} over {self.vol_window} bars, cap {self.cap:g}"
        return f"{self.risk_fraction:.1%} risk at {self.atr_multiple:g} ATR({self.atr_period}), cap {self.cap:g}"


def equity_fractions(
    spec: SizingSpec, close: FloatArray, atr: FloatArray | None = None, periods_per_year: float = 252.0
) -> FloatArray:
    """Fraction of equity for a position opened after each bar's close, per column: ``close`` is (T, N)
    (or (T,)); ``atr`` the same shape (``atr_risk`` only).  Uses only bars up to each row."""
    c = np.asarray(close, dtype=float)
    flat = c.ndim == 1
    c2 = c.reshape(len(c), -1)
    if spec.method == "all_in":
        out = np.ones_like(c2)
    elif spec.method == "fixed_fraction":
        out = np.full_like(c2, spec.base_fraction)
    elif spec.method == "kelly":
        rets = pd.DataFrame(c2).pct_change(fill_method=None)
        mean = rets.rolling(spec.lookback, min_periods=spec.lookback).mean().to_numpy()
        var = rets.rolling(spec.lookback, min_periods=spec.lookback).var(ddof=1).to_numpy()
        ok = np.isfinite(mean) & np.isfinite(var) & (var > 0)
        lev = np.zeros_like(c2)
        lev[ok] = kelly_mean_variance(mean[ok], var[ok])
        out = fractional_kelly(lev, spec.base_fraction, spec.cap)
    elif spec.method == "vol_target":
        rets = pd.DataFrame(c2).pct_change(fill_method=None)
        rv = realized_vol(rets, spec.vol_window, round(periods_per_year)).to_numpy()
        out = vol_target_leverage(rv, spec.target_vol, spec.cap)
    else:
        if atr is None:
            raise ValueError("atr_risk sizing needs the ATR")
        a = np.asarray(atr, dtype=float).reshape(c2.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            risk_per_equity = spec.atr_multiple * a / c2  # loss of 1 unit of notional at the stop
        out = risk_based_quantity(1.0, spec.risk_fraction, np.where(risk_per_equity > 0, risk_per_equity, np.nan),
                                  lot_size=1e-9)  # fmt: skip
    out = np.clip(np.nan_to_num(np.asarray(out, dtype=float), nan=0.0, posinf=0.0), 0.0, spec.cap)
    return out.reshape(c.shape) if flat else out


def trade_kelly_fraction(spec: SizingSpec, trade_returns: npt.ArrayLike) -> float:
    """Option strategies' ``kelly``: ``fraction`` × Kelly of the closed positions' returns on maximum loss,
    capped; ``warmup_fraction`` until ``min_trades`` positions have closed."""
    r = np.asarray(trade_returns, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < spec.min_trades:
        return float(min(spec.warmup_fraction, spec.cap))
    return float(fractional_kelly(kelly_from_trades(r), spec.base_fraction, spec.cap))


__all__ = ["METHODS", "SizingSpec", "equity_fractions", "trade_kelly_fraction"]
