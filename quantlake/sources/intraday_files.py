"""Intraday rows in the user's bar files: timestamps, time zones and the bar interval (issue 15).

A file whose timestamps carry a time of day (``2024-01-02 09:35``, ``2024-01-02T14:35:00Z``) holds intraday
bars: they go to the ``bars`` table keyed ``(symbol, interval, ts)`` instead of being read as duplicate
dates.  Rules:

* A timestamp with an offset or ``Z`` is that instant; a naive one is local time in ``tz`` (default: the
  calendar's zone, America/New_York for NYSE, UTC for 24/7 and for ``EXCHANGE:BASE/QUOTE`` symbols).
  Local times that do not exist or are ambiguous (daylight-saving changes) are rejected, not guessed.
* Timestamps are bar **open** times unless ``bar_time="close"`` (then each is moved back one interval).
* The interval is ``interval`` if given, else the most common gap between consecutive bars of a symbol on
  the same day; a file where that cannot be told (one bar a day) stops with a message asking for
  ``--interval``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from quantlake.calendars import (
    ALWAYS_OPEN,
    NYSE,
    calendar_for_symbol,
    check_calendar,
    check_interval,
    interval_from_step,
    is_intraday,
    parse_interval,
    timezone_of,
)
from quantlake.errors import MalformedFileError, UserInputError


@dataclass(frozen=True)
class IntradayOptions:
    """How to read intraday timestamps of a bar file (CLI: ``--interval --tz --calendar --bar-time``)."""

    interval: str | None = None
    tz: str | None = None
    calendar: str = NYSE
    bar_time: str = "open"

    def __post_init__(self) -> None:
        if self.interval is not None:
            check_interval(self.interval)
        check_calendar(self.calendar)
        if self.bar_time not in ("open", "close"):
            raise UserInputError(f"--bar-time must be open or close, got {self.bar_time!r}")
        if self.tz is not None:
            try:
                pd.Timestamp("2024-01-02").tz_localize(self.tz)
            except Exception:
                raise UserInputError(f"unknown time zone {self.tz!r} (use an IANA name, e.g. America/New_York)") from None

    def calendar_of(self, symbol: str) -> str:
        return ALWAYS_OPEN if calendar_for_symbol(symbol) == ALWAYS_OPEN else self.calendar


def parse_timestamps(raw: pd.Series) -> pd.Series:
    """Parse date/time strings keeping what they say: naive stays naive, offsets become UTC; NaT if bad."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.to_datetime(raw)
    s = raw.astype(str).str.strip()
    has_offset = s.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    naive = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    if has_offset.any():
        out[has_offset] = pd.to_datetime(s[has_offset], errors="coerce", utc=True, format="ISO8601")
    if (~has_offset).any():
        part = pd.to_datetime(s[~has_offset], errors="coerce", format="ISO8601")
        if part.isna().any():
            part = part.fillna(pd.to_datetime(s[~has_offset][part.isna()], errors="coerce", format="mixed"))
        naive[~has_offset] = part
    if has_offset.all():
        return out
    if not has_offset.any():
        return naive
    # a file mixing both: keep an object series of Timestamps; to_bars resolves each with its zone
    mixed = naive.astype(object)
    mixed[has_offset] = out[has_offset].astype(object)
    return mixed


def has_time_of_day(stamps: pd.Series) -> bool:
    """True if any timestamp is not at midnight (in the zone it was written in)."""
    t = pd.Series([x for x in stamps if pd.notna(x)])
    if t.empty:
        return False
    times = t.map(lambda x: (x.hour, x.minute, x.second, x.microsecond))
    return bool((times != (0, 0, 0, 0)).any())


def _to_utc(stamps: pd.Series, symbols: pd.Series, opts: IntradayOptions) -> pd.Series:
    """UTC instants; a naive time is local in the symbol's zone, and NaT where it does not exist or is
    ambiguous there (daylight-saving changes)."""
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        return stamps.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    out = pd.Series(pd.NaT, index=stamps.index, dtype="datetime64[us, UTC]")
    for sym, idx in symbols.groupby(symbols).groups.items():
        zone = opts.tz or timezone_of(opts.calendar_of(str(sym)))
        part = stamps.loc[idx]
        if pd.api.types.is_datetime64_dtype(part.dtype):
            local = part.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
            out.loc[idx] = local.dt.tz_convert("UTC").to_numpy()
            continue
        for i, x in part.items():  # a file mixing naive and zoned stamps (rare): one by one
            if pd.isna(x):
                continue
            x = pd.Timestamp(x)
            if x.tzinfo is None:
                try:
                    x = x.tz_localize(zone, ambiguous="raise", nonexistent="raise")
                except Exception:
                    continue
            out.at[i] = x.tz_convert("UTC")
    return out


def infer_interval(ts: pd.Series, symbols: pd.Series, origin: str) -> str:
    """The most common gap between consecutive bars of a symbol within a day."""
    frame = pd.DataFrame({"s": symbols.to_numpy(), "t": ts.to_numpy()}).dropna().sort_values(["s", "t"])
    gaps = frame.groupby("s")["t"].diff()
    same_day = frame.groupby("s")["t"].transform(lambda t: t.dt.floor("D")).eq(
        frame.groupby("s")["t"].shift().dt.floor("D")
    )
    counts = Counter(g for g in gaps[same_day & gaps.gt(pd.Timedelta(0))])
    if not counts:
        raise MalformedFileError(
            f"{origin}: cannot tell the bar interval (no two bars of a symbol on the same day); pass --interval"
        )
    step = counts.most_common(1)[0][0]
    try:
        return interval_from_step(pd.Timedelta(step))
    except UserInputError:
        raise MalformedFileError(
            f"{origin}: bars are {pd.Timedelta(step)} apart, which is not a supported interval; pass --interval"
        ) from None


def to_bars(df: pd.DataFrame, stamps: pd.Series, origin: str, opts: IntradayOptions) -> tuple[pd.DataFrame, pd.Series]:
    """``df`` (with ``symbol``) as ``bars`` rows: ``interval``, ``ts`` (UTC open), ``date`` (local).

    Returns the frame and a boolean mask of rows whose timestamp could not be placed (non-existent or
    ambiguous local time) for the caller to quarantine."""
    ts = _to_utc(stamps, df["symbol"], opts)
    bad = ts.isna() & stamps.notna()
    interval = opts.interval or infer_interval(ts[~bad], df["symbol"][~bad], origin)
    if not is_intraday(interval) and opts.interval is None:
        raise MalformedFileError(f"{origin}: timestamps have times of day but bars are a day apart; pass --interval")
    step = parse_interval(interval)
    if opts.bar_time == "close":
        ts = ts - step
    out = df.copy()
    out["interval"] = interval
    out["ts"] = ts
    dates = pd.Series(None, index=df.index, dtype=object)
    for sym, idx in df["symbol"].groupby(df["symbol"]).groups.items():
        zone = timezone_of(opts.calendar_of(str(sym)))
        part = ts.loc[idx]
        dates.loc[idx] = part.dt.tz_convert(zone).dt.date.where(part.notna(), None)
    out["date"] = dates
    return out, bad
