"""The ``yahoo`` source: daily bars, splits/dividends and option-chain snapshots through yfinance.

What it asks Yahoo for (all through ``yfinance.Ticker`` with a session this module owns):

* ``bars``/``actions``: ``Ticker.history(start, end + 1 day, interval="1d", auto_adjust=False, actions=True,
  repair=False)`` - one ``/v8/finance/chart/{symbol}?events=div,splits,capitalGains`` request (plus a
  ``range=1d`` request for the exchange time zone the first time a symbol is seen).  Open/High/Low/Close
  are kept as Yahoo gives them (split-adjusted), ``Adj Close`` becomes ``adj_close``.  ``bars`` and
  ``actions`` of the same call share one download.  Capital-gain distributions are not stored.
* ``option_chain``: last close from ``history(period="5d")`` (``underlying_price``), the expiries from
  ``Ticker.options`` and one ``/v7/finance/options/{symbol}?date=...`` per expiry.  ``quote_date`` is the
  date in America/New_York when the snapshot is taken (``clock`` is injectable).

Failures: nothing reachable -> :class:`SourceUnavailableError` (connect timeout ``timeouts.connect``; a
timeout, or a DNS failure/refusal of the same host, short-circuits the rest of yfinance's cookie/crumb
fallbacks, so an offline call costs about one connect attempt, not three); an unknown symbol -> :class:`InvalidSymbolError`; other HTTP errors,
rate limits and odd payloads -> :class:`SourceError`.  No retries here (the Prefect tasks retry).

yfinance keeps process-wide state (one ``YfData`` singleton holding the session, cookie and crumb, and a
config object).  Calls into yfinance therefore run under one module lock, with the session of the calling
``YahooSource`` installed, and ``hide_exceptions`` switched off only for the duration of the call.  Its
time-zone/cookie caches are placed under ``$QUANTLAKE_HOME/cache/yfinance`` (DESIGN §3).

``base_url`` sends every Yahoo request (query1/query2.finance.yahoo.com, fc.yahoo.com, guce.yahoo.com) to
one other server, keeping path and query: the tests serve recorded Yahoo JSON from a local server this way.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from quantlake import config
from quantlake.errors import (
    InvalidDateError,
    InvalidSymbolError,
    QuantlakeError,
    SourceError,
    SourceUnavailableError,
)
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.netutil import Timeouts, host_of, offline_reason, one_line
from quantlake.tables import validate_symbol

NAME = "yahoo"
NEW_YORK = ZoneInfo("America/New_York")

_LOCK = threading.RLock()  # yfinance's session/crumb singleton and config are process-wide
_cache_dir_set: Path | None = None

# no stray stderr lines: yfinance logs its fallbacks, and bs4 (which yfinance uses on Yahoo's consent pages)
# warns about undecodable bytes; with a NullHandler Python's last-resort stderr handler stays silent, while
# handlers an application installs on the root logger (Prefect's) still receive the records
for _name in ("yfinance", "bs4"):
    logging.getLogger(_name).addHandler(logging.NullHandler())


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_MEMO_SECONDS = 300.0
_DATA_PATHS = ("/v7/", "/v8/", "/v10/")  # Yahoo's data endpoints (not the cookie/crumb/consent pages)


def _make_session(base_url: str | None, timeouts: Timeouts) -> Any:
    """A curl_cffi session (what yfinance wants) with capped timeouts, optional host rewrite, fail-fast.

    After a connection failure it fails the rest of the call at once instead of letting yfinance try its
    cookie/crumb fallbacks (each would wait for its own timeout).  It also remembers the final HTTP status
    of each data request of the current call: yfinance turns a 5xx on its time-zone lookup into "no timezone" (which would read as an unknown symbol) and a 5xx on the
    chart into "no prices" (which would read as an empty range), so the adapter checks these itself.
    """
    from curl_cffi import requests as creq

    class _YahooSession(creq.Session):
        def __init__(self) -> None:
            super().__init__(impersonate="chrome")
            self.base_url = base_url.rstrip("/") if base_url else None
            self.reset()

        def reset(self) -> None:
            # connection failures of the current call: a timeout ends the call (the network is black-holed,
            # every further attempt would wait as long); DNS failures and refusals only end further
            # requests to the same host (fc.yahoo.com sits on some DNS blocklists while query2 works)
            self.timed_out: BaseException | None = None
            self.dead_hosts: dict[str, BaseException] = {}
            self.http_errors: dict[str, int] = {}  # data request -> its last status, if >= 400

        def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = urlsplit(url)
            if self.base_url:
                url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
            host = urlsplit(url).netloc
            known = self.timed_out or self.dead_hosts.get(host)
            if known is not None:  # don't let yfinance walk its fallbacks against a dead network
                raise known
            kwargs["timeout"] = timeouts.pair
            try:
                response = super().request(method, url, *args, **kwargs)
            except Exception as exc:
                reason = offline_reason(exc)
                if reason == "timed out":
                    self.timed_out = exc
                elif reason is not None:
                    self.dead_hosts[host] = exc
                raise
            if parts.path.startswith(_DATA_PATHS):
                params = kwargs.get("params") or {}
                key = f"{parts.path}?{parts.query}|{sorted((k, str(v)) for k, v in params.items() if k != 'crumb')}"
                if response.status_code >= 400:
                    self.http_errors[key] = int(response.status_code)
                else:
                    self.http_errors.pop(key, None)
            return response

    return _YahooSession()


def _server_failure(statuses: dict[str, int]) -> int | None:
    """The first status among data requests that means "Yahoo failed" (not "no such symbol")."""
    bad = [s for s in statuses.values() if s >= 500 or s in (401, 403, 429)]
    return bad[0] if bad else None


def _use_quantlake_cache_dir() -> None:
    """Point yfinance's sqlite caches (time zones, cookie) under $QUANTLAKE_HOME once per process."""
    global _cache_dir_set
    if _cache_dir_set is not None:
        return
    import yfinance as yf

    path = config.home() / "cache" / "yfinance"
    yf.set_tz_cache_location(str(path))
    _cache_dir_set = path


