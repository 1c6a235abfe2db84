"""A chain of equity sources with fallback, cross-checks and daily request quotas (issue 15).

``--source yahoo,stooq`` (or a config list) builds a :class:`SourceChain`:

* **Fallback**: each symbol is asked of the sources in order; a source that fails for it (unknown symbol,
  outage, HTTP error, quota used up) hands it to the next.  The first source that answers is the one whose
  rows are stored (``source`` column), with its corporate actions if it has any.
* **Cross-check** (default on): the later sources are asked too, and wherever two answer for the same date,
  closes that differ by more than ``tolerance`` (relative, default 0.5 %) are written to
  ``source_disagreements`` with both values.  Nothing is overwritten: the first source's row is stored.
* **Quotas**: each source's daily request quota (UTC day) is kept in the lake table ``source_quota``
  (requests made today by every run, and the quota).  Before a run, the requests it will certainly make
  (one per symbol needing data per source asked, cross-checking) are checked against what is left; a run
  that would exceed a quota stops before any request with the count.  During the run, a source whose quota
  runs out is skipped like a failing one.  Counts are written to the lake as the run goes (per committed
  chunk) and at its end.

Quotas default to :data:`DEFAULT_QUOTAS` and can be set per source with ``QUANTLAKE_QUOTA_<SOURCE>``
(e.g. ``QUANTLAKE_QUOTA_STOOQ=200``) or the ``quotas`` argument.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from quantlake.errors import QuantlakeError, SourceError, UserInputError
from quantlake.lake import Lake
from quantlake.sources.base import RawBatch
from quantlake.tables import SOURCE_DISAGREEMENTS, SOURCE_QUOTA

# requests per UTC day.  Yahoo publishes no limit (2,000 a day keeps clear of its throttling); Stooq
# answers "Exceeded the daily hits limit" past an undisclosed count; Alpha Vantage's free key allows 25.
DEFAULT_QUOTAS: dict[str, int] = {"yahoo": 2000, "stooq": 500, "alphavantage": 25}
DEFAULT_TOLERANCE = 0.005


class QuotaExceededError(SourceError):
    """A source's daily request quota would be exceeded (exit code 1; nothing was requested)."""


