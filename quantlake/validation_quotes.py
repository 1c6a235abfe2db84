"""Row rules of ``option_quotes`` (every option source: vendor chain files, yahoo, the sample), vectorized.

Why not the pandera schema the other tables use: pandera's lazy validation costs ~2 s per million rows on
this machine, and chain files run to tens of millions of rows (issue 12's goal is the whole ingest within 3x
of a raw CSV read).  These are numpy masks over the columns, each with the reason a person reads; the reasons
are built only for the rows that fail.

Rules (a row breaking any of them goes to ``rejected_rows`` with every reason):

* key columns present: quote_date, underlying (a valid symbol), root (a valid symbol), expiry, strike, right;
* strike finite and > 0; right C or P; expiry not before the quote date; quote date not in the future;
* the quote date is an exchange session (XNYS): a snapshot stamped on a holiday or weekend repeats another
  session's prices under the wrong date;
* every number finite (``inf``, ``1e309`` quarantine the row); prices, sizes, volume, open interest and IV
  >= 0; bid <= ask; prices, strike and underlying level at most ``max_price`` (absurd values such as 1e308
  break every downstream statistic) and an underlying level > 0;
* the same key twice in the batch: exact repeats keep the first copy, conflicting copies are all rejected
  naming each other's origin and row.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantlake.calendars import is_trading_day
from quantlake.sources.text import shown
from quantlake.tables import OPTION_QUOTES, SYMBOL_RE

NUMERIC = (
    "bid", "ask", "bid_size", "ask_size", "last", "volume", "open_interest", "vendor_iv",
    "vendor_delta", "vendor_gamma", "vendor_theta", "vendor_vega", "underlying_price",
)  # fmt: skip
NONNEG = ("bid", "ask", "bid_size", "ask_size", "last", "volume", "open_interest", "vendor_iv")
PRICES = ("bid", "ask", "last", "underlying_price")


@dataclass(frozen=True)
class QuoteRules:
    max_price: float = 1e7
    today: dt.date | None = None


# ------------------------------------------------------------------------------------------- calendar
@lru_cache(maxsize=8192)
def is_session(day: dt.date) -> bool:
    """True when XNYS trades on ``day`` (the maintained calendar, :mod:`quantlake.calendars`)."""
    return bool(is_trading_day(day))


def closed_reason(day: dt.date) -> str:
    """Why ``day`` is not a session, for a reject reason."""
    if day.weekday() >= 5:
        return f"quote date {day} is a {day.strftime('%A')} (no XNYS session)"
    return f"quote date {day} is an XNYS holiday (no session): the snapshot repeats another session's prices"


# ------------------------------------------------------------------------------------------- rules
class _Columns:
    """Uniform, cheap column access over an Arrow table or a pandas frame."""

    def __init__(self, data: pa.Table | pd.DataFrame) -> None:
        self.data = data
        self.arrow = isinstance(data, pa.Table)
        self.n = data.num_rows if self.arrow else len(data)
        self.names = set(data.column_names if self.arrow else data.columns)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def floats(self, name: str) -> np.ndarray:
        if name not in self.names:
            return np.full(self.n, np.nan)
        if self.arrow:
            col = self.data.column(name)
            if not pa.types.is_floating(col.type):
                col = pc.cast(col, pa.float64(), safe=False)
            return np.asarray(col.to_numpy(), dtype=np.float64)
        return pd.to_numeric(self.data[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    def dates(self, name: str) -> np.ndarray:
        """``datetime64[D]`` (NaT where missing or not a date)."""
        if name not in self.names:
            return np.full(self.n, np.datetime64("NaT"), dtype="datetime64[D]")
        if self.arrow:
            col = self.data.column(name)
            if pa.types.is_timestamp(col.type):
                col = pc.cast(col, pa.date32())
            return np.asarray(col.to_numpy(), dtype="datetime64[D]")
        s = self.data[name]
        if pd.api.types.is_datetime64_any_dtype(s):
            return s.to_numpy().astype("datetime64[D]")
        return pd.to_datetime(s, errors="coerce").to_numpy().astype("datetime64[D]")

    def text(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values as objects, missing mask)."""
        if name not in self.names:
            return np.full(self.n, None, dtype=object), np.ones(self.n, dtype=bool)
        if self.arrow:
            col = self.data.column(name)
            return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object), np.asarray(
                pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)  # fmt: skip
        s = self.data[name]
        return s.to_numpy(dtype=object), s.isna().to_numpy()

    def bad_text(self, name: str, ok: Callable[[str], bool]) -> np.ndarray:
        """True where a present value fails ``ok`` (tested once per distinct value)."""
        if name not in self.names:
            return np.zeros(self.n, dtype=bool)
        if self.arrow:
            col = self.data.column(name)
            uniq = pc.unique(col).to_pylist()
            bad = [u for u in uniq if u is not None and not ok(u)]
            if not bad:
                return np.zeros(self.n, dtype=bool)
            return np.asarray(pc.is_in(col, value_set=pa.array(bad, col.type)).to_numpy(zero_copy_only=False), dtype=bool)
        s = self.data[name]
        bad = [u for u in pd.unique(s.dropna()) if not ok(u)]
        return s.isin(bad).to_numpy() if bad else np.zeros(self.n, dtype=bool)


