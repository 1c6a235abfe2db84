"""The ``fred`` source: FRED / ALFRED economic series through fredapi.

Two modes, both keeping the ``realtime_start`` key of ``macro_series``:

* ``vintages=False`` (default): ``Fred.get_series`` - today's values of every observation.  FRED's
  current-vintage answer does not say when each value first became known, so ``realtime_start`` is set to
  the observation date (the same convention as the sample data).  Fine for daily market series that are
  never revised (DGS10, VIXCLS...); for revised series (UNRATE, M2SL...) this is the latest revision
  labelled as known on the observation date - use ``vintages=True`` for point-in-time research.
* ``vintages=True``: ``Fred.get_series_all_releases`` (ALFRED) - one row per (observation date, vintage)
  with FRED's real ``realtime_start``; ``start``/``end`` filter observation dates.

FRED's ``"."`` means "no observation" and such rows are dropped, not reported as errors.  A row whose date
or value cannot be read at all goes to ``RawBatch.unparsable``.

fredapi builds URLs from ``Fred.root_url`` (pointed at ``base_url`` when given, e.g. a local test server)
and fetches them with urllib with no timeout.  :class:`_Client` keeps fredapi's URLs and parsing but does
the HTTP itself (requests, short connect timeout, no retries), follows FRED's ``offset`` paging (fredapi
silently stops at the first 100,000 rows), and turns failures into quantlake errors.

The API key comes from the ``api_key`` argument, else ``$FRED_API_KEY``, else a Prefect Secret block named
``fred-api-key`` (only looked up when a Prefect API is configured or a flow is running, so a plain CLI run
never starts a Prefect server just to find no key).  The key is never logged and never part of a message.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantlake.errors import (
    InvalidDateError,
    InvalidSymbolError,
    MissingCredentialsError,
    QuantlakeError,
    SourceError,
    SourceUnavailableError,
)
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.netutil import Timeouts, host_of, mask_secrets, offline_reason, one_line

NAME = "fred"
DEFAULT_ROOT_URL = "https://api.stlouisfed.org/fred"
ENV_KEY = "FRED_API_KEY"
SECRET_BLOCK = "fred-api-key"
KEY_HELP = (
    f"{ENV_KEY} is not set: get a free key at https://fred.stlouisfed.org/docs/api/api_key.html and "
    f"export {ENV_KEY}=... (or save it in a Prefect Secret block named '{SECRET_BLOCK}')"
)
# the FRED series the sample data ships, a sensible default universe for the macro flow
DEFAULT_SERIES = ("DGS10", "DGS2", "DFII10", "BAMLC0A0CM", "BAMLH0A0HYM2", "VIXCLS", "UNRATE", "M2SL",
                  "WALCL", "IPMAN")
SERIES_RE = re.compile(r"^[A-Z0-9_.\-]{1,40}$")


def validate_series_id(series_id: str) -> str:
    sid = series_id.strip().upper()
    if not SERIES_RE.fullmatch(sid):
        raise InvalidSymbolError(f"invalid FRED series id {series_id!r}: use 1-40 characters A-Z, 0-9, _ . -")
    return sid


def _prefect_secret(name: str) -> str | None:
    """Best effort: the value of a Prefect Secret block, if Prefect is in use, reachable and has it.

    Only tried inside a process already running Prefect (a flow imported it) or with ``PREFECT_API_URL``
    set, so a plain script neither pays Prefect's import time nor starts an ephemeral server.
    """
    if "prefect" not in sys.modules and not os.environ.get("PREFECT_API_URL"):
        return None
    try:
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.settings import PREFECT_API_URL
    except ImportError:
        return None
    if not (PREFECT_API_URL.value() or FlowRunContext.get() or TaskRunContext.get()):
        return None
    try:
        from prefect.blocks.system import Secret

        block: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
        value = block.get()
    except Exception:  # no block, no server, wrong type: fall through to the clear "not set" error
        return None
    return str(value) if value else None


def resolve_api_key(explicit: str | None = None) -> str:
    """The FRED key from the argument, ``$FRED_API_KEY`` or the Prefect Secret block, else an error."""
    key = explicit or os.environ.get(ENV_KEY) or _prefect_secret(SECRET_BLOCK)
    if key and key.strip():
        return key.strip()
    raise MissingCredentialsError(KEY_HELP)


class _FredHTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _client_class() -> type:
    from fredapi import Fred

    class _Client(Fred):
        """fredapi's URLs and parsing; our HTTP (timeouts, paging, errors) and row screening."""

        def __init__(self, api_key: str, root_url: str, timeouts: Timeouts) -> None:
            super().__init__(api_key=api_key)
            self.root_url = root_url.rstrip("/")
            self.timeouts = timeouts
            self.unparsable: list[tuple[int, str, dict[str, object]]] = []
            self.kept_rows: list[int] = []  # row number (in FRED's answer) of each observation fredapi sees

        # fredapi calls ``self.__fetch_data(url)``, i.e. this name
        def _Fred__fetch_data(self, url: str) -> ET.Element:
            self.unparsable, self.kept_rows = [], []
            root = self._get(url)
            if root.tag != "observations":
                return root
            total = int(root.get("count") or len(root))
            rows = list(root)
            while len(rows) < total:
                page = self._get(f"{url}&offset={len(rows)}")
                if not len(page):
                    break
                rows.extend(page)
            root[:] = self._screen(rows)
            return root

        def _get(self, url: str) -> ET.Element:
            import requests

            try:
                resp = requests.get(url, params={"api_key": self.api_key}, timeout=self.timeouts.pair)
            except requests.RequestException as exc:
                reason = offline_reason(exc) or "connection failed"
                raise SourceUnavailableError(f"fred: cannot reach {host_of(self.root_url)}: {reason}") from None
            try:
                root = ET.fromstring(resp.content)
            except ET.ParseError:
                if resp.status_code >= 400:
                    raise _FredHTTPError(resp.status_code, resp.reason or "error") from None
                raise SourceError(f"fred: response from {host_of(self.root_url)} is not XML") from None
            if resp.status_code >= 400 or root.tag == "error":
                raise _FredHTTPError(resp.status_code, root.get("message") or resp.reason or "error")
            return root

        def _screen(self, rows: list[ET.Element]) -> list[ET.Element]:
            """Keep observations fredapi can parse; the others become unparsable rows."""
            kept = []
            for i, el in enumerate(rows, 1):
                problem = _observation_problem(el)
                if problem:
                    self.unparsable.append((i, problem, dict(el.attrib)))
                else:
                    kept.append(el)
                    self.kept_rows.append(i)
            return kept

    return _Client


