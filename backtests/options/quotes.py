"""Option quotes for one bar: the chain interface, its normalisation, Greeks and leg look-ups.

The backtest reads chains through one small :class:`ChainSource` protocol (the interface of
``features.chains.ChainProvider``): ``chain(underlying, date, mode) -> DataFrame`` with the ``option_quotes``
columns (expiry, strike, right, bid, ask, ... , underlying_price, source — ``"modeled"`` for modeled rows)
and optionally ``mid``, an implied volatility column (``iv``, else ``model_iv``, ``implied_vol``,
``vendor_iv``), ``rate`` and ``dividend_yield`` (what the chain priced the row with).  :class:`ChainSnapshot`
normalises one chain once per bar into numpy arrays; Greeks are computed vectorized
(``features.pricing.bs_greeks``) for the whole chain when a strategy selects contracts and for the held legs
only when the engine just marks them.

Normalisation rules:

* ``mid`` is the chain's ``mid`` column when it has one (a modeled row's fair value, an observed row's
  bid/ask midpoint or last trade), else ``(bid + ask) / 2``;
* a row with a mid but no bid/ask (an observed quote with only a last trade) trades at that price on both
  sides (``bid = ask = mid``); a missing bid alone is 0 (nobody bids);
* rows without a usable price, with ``ask < bid``, or expired before the bar are dropped;
* the implied vol is the chain's when given, else solved from the mid with the row's rate and dividend
  yield (``features.pricing.implied_vol``); a price the solver cannot invert takes the neighbouring strike's.

A held contract that the chain lacks on a bar (an observed chain missing a strike) is priced with
Black-Scholes at the leg's last known implied volatility and counted as a *modeled* leg-day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from backtests.options.contracts import Contract
from backtests.options.errors import ChainError

IV_COLUMNS = ("iv", "model_iv", "implied_vol", "vendor_iv")
MODELED = "modeled"
REQUIRED = ("expiry", "strike", "right", "bid", "ask")


class ChainSource(Protocol):
    """Anything that returns the option chain of an underlying on a date.

    A source may also offer ``snapshot(underlying, date, mode, market) -> ChainSnapshot | None``
    (:class:`SnapshotSource`): the engine then takes the day's normalised snapshot from it instead of building
    its own, which lets many backtests over the same days share one (``backtests.options.chain_cache``)."""

    def chain(self, underlying: str, date: dt.date, mode: str = "auto") -> pd.DataFrame: ...


class SnapshotSource(ChainSource, Protocol):
    """A chain source that hands out ready :class:`ChainSnapshot` objects (shared, read-only)."""

    def snapshot(self, underlying: str, date: dt.date, mode: str, market: Market) -> ChainSnapshot | None: ...


@dataclass(frozen=True)
class Market:
    """What Black-Scholes needs besides the contract, for one bar."""

    date: dt.date
    spot: float
    rate: float
    dividend_yield: float


@dataclass
class LegQuotes:
    """Quotes of a list of contracts on one bar (arrays aligned with the contracts)."""

    bid: np.ndarray
    ask: np.ndarray
    mid: np.ndarray
    iv: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    modeled: np.ndarray  # bool: priced from a modeled row or by the fallback model
    fallback: np.ndarray  # bool: the chain lacked the contract

    def __len__(self) -> int:
        return int(self.bid.size)


def _by_value(values: pd.Series, fn: Callable[[Any], Any], missing: Any, dtype: Any) -> np.ndarray:
    """``fn`` of each row, computed once per distinct value (a chain has ~15 expiries, 2 rights, 1 source)."""
    codes, uniq = pd.factorize(values.to_numpy())
    table = np.array([*(fn(u) for u in uniq), missing], dtype=dtype)
    return table[codes]  # code -1 (a missing value) takes the last entry


def _day(value: Any) -> np.datetime64:
    try:
        return np.datetime64(value, "D")
    except (TypeError, ValueError):
        return np.datetime64(pd.Timestamp(value).date(), "D")


def _phi(value: Any) -> float:
    first = str(value)[:1].upper()
    return 1.0 if first == "C" else -1.0 if first == "P" else float("nan")


def greeks(phi: np.ndarray, market: Market, strike: np.ndarray, days: np.ndarray, iv: np.ndarray,
           rate: np.ndarray | float | None = None, div: np.ndarray | float | None = None) -> dict[str, np.ndarray]:
    """Black-Scholes price and Greeks (raw units) for arrays of contracts; ``days`` to expiry (ACT/365);
    ``rate``/``div`` per row (what the chain priced the row with), default the bar's."""
    from features.pricing import bs_greeks, bs_price

    t = np.maximum(days, 0.0) / 365.0
    r = market.rate if rate is None else rate
    q = market.dividend_yield if div is None else div
    args = (phi, market.spot, strike, t, r, q, iv)
    g = bs_greeks(*args)
    return {
        "price": np.asarray(bs_price(*args), dtype=float),
        "delta": np.asarray(g["delta"], dtype=float),
        "gamma": np.asarray(g["gamma"], dtype=float),
        "vega": np.asarray(g["vega"], dtype=float),
        "theta": np.asarray(g["theta"], dtype=float),
    }