def parse_chain(value: str | Sequence[str]) -> list[str]:
    """``"yahoo,stooq"`` or ``["yahoo", "stooq"]`` -> the source names, validated (no repeats)."""
    names = [n.strip().lower() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    if not names:
        raise UserInputError("--source needs at least one source name")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserInputError(f"--source names {', '.join(dup)} more than once")
    return names


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class QuotaBook:
    """Requests per source for today, loaded from and written back to ``source_quota``."""

    def __init__(self, lake: Lake, quotas: Mapping[str, int] | None = None, today: dt.date | None = None) -> None:
        self.lake = lake
        self.day = today or _today()
        self.quotas = {**DEFAULT_QUOTAS, **_env_quotas(), **dict(quotas or {})}
        self.used: dict[str, int] = {}
        if lake.exists(SOURCE_QUOTA.name):
            df = lake.read(SOURCE_QUOTA.name, where="day = ?", params=[self.day])
            self.used = {str(s): int(n) for s, n in zip(df["source"], df["requests"], strict=True)}
        self._lock = threading.Lock()
        self._dirty = False

    def quota(self, source: str) -> int | None:
        return self.quotas.get(source)

    def left(self, source: str) -> int | None:
        q = self.quota(source)
        return None if q is None else q - self.used.get(source, 0)

    def check(self, planned: Mapping[str, int]) -> None:
        """QuotaExceededError naming every source whose quota the planned requests would exceed."""
        over = []
        for src, n in planned.items():
            left = self.left(src)
            if left is not None and n > left:
                over.append(
                    f"{src} needs {n} request(s) but has {max(left, 0)} of its {self.quota(src)} left today "
                    f"({self.used.get(src, 0)} used on {self.day})"
                )
        if over:
            raise QuotaExceededError("daily quota would be exceeded, nothing was requested: " + "; ".join(over))

    def take(self, source: str) -> None:
        """Count one request; QuotaExceededError if the quota is used up."""
        with self._lock:
            left = self.left(source)
            if left is not None and left <= 0:
                raise QuotaExceededError(
                    f"{source}: daily quota of {self.quota(source)} requests used up ({self.used.get(source, 0)} "
                    f"on {self.day})"
                )
            self.used[source] = self.used.get(source, 0) + 1
            self._dirty = True

    def flush(self) -> None:
        """Write today's counts to ``source_quota`` (one commit; nothing if unchanged)."""
        with self._lock:
            if not self._dirty:
                return
            rows = pd.DataFrame(
                {
                    "source": list(self.used),
                    "day": self.day,
                    "requests": [self.used[s] for s in self.used],
                    "quota": [self.quotas.get(s) for s in self.used],
                }
            )
            self._dirty = False
        self.lake.merge(SOURCE_QUOTA.name, rows, SOURCE_QUOTA, note="request counts")


def _env_quotas() -> dict[str, int]:
    out = {}
    for key, value in os.environ.items():
        if key.startswith("QUANTLAKE_QUOTA_"):
            try:
                out[key.removeprefix("QUANTLAKE_QUOTA_").lower()] = int(value)
            except ValueError:
                raise UserInputError(f"{key} must be a whole number of requests per day, got {value!r}") from None
    return out


class SourceChain:
    """Equity sources asked in order for each symbol (implements EquitySource)."""

    incremental = True

    def __init__(
        self,
        sources: Sequence[Any],
        lake: Lake,
        *,
        cross_check: bool = True,
        tolerance: float = DEFAULT_TOLERANCE,
        quotas: Mapping[str, int] | None = None,
    ) -> None:
        if not sources:
            raise UserInputError("a source chain needs at least one source")
        if not 0 < tolerance < 1:
            raise UserInputError(f"--tolerance must be between 0 and 1 (a fraction), got {tolerance}")
        self.sources = list(sources)
        self.name = ",".join(s.name for s in self.sources)
        self.lake = lake
        self.cross_check = cross_check
        self.tolerance = tolerance
        self.book = QuotaBook(lake, quotas)
        self.answered: dict[str, Any] = {}  # symbol -> the source whose rows are stored
        self.disagreements: list[pd.DataFrame] = []

    def symbols(self) -> list[str]:
        for s in self.sources:
            if s.symbols():
                return list(s.symbols())
        return []

    def reserve(self, n_symbols: int) -> None:
        """Stop before the run if its certain requests exceed a quota (see the module docstring)."""
        asked = self.sources if self.cross_check else self.sources[:1]
        self.book.check({s.name: n_symbols for s in asked})

    def bars(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        answers: list[tuple[Any, RawBatch]] = []
        errors: list[str] = []
        for src in self.sources:
            if answers and not self.cross_check:
                break
            try:
                self.book.take(src.name)
                answers.append((src, src.bars(symbol, start, end)))
            except QuantlakeError as exc:
                errors.append(f"{src.name}: {exc}")
        if not answers:
            kinds = "; ".join(errors)
            raise SourceError(f"{symbol}: every source failed ({kinds})")
        primary_src, primary = answers[0]
        self.answered[symbol] = primary_src
        for other_src, other in answers[1:]:
            diff = compare_closes(primary, other, primary_src.name, other_src.name, self.tolerance)
            if len(diff):
                self.disagreements.append(diff)
        return primary

    def actions(self, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch | None:
        src = self.answered.get(symbol)
        return None if src is None else src.actions(symbol, start, end)

    def flush(self) -> int:
        """Write request counts and disagreements found so far; the number of disagreements written."""
        self.book.flush()
        if not self.disagreements:
            return 0
        rows = pd.concat(self.disagreements, ignore_index=True)
        self.disagreements = []
        self.lake.merge(SOURCE_DISAGREEMENTS.name, rows, SOURCE_DISAGREEMENTS, note=f"cross-check {self.name}")
        return len(rows)


def build_chain(value: str | Sequence[str], lake: Lake, *, cross_check: bool = True,
                tolerance: float = DEFAULT_TOLERANCE, quotas: Mapping[str, int] | None = None) -> SourceChain:
    """A chain of network equity sources by name (``yahoo,stooq``)."""
    from quantlake.sources import get_source

    names = parse_chain(value)
    local = [n for n in names if n in ("sample", "csv")]
    if local and len(names) > 1:
        raise UserInputError(f"--source {','.join(names)}: a chain is made of network sources, not {local[0]}")
    return SourceChain([get_source(n) for n in names], lake, cross_check=cross_check, tolerance=tolerance,
                       quotas=quotas)


def ingest_equity_chain(
    lake: Lake,
    chain: SourceChain,
    symbols: Sequence[str] | None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    **kwargs: Any,
) -> list[Any]:
    """:func:`quantlake.ingest.ingest_equity` through a chain: quota check first, counts and disagreements
    written at the end (also when the run fails)."""
    from quantlake.ingest import IngestReport, ingest_equity, watermarks
    from quantlake.tables import validate_symbol

    syms = [validate_symbol(s) for s in symbols or []]
    if not syms:
        raise UserInputError(f"source {chain.name!r} needs --symbols")
    needed = len(syms)
    if not full and start is None and lake.exists("equity_bars"):
        marks = watermarks(lake, "equity_bars", "symbol", "date")
        last = end or dt.date.today()
        needed = sum(1 for s in syms if s not in marks or marks[s] + dt.timedelta(days=1) <= last)
    chain.reserve(needed)
    try:
        reports = ingest_equity(lake, chain, syms, start, end, full=full, **kwargs)
    finally:
        n = chain.flush()
    check = IngestReport("source_disagreements", chain.name, rows_read=n, accepted=n, inserted=n)
    if n:
        check.version = lake.version(SOURCE_DISAGREEMENTS.name)
    return [*reports, check] if chain.cross_check and len(chain.sources) > 1 else reports


def compare_closes(a: RawBatch, b: RawBatch, name_a: str, name_b: str, tolerance: float) -> pd.DataFrame:
    """Dates where both batches have a close and they differ by more than ``tolerance`` (relative)."""
    cols = ["symbol", "date", "close"]
    fa, fb = a.frame, b.frame
    if fa.empty or fb.empty or "close" not in fa or "close" not in fb:
        return pd.DataFrame(columns=[f.name for f in SOURCE_DISAGREEMENTS.schema if f.name != "checked_at"])
    m = fa[cols].merge(fb[cols], on=["symbol", "date"], suffixes=("", "_other"))
    m = m.dropna(subset=["close", "close_other"])
    m = m[(m["close"] > 0) & (m["close_other"] > 0)]
    rel = (m["close"] / m["close_other"] - 1).abs()
    bad = m[rel.to_numpy() > tolerance + 1e-12]
    return pd.DataFrame(
        {
            "table": "equity_bars",
            "symbol": bad["symbol"].to_numpy(),
            "date": bad["date"].to_numpy(),
            "source": name_a,
            "other_source": name_b,
            "column": "close",
            "value": bad["close"].to_numpy(dtype=float),
            "other_value": bad["close_other"].to_numpy(dtype=float),
            "rel_diff": rel[rel.to_numpy() > tolerance + 1e-12].to_numpy(dtype=float),
            "tolerance": float(tolerance),
        }
    )


__all__ = [
    "DEFAULT_QUOTAS", "QuotaBook", "QuotaExceededError", "SourceChain", "build_chain", "compare_closes",
    "ingest_equity_chain", "parse_chain",
]
