"""Cell conversions shared by the chain layouts: text -> numbers and dates with a reason per bad cell.

Everything is vectorized on Arrow arrays: a clean column costs one ``cast``; only a column that fails it is
matched cell by cell (RE2) to find which cells are not numbers.  Dates are parsed once per distinct value
(a chain file repeats a handful of quote dates and expiries millions of times).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantlake.sources.text import shown

NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:inf|infinity|nan)$"
# text that means "no value" in vendor files (besides an empty cell)
MISSING_TEXT = ("nan", "null", "none", "na", "n/a", "-", "--")
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d", "%m/%d/%y", "%d-%b-%Y", "%Y/%m/%d")
_TZ_SUFFIX = re.compile(r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*(?:Z|[+-]\d{2}:?\d{2}|UTC)?$", re.I)


def canon(header: str) -> str:
    """Canonical column name: lower case without spaces, underscores, dashes, dots or square brackets."""
    return re.sub(r"[\s_\-.\[\]\ufeff\"]", "", str(header)).lower()


@dataclass
class RowErrors:
    """Reasons per row position of one batch (only failing rows get an entry)."""

    n: int
    reasons: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, mask: np.ndarray, reason: str | Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask):
            self.reasons[int(i)].append(reason(int(i)) if callable(reason) else reason)

    def copy(self) -> RowErrors:
        out = RowErrors(self.n)
        for k, v in self.reasons.items():
            out.reasons[k] = list(v)
        return out



def _text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _blank(text: pa.Array) -> pa.Array:
    """True where a trimmed text cell means "no value"."""
    lowered = pc.utf8_lower(text)
    return pc.fill_null(pc.or_(pc.equal(text, ""), pc.is_in(lowered, value_set=pa.array(MISSING_TEXT))), True)


def numbers(arr: pa.Array | pa.ChunkedArray, name: str, errors: RowErrors) -> np.ndarray:
    """A column as float64 (NaN = no value); cells that are not numbers get a reason in ``errors``.

    ``inf``/``1e309`` parse to infinity (validation quarantines them); ``nan`` and empty cells are missing.
    """
    arr = _text(arr)
    if pa.types.is_null(arr.type):
        return np.full(len(arr), np.nan)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(arr.type):
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    if not pa.types.is_string(arr.type):
        errors.add(np.ones(len(arr), dtype=bool), f"{name} is not a number (column of type {arr.type})")
        return np.full(len(arr), np.nan)
    try:
        out = pc.cast(arr, pa.float64())
        return _nan_for_null(out)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.utf8_trim_whitespace(arr)
    blank = _blank(text)
    text = pc.replace_substring(text, ",", "") if _has_thousands(text) else text
    ok = pc.fill_null(pc.match_substring_regex(text, NUMBER_RE, ignore_case=True), False)
    bad = pc.and_(pc.invert(ok), pc.invert(blank)).to_numpy(zero_copy_only=False)
    if bad.any():
        raw = arr
        errors.add(bad, lambda i: f"{name} is not a number (got {shown(raw[i].as_py())})")
    good = pc.if_else(pc.and_(ok, pc.invert(blank)), text, pa.scalar(None, pa.string()))
    return _nan_for_null(pc.cast(good, pa.float64()))


def _has_thousands(text: pa.Array) -> bool:
    return bool(pc.any(pc.match_substring_regex(text, r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")).as_py())


def _nan_for_null(arr: pa.Array) -> np.ndarray:
    out = arr.to_numpy(zero_copy_only=False)
    if out.dtype != np.float64:
        out = out.astype(np.float64)
    return out


def integers_as_float(arr: pa.Array | pa.ChunkedArray, name: str, errors: RowErrors) -> np.ndarray:
    """Counts (volume, open interest, sizes): numbers; fractional counts are kept as given."""
    return numbers(arr, name, errors)


def _parse_one(text: str, formats: Sequence[str]) -> dt.date | None:
    s = text.strip()
    if not s:
        return None
    core = _TZ_SUFFIX.sub("", s) if ("T" in s or ":" in s) else s
    for fmt in formats:
        try:
            return dt.datetime.strptime(core, fmt).date()
        except ValueError:
            continue
    return None


def dates(arr: pa.Array | pa.ChunkedArray, name: str, errors: RowErrors, formats: Sequence[str] = DATE_FORMATS) -> pa.Array:
    """A column as date32 (null = missing); text that is not a date gets a reason.

    Text dates are parsed once per distinct value, trying ``formats`` in order (a time of day and a UTC
    offset after an ISO date are ignored: the calendar date as written is the quote date).  Unix seconds
    (integers) and timestamps are converted to the date in their own time zone.
    """
    arr = _text(arr)
    if pa.types.is_date(arr.type):
        return arr.cast(pa.date32())
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is not None:
            arr = pc.local_timestamp(arr)
        return pc.cast(pc.floor_temporal(arr, unit="day"), pa.timestamp("s")).cast(pa.date32())
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.date32())
    if not pa.types.is_string(arr.type):
        errors.add(np.ones(len(arr), dtype=bool), f"{name} is not a date (column of type {arr.type})")
        return pa.nulls(len(arr), pa.date32())
    uniq = pc.unique(arr)
    parsed = [None if v is None else _parse_one(v, formats) for v in uniq.to_pylist()]
    table = pa.array(parsed, type=pa.date32())
    out = pc.take(table, pc.index_in(arr, value_set=uniq))
    text = pc.utf8_trim_whitespace(arr)
    bad = pc.and_(pc.is_null(out), pc.invert(_blank(text))).to_numpy(zero_copy_only=False)
    if bad.any():
        errors.add(bad, lambda i: f"{name} is not a date (got {shown(arr[i].as_py())})")
    return out


def strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Trimmed text (null for empty cells)."""
    arr = _text(arr)
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    t = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(t, ""), pa.scalar(None, pa.string()), t)


def rights(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``call``/``put``/``C``/``P`` (any case) -> ``C``/``P``; anything else kept upper-cased (rejected later)."""
    t = pc.utf8_upper(strings(arr))
    uniq = pc.unique(t)
    mapped: list[str | None] = []
    for v in uniq.to_pylist():
        if v is None:
            mapped.append(None)
        elif v in ("C", "CALL", "CALLS"):
            mapped.append("C")
        elif v in ("P", "PUT", "PUTS"):
            mapped.append("P")
        else:
            mapped.append(v)
    return pc.take(pa.array(mapped, type=pa.string()), pc.index_in(t, value_set=uniq))


def iv_decimal(iv: np.ndarray, unit: str) -> tuple[np.ndarray, str]:
    """Vendor IVs as decimals.  ``unit``: ``decimal``, ``percent`` or ``auto`` (percent when the median of
    the positive values is above 3, i.e. 300 %: no real chain's typical IV is that high as a decimal, and no
    percent IV that low).  0 means the vendor did not compute one: stored as missing.  Returns (iv, unit used)."""
    out = np.where(iv == 0, np.nan, iv)
    if unit == "auto":
        pos = out[np.isfinite(out) & (out > 0)]
        unit = "percent" if pos.size and float(np.median(pos)) > 3.0 else "decimal"
    if unit == "percent":
        out = out / 100.0
    return out, unit


def no_values(n: int) -> np.ndarray:
    """A column the layout does not have: all missing."""
    return np.full(n, np.nan)


def years_between(quote_date: pa.Array, expiry: pa.Array) -> np.ndarray:
    """ACT/365 years from quote date to expiry (NaN where either is missing)."""
    days = pc.days_between(quote_date, expiry).to_numpy(zero_copy_only=False)
    return np.asarray(days, dtype=np.float64) / 365.0
