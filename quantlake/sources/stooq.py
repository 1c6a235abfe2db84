"""The ``stooq`` source: daily bars from Stooq's free CSV download (no key needed).

Request: ``GET {base_url}/q/d/l/?s=<symbol>&i=d[&d1=YYYYMMDD&d2=YYYYMMDD]`` answered with
``Date,Open,High,Low,Close,Volume`` rows, or a plain-text line (``No data``, ``Exceeded the daily hits
limit``).  Symbols map to Stooq's: US listings get ``.us`` (``AAPL`` -> ``aapl.us``, ``BRK-B`` ->
``brk-b.us``), a few indices have their own names (``^GSPC`` -> ``^spx``); an index without a mapping is an
unknown symbol here (the source chain then asks the next source).

Stooq adjusts its history for splits (and, for many US listings, dividends) itself; ``close`` is stored as
Stooq gives it and ``adj_close`` is left empty (unknown).  No corporate actions.  No retries here: the
Prefect tasks retry, like every network source.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import requests

from quantlake.errors import InvalidSymbolError, SourceError, SourceUnavailableError
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.netutil import Timeouts, host_of, offline_reason, one_line
from quantlake.tables import SYMBOL_RE, validate_symbol

NAME = "stooq"
BASE_URL = "https://stooq.com"
INDEX_MAP = {"^GSPC": "^spx", "^DJI": "^dji", "^NDX": "^ndx", "^IXIC": "^ndq", "^RUT": "^rut"}


def stooq_symbol(symbol: str) -> str:
    """Stooq's name of a quantlake symbol; InvalidSymbolError if Stooq has none."""
    sym = validate_symbol(symbol)
    if sym in INDEX_MAP:
        return INDEX_MAP[sym]
    if sym.startswith("^") or not SYMBOL_RE.fullmatch(sym):
        raise InvalidSymbolError(f"stooq: no Stooq name known for {sym}")
    return f"{sym.lower()}.us"


class StooqSource:
    """Stooq daily bars (implements EquitySource)."""

    name = NAME
    incremental = True

    def __init__(self, symbols: list[str] | None = None, *, base_url: str = BASE_URL,
                 timeouts: Timeouts | None = None) -> None:
        self._symbols = [validate_symbol(s) for s in symbols or []]
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "quantlake"

    def symbols(self) -> list[str]:
        return list(self._symbols)

    def actions(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch | None:
        return None

    def bars(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        sym = validate_symbol(symbol)
        params = {"s": stooq_symbol(sym), "i": "d"}
        if start is not None:
            params["d1"] = start.strftime("%Y%m%d")
        if end is not None:
            params["d2"] = end.strftime("%Y%m%d")
        url = f"{self.base_url}/q/d/l/"
        try:
            resp = self.session.get(url, params=params, timeout=self.timeouts.pair)
        except requests.RequestException as exc:
            reason = offline_reason(exc) or "request failed"
            raise SourceUnavailableError(f"cannot reach stooq ({host_of(url)}): {reason}") from None
        if resp.status_code >= 400:
            raise SourceError(f"stooq: HTTP {resp.status_code} for {sym}: {one_line(resp.text, 120)}")
        text = resp.text.strip()
        first = text.splitlines()[0] if text else ""
        if "exceeded" in first.lower():
            raise SourceError(f"stooq: {one_line(first, 120)} (Stooq's own daily limit)")
        if not first.lower().startswith("date"):
            if start is not None and first.lower().startswith("no data"):
                return _empty(sym, url)  # nothing new in the range
            raise InvalidSymbolError(f"stooq: no data for {sym} ({one_line(first, 80) or 'empty answer'})")
        try:
            df = pd.read_csv(io.StringIO(text))
        except (pd.errors.ParserError, ValueError) as exc:
            raise SourceError(f"stooq: unreadable CSV for {sym}: {one_line(str(exc), 120)}") from None
        cols = {c.lower(): c for c in df.columns}
        if "date" not in cols or "close" not in cols:
            raise SourceError(f"stooq: unexpected columns for {sym}: {list(df.columns)}")
        frame = pd.DataFrame(
            {
                "symbol": sym,
                "date": pd.to_datetime(df[cols["date"]], errors="coerce").dt.date,
                **{
                    k: pd.to_numeric(df[cols[k]], errors="coerce") if k in cols else np.nan
                    for k in ("open", "high", "low", "close", "volume")
                },
                "source": NAME,
                ROW_NO: np.arange(1, len(df) + 1),
            }
        )
        return RawBatch("equity_bars", frame, f"{url}?s={params['s']}", [])


def _empty(sym: str, url: str) -> RawBatch:
    cols = ["symbol", "date", "open", "high", "low", "close", "volume", "source", ROW_NO]
    return RawBatch("equity_bars", pd.DataFrame(columns=cols), f"{url}?s={sym}", [])