def _observation_problem(el: ET.Element) -> str | None:
    for attr in ("date", "realtime_start"):
        text = el.get(attr)
        if attr == "realtime_start" and text is None:
            continue
        try:
            dt.date.fromisoformat(text or "")
        except ValueError:
            return f"{attr} is not a date (got {text!r})"
    value = el.get("value")
    if value == ".":
        return None
    try:
        number = float(value or "")
    except ValueError:
        return f"value is not a number (got {value!r})"
    if not math.isfinite(number):
        return f"value is not a finite number (got {value!r})"
    return None


class FredSource:
    """FRED/ALFRED through fredapi (implements MacroSource)."""

    name = NAME
    incremental = True

    def __init__(
        self,
        series: Sequence[str] = DEFAULT_SERIES,
        *,
        api_key: str | None = None,
        vintages: bool = False,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self._series = [validate_series_id(s) for s in series]
        self._explicit_key = api_key
        self.vintages = vintages
        self.base_url = (base_url or DEFAULT_ROOT_URL).rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self._client: Any = None
        self._lock = threading.Lock()  # the client keeps per-request state (unparsable rows)

    def __repr__(self) -> str:  # never show the key
        return f"FredSource(vintages={self.vintages}, base_url={self.base_url!r})"

    def series_ids(self) -> list[str]:
        return list(self._series)

    def check_credentials(self) -> None:
        """Raise :class:`MissingCredentialsError` now if no key can be found (e.g. before starting a flow)."""
        resolve_api_key(self._explicit_key)

    def macro(self, series_id: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        sid = validate_series_id(series_id)
        if start and end and start > end:
            raise InvalidDateError(f"fred: start {start} is after end {end}")
        with self._lock:
            return self._macro(sid, start, end)

    def _macro(self, sid: str, start: dt.date | None, end: dt.date | None) -> RawBatch:
        client = self._get_client()
        try:
            if self.vintages:
                table = client.get_series_all_releases(sid)
                frame = self._vintage_frame(client, sid, table, start, end)
            else:
                series = client.get_series(sid, observation_start=start, observation_end=end)
                frame = self._latest_frame(client, sid, series)
        except SourceUnavailableError as exc:
            raise SourceUnavailableError(f"{exc} (while fetching series {sid})") from None
        except QuantlakeError:
            raise
        except _FredHTTPError as exc:
            raise _http_error(exc, sid, client.api_key) from None
        except (ValueError, KeyError, TypeError) as exc:
            msg = mask_secrets(one_line(str(exc)), client.api_key)
            raise SourceError(f"fred: unexpected response for series {sid}: {msg}") from None
        origin = f"fred:{sid}:{'vintages' if self.vintages else 'latest'}:{start or 'first'}..{end or 'latest'}"
        return RawBatch("macro_series", frame, origin, list(client.unparsable))

    # ------------------------------------------------------------------ internals
    def _get_client(self) -> Any:
        if self._client is None:
            key = resolve_api_key(self._explicit_key)
            self._client = _client_class()(key, self.base_url, self.timeouts)
        return self._client

    @staticmethod
    def _latest_frame(client: Any, sid: str, series: pd.Series) -> pd.DataFrame:
        dates = [pd.Timestamp(d).date() for d in series.index]
        rows = client.kept_rows if len(client.kept_rows) == len(series) else range(1, len(series) + 1)
        frame = pd.DataFrame(
            {
                "series_id": sid,
                "date": dates,
                "realtime_start": dates,  # see module docstring: known on the observation date
                "value": pd.to_numeric(series, errors="coerce").to_numpy(dtype=float),
                "source": NAME,
                ROW_NO: np.asarray(rows, dtype=np.int64),
            }
        )
        return frame[frame["value"].notna()].reset_index(drop=True)  # "." = no observation

    @staticmethod
    def _vintage_frame(
        client: Any, sid: str, table: pd.DataFrame, start: dt.date | None, end: dt.date | None
    ) -> pd.DataFrame:
        columns = ["series_id", "date", "realtime_start", "value", "source", ROW_NO]
        if table.empty or "date" not in table.columns:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame(
            {
                "series_id": sid,
                "date": [pd.Timestamp(d).date() for d in table["date"]],
                "realtime_start": [pd.Timestamp(d).date() for d in table["realtime_start"]],
                "value": pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=float),
                "source": NAME,
                ROW_NO: np.asarray(client.kept_rows[: len(table)], dtype=np.int64),
            }
        )
        keep = frame["value"].notna()
        if start is not None:
            keep &= frame["date"].map(lambda d: d >= start)
        if end is not None:
            keep &= frame["date"].map(lambda d: d <= end)
        return frame[keep].reset_index(drop=True)[columns]


def _http_error(exc: _FredHTTPError, sid: str, key: str | None) -> QuantlakeError:
    message = mask_secrets(one_line(exc.message), key)
    lowered = message.lower()
    if exc.status in (400, 404) and "series does not exist" in lowered:
        return InvalidSymbolError(f"fred: unknown series {sid!r} (FRED: {message})")
    if exc.status in (400, 401, 403) and "api_key" in lowered:
        return MissingCredentialsError(f"fred: FRED rejected the API key in {ENV_KEY} ({message})")
    if exc.status == 429:
        return SourceError(f"fred: rate limited by FRED (HTTP 429) while fetching series {sid}")
    return SourceError(f"fred: HTTP {exc.status} from FRED for series {sid}: {message}")