def _floats(f: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name not in f.columns:
        return np.full(len(f), default)
    v = f[name].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(v), v, default)


def _columns(f: pd.DataFrame, market: Market) -> dict[str, np.ndarray]:
    """The chain's columns the backtest reads, as numpy arrays over all rows (once per bar)."""
    iv = next((_floats(f, c, np.nan) for c in IV_COLUMNS if c in f.columns), np.full(len(f), np.nan))
    modeled = (_by_value(f["source"], lambda v: str(v) == MODELED, False, bool) if "source" in f.columns
               else np.zeros(len(f), dtype=bool))
    return {
        "expiry": _by_value(f["expiry"], _day, np.datetime64("NaT"), "datetime64[D]"),
        "strike": f["strike"].to_numpy(dtype=float, na_value=np.nan),
        "phi": _by_value(f["right"], _phi, np.nan, float),
        "bid": f["bid"].to_numpy(dtype=float, na_value=np.nan),
        "ask": f["ask"].to_numpy(dtype=float, na_value=np.nan),
        "mid": _floats(f, "mid", np.nan),
        "modeled": modeled,
        "rate": _floats(f, "rate", market.rate),
        "div": _floats(f, "dividend_yield", market.dividend_yield),
        "iv": iv,
    }


class _Arrays:
    """Normalised rows (all, or ``rows``) of a chain's columns (see the module doc for the rules)."""

    FIELDS = ("expiry", "strike", "phi", "bid", "ask", "mid", "days", "modeled", "iv", "rate", "div")

    def __init__(self, cols: dict[str, np.ndarray], market: Market, rows: np.ndarray | None = None) -> None:
        self.market = market
        c = cols if rows is None else {k: v[rows] for k, v in cols.items()}
        day = np.datetime64(market.date, "D")
        self.expiry, self.strike, self.phi = c["expiry"], c["strike"], c["phi"]
        bid, ask, given = c["bid"], c["ask"], c["mid"]
        quoted = np.isfinite(ask)
        mid = np.where(np.isfinite(given), given,
                       np.where(quoted, (np.where(np.isfinite(bid), bid, 0.0) + ask) / 2, np.nan))
        last_only = ~quoted & ~np.isfinite(bid) & np.isfinite(mid)  # a last trade, no quote: trade at it
        self.bid = np.where(last_only, mid, np.where(np.isfinite(bid), bid, 0.0))
        self.ask = np.where(last_only, mid, ask)
        self.mid = mid
        self.days = (self.expiry - day).astype(np.int64).astype(float)
        self.modeled, self.rate, self.div = c["modeled"], c["rate"], c["div"]
        ok = (np.isfinite(self.phi) & np.isfinite(self.strike) & np.isfinite(self.mid) & np.isfinite(self.ask)
              & (self.ask >= self.bid) & (self.expiry >= day))
        self.iv = self._implied_vols(c["iv"], ok)
        if not ok.all():
            for name in self.FIELDS:
                setattr(self, name, getattr(self, name)[ok])

    def _implied_vols(self, iv: np.ndarray, ok: np.ndarray) -> np.ndarray:
        need = ok & ~(np.isfinite(iv) & (iv > 0))
        if need.any():
            from features.pricing import implied_vol

            iv = iv.copy()
            iv[need] = implied_vol(self.mid[need], self.phi[need], self.market.spot, self.strike[need],
                                   self.days[need] / 365.0, self.rate[need], self.div[need])
        bad = ok & ~np.isfinite(iv)
        if bad.any() and (ok & np.isfinite(iv)).any():
            # a price the solver cannot invert (deep in the money, at a bound): the neighbouring strike's vol
            df = pd.DataFrame({"e": self.expiry, "p": self.phi, "k": self.strike, "iv": np.where(ok, iv, np.nan)})
            df = df.sort_values(["e", "p", "k"])
            by = df.groupby(["e", "p"], sort=False)["iv"]
            df["iv"] = by.ffill().fillna(by.bfill())  # = ffill then bfill within each expiry and right
            filled = df["iv"].reindex(range(len(iv))).to_numpy(dtype=float)
            iv = np.where(bad, filled, iv)
        return iv

    def __len__(self) -> int:
        return int(self.strike.size)