def check_quotes(
    frame: pa.Table | pd.DataFrame,
    rules: QuoteRules | None = None,
    origins: Sequence[str] | None = None,
    row_nos: np.ndarray | None = None,
    duplicates: bool = True,
) -> dict[int, list[str]]:
    """Reasons per failing row position of ``frame`` (an ``option_quotes``-shaped Arrow table or frame).

    ``origins``/``row_nos`` (per row) name the file and row in duplicate-key reasons; without them the
    positions are used.  ``duplicates=False`` leaves the duplicate-key rule to the caller.
    """
    rules = rules or QuoteRules()
    cols = _Columns(frame)
    n = cols.n
    reasons: dict[int, list[str]] = defaultdict(list)
    if n == 0:
        return reasons

    def flag(mask: np.ndarray, reason: str | None = None, values: np.ndarray | None = None, fmt: str = "") -> None:
        for i in np.flatnonzero(mask):
            reasons[int(i)].append(reason if reason is not None else fmt.format(shown(values[i] if values is not None else None)))

    qd, ex = cols.dates("quote_date"), cols.dates("expiry")
    flag(np.isnat(qd), "quote_date is missing")
    flag(np.isnat(ex), "expiry is missing")
    both = ~np.isnat(qd) & ~np.isnat(ex)
    flag(both & (ex < qd), "expiry before quote date")
    today = np.datetime64(rules.today or dt.date.today(), "D")
    flag(~np.isnat(qd) & (qd > today), "quote date is in the future")
    for d in np.unique(qd[~np.isnat(qd)]):
        day = d.astype(dt.date)
        if not is_session(day):
            flag(qd == d, closed_reason(day))

    for key in ("underlying", "root"):
        values, missing = cols.text(key)
        flag(missing, f"{key} is missing")
        flag(cols.bad_text(key, lambda u: bool(SYMBOL_RE.fullmatch(str(u)))), None, values,
             f"{key} is not a valid symbol (got {{}})")  # fmt: skip
    right, missing = cols.text("right")
    flag(missing, "right is missing")
    flag(cols.bad_text("right", lambda u: u in ("C", "P")), None, right, "right must be C or P (got {})")

    strike = cols.floats("strike")
    flag(np.isnan(strike), "strike is missing")
    flag(np.isinf(strike), None, strike, "strike must be finite (got {})")
    with np.errstate(invalid="ignore"):
        flag(np.isfinite(strike) & (strike <= 0), None, strike, "strike must be > 0 (got {})")
        for c in NUMERIC:
            if c not in cols:
                continue
            x = cols.floats(c)
            flag(np.isinf(x), None, x, f"{c} must be finite (got {{}})")
            if c in NONNEG:
                flag(x < 0, None, x, f"{c} must be >= 0 (got {{}})")
            if c in PRICES:
                flag(np.isfinite(x) & (x > rules.max_price), None, x,
                     f"{c} above {rules.max_price:g}, not a price (got {{}})")  # fmt: skip
        flag(np.isfinite(strike) & (strike > rules.max_price), None, strike,
             f"strike above {rules.max_price:g}, not a price (got {{}})")  # fmt: skip
        if "underlying_price" in cols:
            flag(cols.floats("underlying_price") == 0, "underlying_price must be > 0 (got 0.0)")
        if "bid" in cols and "ask" in cols:
            flag(cols.floats("bid") > cols.floats("ask"), "bid > ask")

    if duplicates:
        duplicate_reasons(frame.to_pandas() if cols.arrow else frame, reasons, origins, row_nos)
    return reasons


def duplicate_reasons(
    frame: pd.DataFrame,
    reasons: dict[int, list[str]],
    origins: Sequence[str] | None,
    row_nos: np.ndarray | None,
) -> None:
    keys = [k for k in OPTION_QUOTES.keys if k in frame.columns]
    dup = frame.duplicated(keys, keep=False).to_numpy()
    if not dup.any():
        return
    values = [c for c in frame.columns if c in OPTION_QUOTES.schema.names and c not in keys and c != "ingested_at"]
    sub = frame[dup]

    def where(i: int) -> str:
        row = int(row_nos[i]) if row_nos is not None else i + 1
        return f"row {row} of {origins[i]}" if origins is not None else f"row {row}"

    for _, group in sub.groupby(keys, sort=False, dropna=False):
        pos = [int(frame.index.get_loc(i)) for i in group.index]
        key = ", ".join(str(group.iloc[0][k]) for k in keys)
        identical = len(group[values].astype(str).drop_duplicates()) == 1
        if identical:
            for p in pos[1:]:
                reasons[p].append(f"duplicate key ({key}): repeats {where(pos[0])}")
        else:
            for p in pos:
                others = ", ".join(where(q) for q in pos if q != p)
                reasons[p].append(f"duplicate key ({key}) with different values in {others}")
