"""Option chains: observed quotes from the lake, or modeled chains where there are none.

One interface serves both: ``ChainProvider(lake).chain(underlying, date, mode)`` with ``mode`` one of
``"observed"`` (the lake's ``option_quotes``), ``"modeled"`` (built below) or ``"auto"`` (observed if the lake
has any quote for that underlying and date, else modeled; ``"observed_else_modeled"`` is the same).  Every frame has the
``option_quotes`` columns plus ``mid``, ``iv`` (the vol to use: vendor/implied for observed rows, the model's
for modeled rows), ``model_iv``, ``rate`` and ``dividend_yield`` (what the row was priced with).

The modeled chain, its settings (:class:`ChainModelConfig`) and market inputs live in
:mod:`features.chain_model` (re-exported here).

No look-ahead: a chain on date d reads closes, the vol index and rates dated <= d only.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.chain_model import (
    CHAIN_COLUMNS,
    EXTRA_COLUMNS,
    MODELED,
    ChainModelConfig,
    MarketState,
    RateCurve,
    SkewParams,
    bey_to_continuous,
    model_chain,
)
from features.pricing import implied_vol
from quantlake.errors import InvalidDateError, InvalidSymbolError, UserInputError
from quantlake.lake import Lake
from quantlake.option_quotes import conform_frame
from quantlake.tables import validate_symbol

FloatArray = NDArray[np.float64]
ChainMode = Literal["auto", "observed", "modeled", "observed_else_modeled"]
MODES: tuple[str, ...] = ("auto", "observed", "modeled", "observed_else_modeled")
OBSERVED_BLOCK_DAYS = 31  # calendar days of observed quotes one lake read loads (see ChainProvider._observed_block)

__all__ = [
    "CHAIN_COLUMNS",
    "EXTRA_COLUMNS",
    "MODELED",
    "ChainModelConfig",
    "ChainProvider",
    "MarketState",
    "RateCurve",
    "SkewParams",
    "bey_to_continuous",
    "model_chain",
]


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