class ChainSnapshot:
    """One chain on one bar.  Normalised lazily: the whole chain when a strategy selects contracts
    (:meth:`frame`), only the rows of the held strikes when the engine marks legs (:meth:`quotes`)."""

    def __init__(self, frame: pd.DataFrame, market: Market, underlying: str) -> None:
        self.market = market
        self.underlying = underlying
        missing = set(REQUIRED) - set(frame.columns)
        if missing:
            raise ChainError(f"chain of {underlying} on {market.date} lacks column(s) {sorted(missing)}")
        self.raw = frame
        self._cols: dict[str, np.ndarray] | None = None
        self._all: _Arrays | None = None
        self._greeks: dict[str, np.ndarray] | None = None
        self._frame: pd.DataFrame | None = None
        self._index: dict[tuple[np.datetime64, float, float], int] | None = None

    def prepare(self) -> ChainSnapshot:
        """Normalise the whole chain now (and its Greeks), so that every later look-up reads the same arrays:
        what a snapshot shared by many backtests does once (otherwise marking held legs normalises only their
        strikes)."""
        self.frame()
        return self

    def _columns(self) -> dict[str, np.ndarray]:
        if self._cols is None:
            self._cols = _columns(self.raw, self.market)
        return self._cols

    def _arrays(self) -> _Arrays:
        if self._all is None:
            self._all = _Arrays(self._columns(), self.market)
        return self._all

    def __len__(self) -> int:
        return len(self.raw)

    # ------------------------------------------------------------------ whole chain
    def frame(self) -> pd.DataFrame:
        """The chain with Greeks (for contract selection): expiry (date), strike, right, bid, ask, mid, iv,
        dte, delta, gamma, vega, theta, modeled.  Built once per snapshot: callers must not modify it."""
        if self._frame is not None:
            return self._frame
        a = self._arrays()
        if self._greeks is None:
            self._greeks = greeks(a.phi, self.market, a.strike, a.days, a.iv, a.rate, a.div)
        g = self._greeks
        self._frame = pd.DataFrame({
            "expiry": a.expiry.astype(object), "strike": a.strike, "right": np.where(a.phi > 0, "C", "P"),
            "bid": a.bid, "ask": a.ask, "mid": a.mid, "iv": a.iv, "dte": a.days, "delta": g["delta"],
            "gamma": g["gamma"], "vega": g["vega"], "theta": g["theta"], "modeled": a.modeled,
        })
        return self._frame

    def expiries(self) -> list[dt.date]:
        return [d.astype(dt.date) for d in np.unique(self._arrays().expiry)]

    # ------------------------------------------------------------------ held legs
    def _subset(self, contracts: Sequence[Contract]) -> _Arrays:
        """Normalised rows of the contracts' strikes only (cheap), or the whole chain if already normalised."""
        if self._all is not None:
            return self._all
        cols = self._columns()
        wanted = np.array([c.strike for c in contracts], dtype=float)
        near = np.abs(cols["strike"][:, None] - wanted[None, :]).min(axis=1, initial=np.inf) < 1e-6
        return _Arrays(cols, self.market, np.flatnonzero(near))

    @staticmethod
    def rows(a: _Arrays, contracts: Sequence[Contract]) -> np.ndarray:
        """Row index of each contract in ``a``, -1 where it is not quoted."""
        out = np.full(len(contracts), -1, dtype=np.int64)
        for i, c in enumerate(contracts):
            hit = np.flatnonzero((a.expiry == np.datetime64(c.expiry, "D")) & (a.phi == c.phi)
                                 & (np.abs(a.strike - c.strike) < 1e-6))
            if hit.size:
                out[i] = hit[0]
        return out

    def _row_index(self) -> dict[tuple[np.datetime64, float, float], int]:
        """(expiry, phi, strike rounded to 1e-6) → row of the normalised whole chain (built once)."""
        if self._index is None:
            a = self._arrays()
            index: dict[tuple[np.datetime64, float, float], int] = {}
            for i, key in enumerate(zip(a.expiry, a.phi.tolist(), np.round(a.strike, 6).tolist(), strict=True)):
                index.setdefault(key, i)  # the first row, as rows() takes
            self._index = index
        return self._index

    def _prepared_quotes(self, contracts: Sequence[Contract]) -> LegQuotes | None:
        """Quotes of contracts that are all on the prepared chain, from its arrays and Greeks (shared by every
        backtest reading this snapshot); ``None`` if one is missing (the general path prices it)."""
        index = self._row_index()
        idx = [index.get((np.datetime64(c.expiry, "D"), c.phi, round(c.strike, 6)), -1) for c in contracts]
        if min(idx, default=0) < 0:
            return None
        a, g, j = self._arrays(), self._greeks, np.asarray(idx, dtype=np.int64)
        assert g is not None
        return LegQuotes(bid=a.bid[j], ask=a.ask[j], mid=a.mid[j], iv=a.iv[j], delta=g["delta"][j],
                         gamma=g["gamma"][j], vega=g["vega"][j], theta=g["theta"][j], modeled=a.modeled[j],
                         fallback=np.zeros(len(contracts), dtype=bool))

    def quotes(self, contracts: Sequence[Contract], last_iv: Sequence[float] | None = None) -> LegQuotes:
        """Quotes and Greeks of ``contracts``; missing ones priced at ``last_iv`` (see module doc)."""
        if self._greeks is not None and contracts:  # whole chain normalised with Greeks: read them
            ready = self._prepared_quotes(contracts)
            if ready is not None:
                return ready
        n = len(contracts)
        a = self._subset(contracts)
        idx = self.rows(a, contracts)
        found = idx >= 0
        j = np.where(found, idx, 0)
        m = self.market
        day = np.datetime64(m.date, "D")
        phi = np.array([c.phi for c in contracts], dtype=float)
        strike = np.array([c.strike for c in contracts], dtype=float)
        days = np.array([(np.datetime64(c.expiry, "D") - day).astype(np.int64) for c in contracts], dtype=float)
        fallback_iv = np.asarray(last_iv if last_iv is not None else np.full(n, np.nan), dtype=float)
        iv = np.where(found, a.iv[j], fallback_iv) if len(a) else fallback_iv
        if not found.all() and np.isnan(iv[~found]).any():
            # no quote and no history: use the chain's nearest-strike vol of that expiry/right, else ATM-ish
            iv = iv.copy()
            for i in np.flatnonzero(~found & np.isnan(iv)):
                iv[i] = self._nearest_iv(contracts[int(i)])
        rate = np.where(found, a.rate[j], m.rate) if len(a) else m.rate
        div = np.where(found, a.div[j], m.dividend_yield) if len(a) else m.dividend_yield
        g = greeks(phi, m, strike, days, iv, rate, div)
        if len(a):
            bid = np.where(found, a.bid[j], g["price"])
            ask = np.where(found, a.ask[j], g["price"])
            mid = np.where(found, a.mid[j], g["price"])
            modeled = np.where(found, a.modeled[j], True)
        else:
            bid = ask = mid = g["price"]
            modeled = np.ones(n, dtype=bool)
        return LegQuotes(bid=bid, ask=ask, mid=mid, iv=iv, delta=g["delta"], gamma=g["gamma"], vega=g["vega"],
                         theta=g["theta"], modeled=modeled, fallback=~found)

    def _nearest_iv(self, c: Contract) -> float:
        a = self._arrays()
        if not len(a) or not np.isfinite(a.iv).any():
            raise ChainError(f"no quote for {c.label()} on {self.market.date} and no chain to model it from")
        same = np.isfinite(a.iv) & (a.phi == c.phi)
        if not same.any():
            same = np.isfinite(a.iv)
        cand = np.flatnonzero(same)
        dist = np.abs(a.strike[cand] - c.strike) + np.abs((a.expiry[cand] - np.datetime64(c.expiry, "D")).astype(float))
        return float(a.iv[cand[np.argmin(dist)]])
