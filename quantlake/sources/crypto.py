"""The ``ccxt`` source: OHLCV candles of crypto pairs from any exchange ccxt supports (issue 15).

* Symbols are stored as ``EXCHANGE:BASE/QUOTE`` (``BINANCE:BTC/USDT``); spot pairs as ccxt spells them.
* :meth:`CryptoSource.ohlcv` pages through ``fetch_ohlcv`` from ``since`` (each page starts one interval
  after the last candle received) until the exchange has nothing newer; ccxt's own rate limiter spaces the
  requests (``enableRateLimit``: the exchange's documented request weight, 50 ms per request on Binance).
* Each request is retried with exponential backoff (``retry_wait`` x 1, 2, 4 ...; tenacity) on what is
  transient: HTTP 429/418 (``RateLimitExceeded``/``DDoSProtection``), timeouts, 5xx and dropped
  connections.  After ``retries`` attempts the symbol fails with one line naming the exchange and the error;
  an unknown pair or interval is a user error and is never retried.  A page that failed is the only one
  fetched again: the pages before it are kept.
* The candle still forming (its end after ``clock()``) is dropped: only closed bars reach the lake.
  Candles the exchange sends malformed (a missing timestamp, prices that are not numbers) become rows of
  ``rejected_rows`` with the reason, like any other bad row.
* ``base_url`` sends every API request to another server, keeping the path (a mirror, or the recorded
  responses of the tests).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from quantlake.calendars import check_interval, parse_interval
from quantlake.errors import InvalidSymbolError, SourceError, SourceUnavailableError, UserInputError
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.netutil import one_line
from quantlake.tables import validate_symbol

NAME = "ccxt"
PAGE_LIMIT = 1000  # candles per request (Binance's maximum for spot klines)
DEFAULT_LOOKBACK = pd.Timedelta(days=365)  # first download of a pair without --start


def _utcnow() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _rebase_urls(urls: Any, base_url: str) -> Any:
    """Every absolute URL in ccxt's ``urls['api']`` pointed at ``base_url`` (path kept)."""
    from urllib.parse import urlsplit

    if isinstance(urls, dict):
        return {k: _rebase_urls(v, base_url) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        parts = urlsplit(urls)
        return base_url.rstrip("/") + parts.path
    return urls


def stored_symbol(exchange_id: str, pair: str) -> str:
    """``binance`` + ``btc/usdt`` -> ``BINANCE:BTC/USDT`` (validated)."""
    return validate_symbol(f"{exchange_id}:{pair}")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BINANCE:BTC/USDT`` -> (``binance``, ``BTC/USDT``)."""
    exch, _, pair = validate_symbol(symbol).partition(":")
    return exch.lower(), pair


class CryptoSource:
    """One ccxt exchange (public market data only: no API keys are used or needed)."""

    name = NAME
    incremental = True

    def __init__(
        self,
        exchange: str,
        *,
        base_url: str | None = None,
        timeout_ms: int = 10_000,
        retries: int = 4,
        retry_wait: float = 1.0,
        page_limit: int = PAGE_LIMIT,
        clock: Callable[[], pd.Timestamp] = _utcnow,
        rate_limit: bool = True,
    ) -> None:
        import ccxt

        exchange_id = exchange.strip().lower()
        if exchange_id not in ccxt.exchanges:
            raise UserInputError(f"unknown exchange {exchange!r} (ccxt knows {len(ccxt.exchanges)}, e.g. binance, kraken, coinbase)")
        options: dict[str, Any] = {"fetchCurrencies": False}
        if exchange_id.startswith("binance"):
            options["fetchMarkets"] = {"types": ["spot"]}  # one exchangeInfo request, not futures/options too
        self.exchange_id = exchange_id
        self.client = getattr(ccxt, exchange_id)({"enableRateLimit": rate_limit, "timeout": timeout_ms, "options": options})
        if base_url:
            self.client.urls["api"] = _rebase_urls(self.client.urls["api"], base_url)
        self.retries = max(1, retries)
        self.retry_wait = retry_wait
        self.page_limit = page_limit
        self.clock = clock
        self.requests = 0  # HTTP requests made (for the run's report)
        self._markets_loaded = False

    # ------------------------------------------------------------------ network, with retries
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import ccxt
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential,
        )

        def attempt() -> Any:
            self.requests += 1
            return fn(*args, **kwargs)

        retrying = Retrying(
            retry=retry_if_exception_type((ccxt.NetworkError, ccxt.ExchangeNotAvailable)),
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self.retry_wait, max=60 * self.retry_wait),
            reraise=False,
            sleep=time.sleep,
        )
        try:
            return retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            kind = _kind(last)
            err = SourceUnavailableError if kind in ("timed out", "connection failed") else SourceError
            raise err(
                f"{self.exchange_id}: {what} failed after {self.retries} attempts ({kind}): {one_line(str(last), 160)}"
            ) from None
        except ccxt.BadSymbol as exc:
            raise InvalidSymbolError(f"{self.exchange_id}: {what}: {one_line(str(exc), 160)}") from None
        except ccxt.BaseError as exc:
            raise SourceError(f"{self.exchange_id}: {what} failed: {one_line(str(exc), 160)}") from None

    def load_markets(self) -> dict[str, Any]:
        if not self._markets_loaded:
            self._call("loading markets", self.client.load_markets)
            self._markets_loaded = True
        return dict(self.client.markets or {})

    # ------------------------------------------------------------------ protocol
    def check(self, pair: str, interval: str) -> None:
        """A user error if the exchange has no such pair or interval (before anything is downloaded)."""
        check_interval(interval)
        tfs = self.client.timeframes or {}
        if tfs and interval not in tfs:
            raise UserInputError(f"{self.exchange_id} has no {interval} candles; it has {', '.join(tfs)}")
        markets = self.load_markets()
        if pair not in markets:
            close = [m for m in markets if m.split("/")[0] == pair.split("/")[0]][:5]
            hint = f"; e.g. {', '.join(close)}" if close else ""
            raise InvalidSymbolError(f"{pair} is not a market on {self.exchange_id}{hint}")

    def ohlcv(
        self,
        pair: str,
        interval: str,
        since: pd.Timestamp | None = None,
        until: pd.Timestamp | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RawBatch:
        """Closed candles of ``pair`` from ``since`` (default a year ago) to ``until`` (default now) as a
        ``bars`` batch."""
        self.check(pair, interval)
        step = parse_interval(interval)
        step_ms = int(step / pd.Timedelta(milliseconds=1))
        now = self.clock()
        start = since if since is not None else now - DEFAULT_LOOKBACK
        stop = min(until, now) if until is not None else now
        cursor = int(start.timestamp() * 1000)
        cursor -= cursor % step_ms if step < pd.Timedelta(days=7) else 0
        rows: list[list[Any]] = []
        while cursor <= stop.timestamp() * 1000:
            page = self._call(
                f"OHLCV {pair} {interval} from {pd.Timestamp(cursor, unit='ms', tz='UTC'):%Y-%m-%d %H:%M}",
                self.client.fetch_ohlcv, pair, interval, cursor, self.page_limit,
            )
            if not page:
                break
            rows += page
            if progress:
                progress(len(page))
            stamps = [r[0] for r in page if isinstance(r, list | tuple) and r and isinstance(r[0], int | float)]
            if not stamps or max(stamps) < cursor:
                break
            cursor = int(max(stamps)) + step_ms
        return self._batch(pair, interval, rows, step, now, until)

    def _batch(
        self, pair: str, interval: str, rows: list[list[Any]], step: pd.Timedelta, now: pd.Timestamp,
        until: pd.Timestamp | None,
    ) -> RawBatch:
        symbol = stored_symbol(self.exchange_id, pair)
        origin = f"{self.exchange_id}:{pair}:{interval}"
        unparsable: list[tuple[int, str, dict[str, object]]] = []
        good: list[tuple[int, list[Any]]] = []
        for i, r in enumerate(rows, 1):
            if not isinstance(r, list | tuple) or len(r) < 5 or not isinstance(r[0], int | float):
                unparsable.append((i, "malformed candle (expected [timestamp, open, high, low, close, volume])",
                                   {"candle": str(r)[:200]}))
                continue
            good.append((i, list(r) + [None] * (6 - len(r))))
        frame = pd.DataFrame(
            [[i, *r[:6]] for i, r in good], columns=[ROW_NO, "ms", "open", "high", "low", "close", "volume"]
        )
        frame = frame.drop_duplicates("ms", keep="last")  # overlapping pages
        ts = pd.to_datetime(frame["ms"].astype("int64"), unit="ms", utc=True).astype("datetime64[us, UTC]")
        closed = (ts + step) <= now
        if until is not None:
            closed &= ts <= until
        frame, ts = frame[closed.to_numpy()], ts[closed.to_numpy()]
        out = pd.DataFrame(
            {
                "symbol": symbol,
                "interval": interval,
                "ts": ts.to_numpy(),
                "date": ts.dt.date.to_numpy(),
                **{c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")},
                "source": f"{NAME}:{self.exchange_id}",
                ROW_NO: frame[ROW_NO].to_numpy(),
            }
        )
        out["adj_close"] = out["close"]  # no dividends or splits on a crypto pair
        out["ts"] = out["ts"].astype("datetime64[us, UTC]")
        return RawBatch("bars", out.sort_values("ts").reset_index(drop=True), origin, unparsable,
                        required=("open", "high", "low", "close", "volume"))


def _kind(exc: BaseException | None) -> str:
    import ccxt

    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return "rate limited (HTTP 429)"
    if isinstance(exc, ccxt.RequestTimeout):
        return "timed out"
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return "exchange unavailable"
    return "connection failed"


def since_for(watermark: pd.Timestamp | None, interval: str, start: dt.date | None, full: bool) -> pd.Timestamp | None:
    """Where a download starts: ``start`` if given, else one interval after the stored watermark."""
    if start is not None:
        return pd.Timestamp(start, tz="UTC")
    if watermark is not None and not full:
        return pd.Timestamp(watermark) + parse_interval(interval)
    return None


__all__ = ["NAME", "CryptoSource", "since_for", "split_symbol", "stored_symbol"]
