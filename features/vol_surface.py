"""A parametric implied-volatility surface for modeled option chains.

Two published building blocks, nothing fitted to quotes:

* **ATM term structure** - expected average variance of a mean-reverting (Heston-style) variance process:
  ``vbar(T) = theta + (v0 - theta) * (1 - exp(-kappa T)) / (kappa T)``, with ``theta = long_run**2`` and ``v0``
  chosen so that the ATM vol at ``t_ref`` (30 days: the VIX horizon) equals ``atm_ref``.  ATM total variance
  ``T * vbar(T)`` then increases with T (no calendar arbitrage at the money).
* **Smile** - SSVI (Gatheral & Jacquier, "Arbitrage-free SVI volatility surfaces", 2014) with the power-law
  ``phi(theta_T) = eta / (theta_T**gamma * (1 + theta_T)**(1 - gamma))``:
  ``w(k, T) = theta_T / 2 * (1 + rho phi k + sqrt((phi k + rho)**2 + 1 - rho**2))``, ``k = ln(K/F)``.
  With ``0 < gamma <= 1/2`` and ``eta (1 + |rho|) <= 2`` it is free of static (butterfly and calendar)
  arbitrage.  The ATM skew is ``dsigma/dk = rho * phi * sigma_atm / 2``, steep for short expiries and
  flattening roughly like ``T**-1/2`` - the shape of equity-index smiles.

Defaults (set in :class:`features.chains.ChainModelConfig`): index rho -0.7, eta 1.0 (30-day ATM skew about
-1.2 vol points per 1 % of log-moneyness at 15 % vol); single stocks rho -0.4, eta 0.8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quantlake.errors import ConfigError

FloatArray = NDArray[np.float64]

__all__ = ["SSVISurface"]


@dataclass(frozen=True)
class SSVISurface:
    """ATM term structure plus SSVI smile; every method is vectorized and broadcasts ``k`` against ``T``."""

    atm_ref: float  # ATM implied vol at t_ref (decimal)
    long_run: float  # ATM vol the term structure reverts to
    kappa: float = 2.0  # mean-reversion speed of variance (per year)
    t_ref: float = 30.0 / 365.0
    rho: float = -0.7
    eta: float = 1.0
    gamma: float = 0.5

    def __post_init__(self) -> None:
        checks = {
            "atm_ref": self.atm_ref > 0,
            "long_run": self.long_run > 0,
            "kappa": self.kappa > 0,
            "t_ref": self.t_ref > 0,
            "rho": -1 < self.rho < 1,
            "eta": self.eta > 0 and self.eta * (1 + abs(self.rho)) <= 2,
            "gamma": 0 < self.gamma <= 0.5,
        }
        for name, ok in checks.items():
            if not (ok and np.isfinite(getattr(self, name))):
                raise ConfigError(
                    f"vol surface: {name}={getattr(self, name)!r} is invalid (vols, kappa, t_ref > 0; |rho| < 1; "
                    "0 < gamma <= 0.5; eta > 0 with eta*(1+|rho|) <= 2 for an arbitrage-free SSVI)"
                )

    @staticmethod
    def _g(x: FloatArray) -> FloatArray:
        """(1 - e^{-x})/x, = 1 at x = 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(x > 1e-8, -np.expm1(-x) / x, 1.0 - 0.5 * x)

    @property
    def v0(self) -> float:
        """Instantaneous variance matching ``atm_ref`` at ``t_ref`` (floored so that variance stays positive)."""
        theta = self.long_run**2
        g_ref = float(self._g(np.asarray(self.kappa * self.t_ref)))
        return max(theta + (self.atm_ref**2 - theta) / g_ref, 1e-8)

    def atm_variance(self, T: ArrayLike) -> FloatArray:
        """Average ATM variance to T (sigma_atm(T)**2)."""
        t = np.asarray(T, dtype=np.float64)
        theta = self.long_run**2
        return np.asarray(theta + (self.v0 - theta) * self._g(self.kappa * t), dtype=np.float64)

    def atm_vol(self, T: ArrayLike) -> FloatArray:
        return np.sqrt(self.atm_variance(T))

    def total_variance(self, k: ArrayLike, T: ArrayLike) -> FloatArray:
        """SSVI total implied variance w(k, T) = sigma(k, T)**2 * T."""
        kk = np.asarray(k, dtype=np.float64)
        t = np.asarray(T, dtype=np.float64)
        theta_t = self.atm_variance(t) * t
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = self.eta / (theta_t**self.gamma * (1.0 + theta_t) ** (1.0 - self.gamma))
            x = phi * kk
            w = 0.5 * theta_t * (1.0 + self.rho * x + np.sqrt((x + self.rho) ** 2 + 1.0 - self.rho**2))
        return np.asarray(w, dtype=np.float64)

    def implied_vol(self, k: ArrayLike, T: ArrayLike) -> FloatArray:
        """Black-Scholes implied vol at log-moneyness ``k = ln(K/F)`` and expiry ``T`` (years, > 0)."""
        t = np.asarray(T, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.sqrt(self.total_variance(k, t) / t), dtype=np.float64)
