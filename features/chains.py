"""Option chains: observed quotes from the lake, or modeled chains where there are none.

One interface serves both: ``ChainProvider(lake).chain(underlying, date, mode)`` with ``mode`` one of
``"observed"`` (the lake's ``option_quotes``), ``"modeled"`` (built below) or ``"auto"`` (observed if the lake
has any quote for that underlying and date, else modeled; ``"observed_else_modeled"`` is the same).  Every frame has the
``option_quotes`` columns plus ``mid``, ``iv`` (the vol to use: vendor/implied for observed rows, the model's
for modeled rows), ``model_iv``, ``rate`` and ``dividend_yield`` (what the row was priced with).

The modeled chain (:func:`model_chain`, a pure function) on a quote date:

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

No look-ahead: a chain on date d reads closes, the vol index and rates dated <= d only.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.calendar import expiry_schedule
from features.pricing import bs_greeks, bs_price, implied_vol
from features.vol_surface import SSVISurface
from quantlake.errors import ConfigError, InvalidDateError, InvalidSymbolError, UserInputError
from quantlake.lake import Lake
from quantlake.option_quotes import conform_frame
from quantlake.tables import OPTION_QUOTES, validate_symbol

FloatArray = NDArray[np.float64]
ChainMode = Literal["auto", "observed", "modeled", "observed_else_modeled"]
MODES: tuple[str, ...] = ("auto", "observed", "modeled", "observed_else_modeled")
MODELED = "modeled"
OBSERVED_BLOCK_DAYS = 31  # calendar days of observed quotes one lake read loads (see ChainProvider._observed_block)
EXTRA_COLUMNS = ["mid", "iv", "model_iv", "rate", "dividend_yield"]
CHAIN_COLUMNS = [*OPTION_QUOTES.schema.names, *EXTRA_COLUMNS]

__all__ = [
    "CHAIN_COLUMNS",
    "ChainModelConfig",
    "ChainProvider",
    "MarketState",
    "RateCurve",
    "SkewParams",
    "model_chain",
]


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


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CHAIN_COLUMNS})


# ----------------------------------------------------------------------------------------------- provider
class ChainProvider:
    """Observed and modeled option chains over a lake (the interface backtests read chains through).

    Series are loaded once per symbol and cached; every look-up on date d uses rows dated <= d only.
    """

    def __init__(self, lake: Lake, config: ChainModelConfig | None = None,
                 roots: tuple[str, ...] | None = None) -> None:
        self.lake = lake
        self.config = config or ChainModelConfig()
        # observed quotes of these OCC roots only, the first listed preferred where two list the same
        # contract terms (None: every root, the PM-settled one preferred)
        self.roots = tuple(roots) if roots else None
        self._closes: dict[str, tuple[NDArray[np.datetime64], FloatArray]] = {}
        self._macro: dict[str, tuple[NDArray[np.datetime64], NDArray[np.datetime64], FloatArray]] = {}
        self._quote_dates: dict[str, set[dt.date]] = {}
        self._blocks: dict[str, tuple[dt.date, dt.date, pd.DataFrame, dict[dt.date, np.ndarray]]] = {}

    # ------------------------------------------------------------------ public
    def chain(
        self, underlying: str, date: dt.date | str, mode: str = "auto"
    ) -> pd.DataFrame:
        """The chain of ``underlying`` on ``date``: observed, modeled, or observed if any else modeled.

        An empty frame (with the columns) when there is nothing: no quotes (observed), or no close on that
        date (modeled: a holiday or a date outside the underlying's history).
        """
        if mode not in MODES:
            raise UserInputError(f"chain mode must be one of {', '.join(MODES)}; got {mode!r}")
        sym = validate_symbol(underlying)
        day = _as_date(date)
        if mode == "observed":
            return self.observed(sym, day)
        if mode == "modeled":
            return self.modeled(sym, day)
        if day in self._observed_dates(sym):
            return self.observed(sym, day)
        return self.modeled(sym, day)

    def observed(self, underlying: str, date: dt.date | str, all_roots: bool = False) -> pd.DataFrame:
        """The lake's ``option_quotes`` rows of ``underlying`` on ``date`` (with mid and iv columns).

        One row per (expiry, strike, right) unless ``all_roots``: where two roots list the same contract
        terms (SPX and SPXW on a monthly expiry) the PM-settled one is kept, whose settlement on the close
        is what a close-to-close backtest assumes — or, when the provider was given ``roots``, only those
        roots' quotes, the first listed preferred.  A no-market quote (bid = ask = 0) has no mid: it is
        never filled.  The vol is the vendor's where it gives one, else solved from the mid
        (``features.pricing.implied_vol``) with the Treasury curve known on ``date``.
        """
        sym = validate_symbol(underlying)
        day = _as_date(date)
        if day not in self._observed_dates(sym):
            return _empty()
        frame, rows_of = self._observed_block(sym, day)
        idx = rows_of.get(day)
        if idx is None:
            return _empty()
        rows = frame.iloc[idx]
        if not all_roots:
            rows = rows[rows["_keep"].to_numpy()]
        return rows[CHAIN_COLUMNS].reset_index(drop=True)

    def modeled(self, underlying: str, date: dt.date | str) -> pd.DataFrame:
        """The modeled chain (:func:`model_chain`) from what the lake knew at the close of ``date``."""
        state = self.market_state(underlying, date)
        if state is None:
            return _empty()
        return model_chain(
            state.underlying, state.quote_date, state.spot, state.atm_vol, state.rates, state.dividend_yield,
            long_run_vol=state.long_run_vol, config=self.config,
        )  # fmt: skip

    def market_state(self, underlying: str, date: dt.date | str) -> MarketState | None:
        """Spot, vol levels, rates and dividend yield known at the close of ``date`` (None without a close)."""
        sym = validate_symbol(underlying)
        day = _as_date(date)
        dates, closes = self._close_series(sym)
        if dates.size == 0:
            raise InvalidSymbolError(
                f"no closes for {sym!r} in equity_bars: ingest it first to model its chain"
            )
        upto = int(np.searchsorted(dates, np.datetime64(day, "D"), side="right"))
        if upto == 0 or dates[upto - 1] != np.datetime64(day, "D"):
            return None
        hist = closes[:upto]
        atm, long_run, source = self._vol_levels(sym, day, hist)
        rates, rate_source = self._rates(day)
        return MarketState(
            underlying=sym, quote_date=day, spot=float(hist[-1]), atm_vol=atm, long_run_vol=long_run,
            vol_source=source, rates=rates, rate_source=rate_source, dividend_yield=self._dividend_yield(sym),
        )  # fmt: skip

    # ------------------------------------------------------------------ inputs
    def _vol_levels(self, sym: str, day: dt.date, hist: FloatArray) -> tuple[float, float, str]:
        cfg = self.config
        index = cfg.vol_index.get(sym)
        if index is not None:
            vdates, vix = self._close_series(index)
            upto = int(np.searchsorted(vdates, np.datetime64(day, "D"), side="right"))
            if (
                upto
                and (np.datetime64(day, "D") - vdates[upto - 1]).astype(int) <= cfg.max_vol_staleness_days
            ):
                proxy = cfg.vix_atm_ratio * vix[max(0, upto - cfg.long_run_days) : upto] / 100.0
                atm = float(np.clip(proxy[-1], cfg.min_vol, cfg.max_vol))
                long_run = float(np.clip(np.mean(proxy), cfg.min_vol, cfg.max_vol))
                return atm, long_run, index
        rets = np.diff(np.log(hist[-(cfg.long_run_days + 1) :]))
        rets = rets[np.isfinite(rets)]
        if rets.size < 5:
            raise UserInputError(
                f"cannot model {sym}'s chain on {day}: needs at least 6 closes up to that date for realized vol"
            )
        rv = [float(np.std(rets[-w:], ddof=1)) * math.sqrt(252.0) for w in cfg.rv_windows]
        atm = cfg.iv_premium * (cfg.rv_weights[0] * rv[0] + cfg.rv_weights[1] * rv[1])
        long_run = cfg.iv_premium * float(np.std(rets, ddof=1)) * math.sqrt(252.0)
        return (
            float(np.clip(atm, cfg.min_vol, cfg.max_vol)),
            float(np.clip(long_run, cfg.min_vol, cfg.max_vol)),
            "realized",
        )

    def _rates(self, day: dt.date) -> tuple[RateCurve, str]:
        cfg = self.config
        tenors: list[float] = []
        rates: list[float] = []
        names: list[str] = []
        for tenor, series in ((2.0, cfg.short_rate_series), (10.0, cfg.long_rate_series)):
            value = self._macro_asof(series, day, cfg.max_rate_staleness_days)
            if value is not None:
                tenors.append(tenor)
                rates.append(float(bey_to_continuous(value)))
                names.append(series)
        if not tenors:
            return RateCurve.flat(cfg.default_rate), "default"
        return RateCurve(tuple(tenors), tuple(rates)), "/".join(names)

    def _dividend_yield(self, sym: str) -> float:
        return float(self.config.dividend_yields.get(sym, self.config.default_dividend_yield))

    # ------------------------------------------------------------------ lake access (cached)
    def _close_series(self, sym: str) -> tuple[NDArray[np.datetime64], FloatArray]:
        if sym not in self._closes:
            if self.lake.exists("equity_bars"):
                df = self.lake.read(
                    "equity_bars", columns=["date", "close"], where="symbol = ?", params=[sym]
                )
                df = df[np.isfinite(df["close"].to_numpy(dtype=np.float64))]
            else:
                df = pd.DataFrame({"date": [], "close": []})
            dates = pd.to_datetime(df["date"]).to_numpy(dtype="datetime64[D]")
            self._closes[sym] = (dates, df["close"].to_numpy(dtype=np.float64))
        return self._closes[sym]

    def _close_on(self, sym: str, day: dt.date) -> float | None:
        dates, closes = self._close_series(sym)
        i = int(np.searchsorted(dates, np.datetime64(day, "D")))
        return float(closes[i]) if i < dates.size and dates[i] == np.datetime64(day, "D") else None

    def _macro_asof(self, series: str, day: dt.date, max_age_days: int) -> float | None:
        """The value of ``series`` known at the close of ``day``: latest observation date <= day, and of
        that date the latest vintage with realtime_start <= day (None if none, or older than allowed)."""
        if series not in self._macro:
            dates = vintages = np.array([], dtype="datetime64[D]")
            values = np.array([], dtype=np.float64)
            if self.lake.exists("macro_series"):
                df = self.lake.read("macro_series", columns=["date", "realtime_start", "value"],
                                    where="series_id = ? AND value IS NOT NULL", params=[series])  # fmt: skip
                dates = pd.to_datetime(df["date"]).to_numpy(dtype="datetime64[D]")  # sorted by key:
                vintages = pd.to_datetime(df["realtime_start"]).to_numpy(
                    dtype="datetime64[D]"
                )  # date, vintage
                values = df["value"].to_numpy(dtype=np.float64)
            self._macro[series] = (dates, vintages, values)
        dates, vintages, values = self._macro[series]
        d = np.datetime64(day, "D")
        known = np.flatnonzero((dates <= d) & (vintages <= d) & np.isfinite(values))
        if known.size == 0:
            return None
        i = int(known[-1])
        if (d - dates[i]).astype(int) > max_age_days:
            return None
        return float(values[i])

    def _observed_block(self, sym: str, day: dt.date) -> tuple[pd.DataFrame, dict[dt.date, np.ndarray]]:
        """The observed chains of the quote dates from ``day`` to ``day`` + :data:`OBSERVED_BLOCK_DAYS`, read
        in one lake read and priced once (mid, rate, iv, the ``_keep`` flag of the one-root-per-contract
        rule), and the row positions of each date.  One block per underlying stays in memory; every look-up
        still returns only its own date's rows, priced with what was known on that date."""
        block = self._blocks.get(sym)
        if block is not None and block[0] <= day <= block[1]:
            return block[2], block[3]
        end = day + dt.timedelta(days=OBSERVED_BLOCK_DAYS)
        rows = self.lake.read("option_quotes", where="underlying = ? AND quote_date >= ? AND quote_date <= ?",
                              params=[sym, day, end])
        rows = conform_frame(rows)  # a version written before the root joined the key
        for col in ("quote_date", "expiry"):
            rows[col] = pd.to_datetime(rows[col]).dt.date.astype(object)
        rows = rows.sort_values(["quote_date", "expiry", "strike", "right", "root"], kind="stable")
        rows = rows.reset_index(drop=True)
        if self.roots:
            rows = rows[rows["root"].isin(self.roots)].reset_index(drop=True)
            rank = rows["root"].map({r: i for i, r in enumerate(self.roots)})
        else:
            rank = (rows["settlement"] != "PM").astype(int)
        ranked = rows.assign(_rank=rank.to_numpy()).sort_values(
            ["quote_date", "expiry", "strike", "right", "_rank", "root"], kind="stable")
        keep = ~ranked.duplicated(["quote_date", "expiry", "strike", "right"])
        rows["_keep"] = keep.reindex(rows.index).to_numpy(dtype=bool)
        self._price_observed(sym, rows)
        qd = rows["quote_date"].to_numpy()
        rows_of = {d: np.flatnonzero(qd == d) for d in pd.unique(qd)}
        self._blocks[sym] = (day, end, rows, rows_of)
        return rows, rows_of

    def _price_observed(self, sym: str, rows: pd.DataFrame) -> None:
        """Add mid, iv, model_iv, rate and dividend_yield to observed rows (of any quote dates), in place."""
        bid, ask, last = (rows[c].to_numpy(dtype=np.float64) for c in ("bid", "ask", "last"))
        mid = np.where(np.isfinite(bid) & np.isfinite(ask), (bid + ask) / 2.0, last)
        mid = np.where(rows["no_market"].fillna(False).to_numpy(dtype=bool), np.nan, mid)
        quote_days = pd.to_datetime(rows["quote_date"]).to_numpy(dtype="datetime64[D]")
        days = (pd.to_datetime(rows["expiry"]).to_numpy(dtype="datetime64[D]") - quote_days).astype(np.float64)
        spot = rows["underlying_price"].to_numpy(dtype=np.float64).copy()
        rate = np.full(len(rows), np.nan)
        for d in np.unique(quote_days):  # the curve and the close known on each quote date
            on = quote_days == d
            close = self._close_on(sym, d.astype(dt.date))
            if close is not None:
                spot[on] = np.where(np.isfinite(spot[on]), spot[on], close)
            rate[on] = self._rates(d.astype(dt.date))[0](days[on] / 365.0)
        q = self._dividend_yield(sym)
        iv = rows["vendor_iv"].to_numpy(dtype=np.float64).copy()
        need = ~(np.isfinite(iv) & (iv > 0)) & np.isfinite(mid)
        if need.any():
            iv[need] = implied_vol(mid[need], rows["right"].to_numpy()[need], spot[need],
                                   rows["strike"].to_numpy(dtype=np.float64)[need], days[need] / 365.0,
                                   rate[need], q)  # fmt: skip
        rows["mid"], rows["iv"], rows["model_iv"], rows["rate"], rows["dividend_yield"] = mid, iv, np.nan, rate, q

    def _observed_dates(self, sym: str) -> set[dt.date]:
        if sym not in self._quote_dates:
            dates: set[dt.date] = set()
            if self.lake.exists("option_quotes"):
                df = self.lake.read(
                    "option_quotes", columns=["quote_date"], where="underlying = ?", params=[sym]
                )
                dates = set(pd.to_datetime(df["quote_date"]).dt.date.unique())
            self._quote_dates[sym] = dates
        return self._quote_dates[sym]


def _as_date(value: dt.date | str | Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return pd.Timestamp(value).date()
    except (ValueError, TypeError):
        raise InvalidDateError(f"cannot read {value!r} as a date (use YYYY-MM-DD)") from None


def chain_summary(frame: pd.DataFrame) -> Mapping[str, Any]:
    """Counts for display: rows, expiries, strikes per expiry, sources."""
    if frame.empty:
        return {"rows": 0, "expiries": 0, "sources": {}}
    return {
        "rows": len(frame),
        "expiries": int(frame["expiry"].nunique()),
        "strikes_per_expiry": int(frame.groupby("expiry")["strike"].nunique().median()),
        "sources": frame["source"].value_counts().to_dict(),
    }
