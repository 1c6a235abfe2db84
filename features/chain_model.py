"""The modeled option chain: :func:`model_chain` (a pure function) and its settings and market inputs.

The modeled chain on a quote date:

* **expiries** - the next ``weeklies`` Friday expiries and the monthly (third-Friday) expiries of the next
  ``months`` months (:mod:`features.calendar`; holidays move an expiry to the previous trading day).
* **volatility** - :class:`features.vol_surface.SSVISurface`: an ATM level at 30 days, a mean-reverting ATM term
  structure towards a long-run level, and an SSVI smile/skew in log-moneyness ``ln(K/F)``.  The ATM level is
  ``vix_atm_ratio * VIX/100`` for underlyings mapped to a vol index (``^GSPC``, ``^SPX``, ``SPY`` -> ``^VIX``; the
  VIX is a variance-swap rate that includes the skew, hence sits above ATM vol), else ``iv_premium`` times a
  blend of 20- and 60-day close-to-close realized vol.  The long-run level is the mean of that ATM proxy over
  the last year (vol index) or the one-year realized vol (single stocks).
* **strikes** - per expiry, from ``F exp(-sd_down s)`` to ``F exp(sd_up s)`` with ``s = sigma_atm sqrt(T)``
  (at least +-``min_range``), on a spacing that depends on the price level (``strike_steps``: 0.5 below 25,
  1 below 500 (SPY-like $1 strikes), 5 below 5,000, 50 below 20,000, else 100), coarsened x2, x5, x10 ... until
  an expiry has at most ``max_strikes`` strikes.
* **prices** - Black-Scholes-Merton mid at the surface's vol with rate r(T) and dividend yield q;
  **spread** = ``max(tick, spread_vol * vega + spread_pct * mid)`` (vega per 1.00 vol, so ``spread_vol`` = 0.01
  is one vol point), bid rounded down and ask rounded up to the tick (``tick_small`` = 0.01 below
  ``tick_switch`` = 3.00, else ``tick_large`` = 0.05), bid >= 0.
* **rates** - FRED ``DGS2`` and ``DGS10`` from ``macro_series`` (percent, bond-equivalent yields, converted to
  continuously compounded decimals ``2 ln(1 + y/200)``), the last value known at the close of the quote date
  (``date <= d`` and ``realtime_start <= d``, at most ``max_rate_staleness_days`` old): flat at the 2-year
  rate up to 2 years, linear to the 10-year rate at 10 years, flat beyond.  Without data: ``default_rate``.
* **dividend yield** - a constant per underlying (``dividend_yields``; default ``default_dividend_yield`` = 0).

No look-ahead: :class:`features.chains.ChainProvider` builds a chain on date d from closes, the vol index and
rates dated <= d only.  Split from :mod:`features.chains` (which re-exports these names) to keep the provider
module small.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.calendar import expiry_schedule
from features.pricing import bs_greeks, bs_price
from features.vol_surface import SSVISurface
from quantlake.errors import ConfigError, UserInputError
from quantlake.tables import OPTION_QUOTES

FloatArray = NDArray[np.float64]
MODELED = "modeled"  # the source tag of modeled rows
EXTRA_COLUMNS = ["mid", "iv", "model_iv", "rate", "dividend_yield"]
CHAIN_COLUMNS = [*OPTION_QUOTES.schema.names, *EXTRA_COLUMNS]


# ----------------------------------------------------------------------------------------------- configuration
class SkewParams(BaseModel):
    """SSVI smile parameters (see :mod:`features.vol_surface`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rho: Annotated[float, Field(gt=-1, lt=1)] = -0.7
    eta: Annotated[float, Field(gt=0)] = 1.0
    gamma: Annotated[float, Field(gt=0, le=0.5)] = 0.5

    @model_validator(mode="after")
    def _no_butterfly_arbitrage(self) -> SkewParams:
        if self.eta * (1 + abs(self.rho)) > 2:
            raise ValueError(f"eta: eta*(1+|rho|) must be <= 2 for an arbitrage-free smile, got {self.eta}")
        return self


class ChainModelConfig(BaseModel):
    """Every knob of the modeled chain; defaults are documented in the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weeklies: Annotated[int, Field(ge=0, le=60)] = 4
    months: Annotated[int, Field(ge=1, le=36)] = 12
    strike_steps: tuple[tuple[float, float], ...] = (
        (25.0, 0.5),
        (500.0, 1.0),
        (5000.0, 5.0),
        (20000.0, 50.0),
        (math.inf, 100.0),
    )
    sd_down: Annotated[float, Field(gt=0, le=10)] = 3.5
    sd_up: Annotated[float, Field(gt=0, le=10)] = 2.5
    min_range: Annotated[float, Field(ge=0, lt=1)] = 0.05
    max_strikes: Annotated[int, Field(ge=2, le=5000)] = 150
    # volatility
    vol_index: dict[str, str] = Field(
        default_factory=lambda: {"^GSPC": "^VIX", "^SPX": "^VIX", "SPY": "^VIX"}
    )
    index_like: tuple[str, ...] = ("SPY", "QQQ", "IWM", "DIA")  # smile of an index even without a vol index
    vix_atm_ratio: Annotated[float, Field(gt=0, le=2)] = 0.9
    max_vol_staleness_days: Annotated[int, Field(ge=0)] = 5
    rv_windows: tuple[int, int] = (20, 60)
    rv_weights: tuple[float, float] = (0.5, 0.5)
    iv_premium: Annotated[float, Field(gt=0, le=5)] = 1.1
    long_run_days: Annotated[int, Field(ge=20)] = 252
    min_vol: Annotated[float, Field(gt=0)] = 0.03
    max_vol: Annotated[float, Field(gt=0)] = 3.0
    kappa: Annotated[float, Field(gt=0)] = 2.0
    index_skew: SkewParams = SkewParams(rho=-0.7, eta=1.0, gamma=0.5)
    stock_skew: SkewParams = SkewParams(rho=-0.4, eta=0.8, gamma=0.5)
    # rates and dividends
    short_rate_series: str = "DGS2"
    long_rate_series: str = "DGS10"
    max_rate_staleness_days: Annotated[int, Field(ge=0)] = 10
    default_rate: Annotated[float, Field(ge=-0.2, le=0.5)] = 0.02
    dividend_yields: dict[str, float] = Field(
        default_factory=lambda: {"SPY": 0.018, "^GSPC": 0.018, "^SPX": 0.018}
    )
    default_dividend_yield: Annotated[float, Field(ge=-0.2, le=0.5)] = 0.0
    # bid/ask
    spread_vol: Annotated[float, Field(ge=0, le=1)] = 0.01
    spread_pct: Annotated[float, Field(ge=0, le=2)] = 0.02
    tick_small: Annotated[float, Field(gt=0)] = 0.01
    tick_large: Annotated[float, Field(gt=0)] = 0.05
    tick_switch: Annotated[float, Field(ge=0)] = 3.0

    @field_validator("strike_steps")
    @classmethod
    def _steps(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if not v or any(step <= 0 for _, step in v) or list(v) != sorted(v) or v[-1][0] != math.inf:
            raise ValueError(
                "strike_steps: (price_below, step) pairs, increasing, steps > 0, last price_below inf"
            )
        return v

    @field_validator("rv_windows")
    @classmethod
    def _windows(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 2:
            raise ValueError(f"rv_windows: windows must be >= 2 returns, got {v}")
        return v

    @field_validator("rv_weights")
    @classmethod
    def _weights(cls, v: tuple[float, float]) -> tuple[float, float]:
        if min(v) < 0 or abs(sum(v) - 1) > 1e-9:
            raise ValueError(f"rv_weights: non-negative weights summing to 1, got {v}")
        return v

    @classmethod
    def build(cls, **fields: Any) -> ChainModelConfig:
        """Validate ``fields``; a bad value raises :class:`ConfigError` naming the field."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "config"
            raise ConfigError(f"chain model config: {where}: {first['msg']}") from None


# ----------------------------------------------------------------------------------------------- market inputs
@dataclass(frozen=True)
class RateCurve:
    """Continuously compounded zero rates at ``tenors`` (years), linear in between and flat outside."""

    tenors: tuple[float, ...]
    rates: tuple[float, ...]

    def __call__(self, T: ArrayLike) -> FloatArray:
        return np.asarray(
            np.interp(np.asarray(T, dtype=np.float64), self.tenors, self.rates), dtype=np.float64
        )

    @classmethod
    def flat(cls, rate: float) -> RateCurve:
        return cls((1.0,), (float(rate),))


@dataclass(frozen=True)
class MarketState:
    """What the chain model knew at the close of ``quote_date``."""

    underlying: str
    quote_date: dt.date
    spot: float
    atm_vol: float  # 30-day ATM implied vol
    long_run_vol: float
    vol_source: str  # e.g. "^VIX" or "realized"
    rates: RateCurve
    rate_source: str  # e.g. "DGS2/DGS10" or "default"
    dividend_yield: float


def bey_to_continuous(percent: ArrayLike) -> FloatArray:
    """FRED Treasury yields (percent, semiannual bond-equivalent) to continuously compounded decimals."""
    return np.asarray(2.0 * np.log1p(np.asarray(percent, dtype=np.float64) / 200.0), dtype=np.float64)


def _tick(mid: FloatArray, cfg: ChainModelConfig) -> FloatArray:
    return np.where(mid < cfg.tick_switch, cfg.tick_small, cfg.tick_large)


def _base_step(spot: float, cfg: ChainModelConfig) -> float:
    for below, step in cfg.strike_steps:
        if spot < below:
            return step
    return cfg.strike_steps[-1][1]  # pragma: no cover - the validator makes the last bound inf


def _strike_grid(lo: float, hi: float, base: float, max_strikes: int) -> FloatArray:
    for mult in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        step = base * mult
        first = math.ceil(lo / step - 1e-9) * step
        n = math.floor((hi - first) / step + 1e-9) + 1
        if n <= max_strikes:
            break
    grid = first + step * np.arange(max(n, 0))
    return np.asarray(np.round(grid[grid > 0], 6), dtype=np.float64)


def _occ_root(underlying: str) -> str:
    return underlying.replace("^", "").replace(".", "").replace("-", "")[:6]


def model_chain(
    underlying: str,
    quote_date: dt.date,
    spot: float,
    atm_vol: float,
    r: float | RateCurve,
    q: float,
    *,
    long_run_vol: float | None = None,
    config: ChainModelConfig | None = None,
    index_like: bool | None = None,
) -> pd.DataFrame:
    """A modeled chain for one underlying and quote date (pure: no I/O).

    ``atm_vol`` is the 30-day ATM implied vol, ``long_run_vol`` the level the ATM term structure reverts to
    (default: ``atm_vol``), ``r`` a rate or a :class:`RateCurve`, ``q`` the dividend yield.  ``index_like``
    picks the index or the single-stock smile (default: from the config's vol-index map and ``^`` symbols).
    Rows are sorted by expiry, right (C first), strike; every row has ``source="modeled"``.
    """
    cfg = config or ChainModelConfig()
    if not (spot > 0 and math.isfinite(spot)):
        raise UserInputError(f"model_chain: spot must be a positive number, got {spot!r}")
    if not (atm_vol > 0 and math.isfinite(atm_vol)):
        raise UserInputError(f"model_chain: atm_vol must be a positive number, got {atm_vol!r}")
    if index_like is None:
        index_like = underlying in cfg.vol_index or underlying.startswith("^") or underlying in cfg.index_like
    skew = cfg.index_skew if index_like else cfg.stock_skew
    surface = SSVISurface(
        atm_ref=atm_vol, long_run=long_run_vol or atm_vol, kappa=cfg.kappa, rho=skew.rho, eta=skew.eta,
        gamma=skew.gamma,
    )  # fmt: skip
    curve = r if isinstance(r, RateCurve) else RateCurve.flat(r)

    expiries = [e for e, _ in expiry_schedule(quote_date, cfg.weeklies, cfg.months)]
    days = np.array([(e - quote_date).days for e in expiries], dtype=np.float64)
    T = days / 365.0
    rates = curve(T)
    fwd = spot * np.exp((rates - q) * T)
    sd = surface.atm_vol(T) * np.sqrt(T)
    base = _base_step(spot, cfg)
    grids = [
        _strike_grid(
            f * math.exp(-max(cfg.sd_down * s, cfg.min_range)),
            f * math.exp(max(cfg.sd_up * s, cfg.min_range)),
            base,
            cfg.max_strikes,
        )
        for f, s in zip(fwd, sd, strict=True)
    ]  # one small loop per expiry (about 16), not per row
    counts = np.array([g.size for g in grids])
    e_idx = np.repeat(np.arange(len(expiries)), 2 * counts)
    strikes = np.concatenate([np.concatenate([g, g]) for g in grids])
    phi = np.concatenate([np.repeat([1.0, -1.0], c) for c in counts])

    t, rr, ff = T[e_idx], rates[e_idx], fwd[e_idx]
    iv = np.clip(surface.implied_vol(np.log(strikes / ff), t), cfg.min_vol, cfg.max_vol)
    mid = bs_price(phi, spot, strikes, t, rr, q, iv)
    vega = bs_greeks(phi, spot, strikes, t, rr, q, iv)["vega"]
    tick = _tick(mid, cfg)
    spread = np.maximum(tick, cfg.spread_vol * vega + cfg.spread_pct * mid)
    bid_ticks = np.maximum(np.floor((mid - spread / 2) / tick + 1e-9), 0.0)  # bid down, ask up to the tick
    ask_ticks = np.maximum(np.ceil((mid + spread / 2) / tick - 1e-9), bid_ticks + 1.0)
    bid, ask = np.round(bid_ticks * tick, 10), np.round(ask_ticks * tick, 10)

    right = np.where(phi > 0, "C", "P")
    exp_arr = np.array(expiries, dtype=object)[e_idx]
    prefix = np.array([_occ_root(underlying) + e.strftime("%y%m%d") for e in expiries])[e_idx]
    strike_code = np.strings.zfill(np.round(strikes * 1000).astype(np.int64).astype(str), 8)
    contract = np.strings.add(np.strings.add(prefix, right), strike_code)
    n = strikes.size
    frame = pd.DataFrame(
        {
            "quote_date": np.full(n, quote_date, dtype=object),
            "underlying": underlying,
            "root": _occ_root(underlying),
            "expiry": exp_arr,
            "strike": strikes,
            "right": right,
            "settlement": "PM",  # modeled European options settle on the close
            "bid": bid,
            "ask": ask,
            "no_market": False,
            "underlying_price": float(spot),
            "contract": contract,
            "source": MODELED,
            "ingested_at": pd.NaT,
            "mid": mid,
            "iv": iv,
            "model_iv": iv,
            "rate": rr,
            "dividend_yield": float(q),
        }
    )
    return frame.reindex(columns=CHAIN_COLUMNS)  # columns it has no value for (sizes, vendor Greeks) are NaN