class YahooSource:
    """Yahoo Finance through yfinance (implements EquitySource and OptionSource)."""

    name = NAME
    incremental = True

    def __init__(
        self,
        symbols: Sequence[str] = (),
        underlyings: Sequence[str] = (),
        *,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        max_expiries: int | None = None,
    ) -> None:
        self._symbols = [validate_symbol(s) for s in symbols]
        self._underlyings = [validate_symbol(s) for s in underlyings]
        self.timeouts = timeouts or Timeouts()
        self.base_url = base_url
        self.clock = clock
        self.max_expiries = max_expiries
        self._session = _make_session(base_url, self.timeouts)
        # bars() and actions() of one symbol share a download; kept briefly so "latest" never goes stale
        self._history: OrderedDict[tuple[str, dt.date | None, dt.date | None], tuple[float, pd.DataFrame]] = (
            OrderedDict()
        )

    # ------------------------------------------------------------------ protocol
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def option_underlyings(self) -> list[str]:
        return list(self._underlyings)

    def bars(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        sym = validate_symbol(symbol)
        hist = self._daily(sym, start, end)
        dates = _dates(hist.index)
        frame = pd.DataFrame(
            {
                "symbol": sym,
                "date": dates,
                "open": _floats(hist, "Open"),
                "high": _floats(hist, "High"),
                "low": _floats(hist, "Low"),
                "close": _floats(hist, "Close"),
                "adj_close": _floats(hist, "Adj Close"),
                "volume": _floats(hist, "Volume"),
                "source": NAME,
                ROW_NO: np.arange(1, len(hist) + 1),
            }
        )
        return RawBatch("equity_bars", frame, _origin(sym, "chart", start, end))

    def actions(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch | None:
        sym = validate_symbol(symbol)
        hist = self._daily(sym, start, end)
        dates = _dates(hist.index)
        rows: list[dict[str, object]] = []
        for i, day in enumerate(dates):
            for col, kind in (("Stock Splits", "split"), ("Dividends", "dividend")):
                if col in hist.columns:
                    value = float(hist[col].iloc[i])
                    if value != 0 and not np.isnan(value):
                        rows.append({"symbol": sym, "date": day, "kind": kind, "value": value,
                                     "source": NAME, ROW_NO: i + 1})
        frame = pd.DataFrame(rows, columns=["symbol", "date", "kind", "value", "source", ROW_NO])
        return RawBatch("corporate_actions", frame, _origin(sym, "actions", start, end))

    def option_chain(self, underlying: str) -> RawBatch:
        sym = validate_symbol(underlying)
        quote_date = self.clock().astimezone(NEW_YORK).date()
        with self._yf_call(sym, "option chain") as yf:
            ticker = yf.Ticker(sym, session=self._session)
            recent = _history(ticker, sym, known=False, period="5d")
            closes = recent["Close"].dropna() if "Close" in recent.columns else pd.Series(dtype=float)
            if closes.empty:
                raise InvalidSymbolError(f"yahoo: unknown symbol {sym!r} (Yahoo has no recent prices for it)")
            last_close = float(closes.iloc[-1])
            expiries = list(ticker.options)
            if not expiries and not getattr(ticker, "_underlying", None):
                # a listed symbol without options still gets a quote back; nothing at all means the
                # options endpoint refused us (e.g. 401 "Invalid Crumb") - do not store "no options"
                raise SourceError(f"yahoo: the options endpoint returned nothing for {sym} (blocked or unauthorized?)")
            if self.max_expiries is not None:
                expiries = expiries[: self.max_expiries]
            chains = [(exp, ticker.option_chain(exp)) for exp in expiries]
        return _chain_batch(sym, quote_date, last_close, chains)

    # ------------------------------------------------------------------ internals
    def _daily(self, sym: str, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
        key = (sym, start, end)
        cached = self._history.get(key)
        if cached is not None and time.monotonic() - cached[0] < _MEMO_SECONDS:
            return cached[1]
        if start and end and start > end:
            raise InvalidDateError(f"yahoo: start {start} is after end {end}")
        kwargs: dict[str, Any] = {}
        if start is None:
            kwargs["period"] = "max"  # yfinance: everything (99 years back from end)
        else:
            kwargs["start"] = start.isoformat()
        if end is not None:
            kwargs["end"] = (end + dt.timedelta(days=1)).isoformat()  # yfinance's end is exclusive
        with self._yf_call(sym, "daily bars") as yf:
            ticker = yf.Ticker(sym, session=self._session)
            hist = _history(ticker, sym, known=True, **kwargs)
        if len(hist):  # Yahoo sometimes appends today's live bar past ``end``
            keep = [(start is None or d >= start) and (end is None or d <= end) for d in _dates(hist.index)]
            hist = hist[np.asarray(keep, dtype=bool)]
        self._history[key] = (time.monotonic(), hist)
        self._history.move_to_end(key)
        while len(self._history) > 16:
            self._history.popitem(last=False)
        return hist

    @contextmanager
    def _yf_call(self, sym: str, what: str) -> Iterator[Any]:
        """Run yfinance code with our session and raising errors; translate what escapes."""
        import yfinance as yf

        with _LOCK, warnings.catch_warnings():
            # yfinance 1.7 uses pandas APIs pandas 3.1 deprecates; not the user's business
            warnings.simplefilter("ignore", DeprecationWarning)
            _use_quantlake_cache_dir()
            self._session.reset()
            hide = yf.config.debug.hide_exceptions
            yf.config.debug.hide_exceptions = False
            try:
                yield yf
                status = _server_failure(self._session.http_errors)
                if status is not None:
                    raise _http_error(status, sym, what)
            except QuantlakeError:
                status = _server_failure(self._session.http_errors)
                if status is not None:  # the HTTP status says more than what yfinance made of it
                    raise _http_error(status, sym, what) from None
                raise
            except Exception as exc:
                status = _server_failure(self._session.http_errors)
                if status is not None:
                    raise _http_error(status, sym, what) from None
                raise _translate(exc, sym, what, self._host()) from None
            finally:
                yf.config.debug.hide_exceptions = hide
                self._session.reset()

    def _host(self) -> str:
        return host_of(self.base_url) if self.base_url else "query2.finance.yahoo.com"


def _history(ticker: Any, sym: str, *, known: bool, **kwargs: Any) -> pd.DataFrame:
    """``Ticker.history`` of daily bars.

    ``known``: yfinance has already proved the symbol exists (a start/end/max request first looks up the
    exchange time zone, which fails for unknown symbols), so "no prices" means an empty range - unless
    Yahoo itself says the symbol is not found or delisted.  Without that proof "no prices" is unknown.
    """
    from yfinance.exceptions import YFPricesMissingError

    try:
        hist: pd.DataFrame = ticker.history(
            interval="1d", auto_adjust=False, actions=True, repair=False, **kwargs
        )
    except YFPricesMissingError as exc:
        reason = (exc.yahoo_reason or "").lower()
        if not known or "delisted" in reason or "not found" in reason:
            raise InvalidSymbolError(f"yahoo: unknown symbol {sym!r} ({one_line(str(exc))})") from None
        return pd.DataFrame(columns=["Open", "High", "Low", "Close", "Adj Close", "Volume"])
    return hist


def _http_error(status: int, sym: str, what: str) -> SourceError:
    hint = " (rate limited)" if status == 429 else " (refused: cookie/crumb rejected?)" if status in (401, 403) else ""
    return SourceError(f"yahoo: HTTP {status} from Yahoo{hint} while fetching {what} for {sym}")


def _translate(exc: Exception, sym: str, what: str, host: str) -> QuantlakeError:
    from yfinance.exceptions import YFRateLimitError, YFTzMissingError

    if isinstance(exc, YFTzMissingError):
        return InvalidSymbolError(f"yahoo: unknown symbol {sym!r} (Yahoo returned no data for it)")
    if isinstance(exc, YFRateLimitError):
        return SourceError(f"yahoo: rate limited by Yahoo (HTTP 429) while fetching {what} for {sym}")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None and type(exc).__name__ == "HTTPError":
        if status == 404:
            return InvalidSymbolError(f"yahoo: unknown symbol {sym!r} (HTTP 404 from Yahoo)")
        return _http_error(int(status), sym, what)
    reason = offline_reason(exc)
    if reason is not None:
        return SourceUnavailableError(f"yahoo: cannot reach {host}: {reason} (while fetching {what} for {sym})")
    return SourceError(f"yahoo: unexpected response for {what} of {sym}: {type(exc).__name__}: {one_line(str(exc))}")


def _dates(index: pd.Index) -> list[dt.date]:
    """Exchange-local calendar dates of a yfinance DatetimeIndex."""
    if len(index) == 0:
        return []
    return [ts.date() for ts in pd.DatetimeIndex(index)]


def _floats(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)


def _origin(sym: str, what: str, start: dt.date | None, end: dt.date | None) -> str:
    return f"yahoo:{sym}:{what}:{start or 'first'}..{end or 'latest'}"


_CHAIN_COLUMNS = {
    "bid": "bid",
    "ask": "ask",
    "lastPrice": "last",
    "volume": "volume",
    "openInterest": "open_interest",
    "impliedVolatility": "vendor_iv",
}


def _chain_batch(
    sym: str, quote_date: dt.date, last_close: float, chains: Sequence[tuple[str, Any]]
) -> RawBatch:
    """calls/puts frames of ``Ticker.option_chain`` -> one ``option_quotes`` batch."""
    rows: list[dict[str, object]] = []
    unparsable: list[tuple[int, str, dict[str, object]]] = []
    row_no = 0
    for expiry_text, chain in chains:
        expiry = dt.date.fromisoformat(expiry_text)
        for right, frame in (("C", chain.calls), ("P", chain.puts)):
            if frame is None:
                continue
            for rec in frame.to_dict("records"):
                row_no += 1
                strike = pd.to_numeric(rec.get("strike"), errors="coerce")
                contract = rec.get("contractSymbol")
                if pd.isna(strike) or not isinstance(contract, str) or not contract:
                    raw: dict[str, object] = {str(k): (None if v is None else str(v)) for k, v in rec.items()}
                    unparsable.append((row_no, "option row without a numeric strike or a contract symbol", raw))
                    continue
                row: dict[str, object] = {
                    "quote_date": quote_date,
                    "underlying": sym,
                    "expiry": expiry,
                    "strike": float(strike),
                    "right": right,
                }
                for src, dst in _CHAIN_COLUMNS.items():
                    row[dst] = float(pd.to_numeric(rec.get(src), errors="coerce"))
                row.update({"underlying_price": last_close, "contract": contract, "source": NAME, ROW_NO: row_no})
                rows.append(row)
    columns = ["quote_date", "underlying", "expiry", "strike", "right", *_CHAIN_COLUMNS.values(),
               "underlying_price", "contract", "source", ROW_NO]
    frame = pd.DataFrame(rows, columns=columns)
    return RawBatch("option_quotes", frame, f"yahoo:{sym}:options:{quote_date}", unparsable)
