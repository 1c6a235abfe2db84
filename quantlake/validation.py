"""Row validation and quarantine (issue 2 §6).

Each table has a pandera schema of row rules (named checks whose names are the reasons a person reads);
cross-row rules (duplicate keys, split-like jumps) are added here because they need the neighbouring rows.
:func:`split_batch` returns the good rows and a ``rejected_rows`` frame with one reason string per bad row;
nothing is dropped without a reason.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from quantlake.errors import ConfigError
from quantlake.option_quotes import conform_frame
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.text import cut, shown
from quantlake.tables import ANY_SYMBOL_RE, SYMBOL_RE, get_spec
from quantlake.validation_quotes import QuoteRules, check_quotes

PRICE_COLS = ("open", "high", "low", "close", "adj_close")
# close-to-close ratios that look like a split or reverse split nobody recorded
SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 10.0, 1.5, 20.0, 8.0)


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {text!r}")
    return value


@dataclass(frozen=True)
class ValidationSettings:
    # a jump is suspicious when |ln(ratio)| exceeds this and the ratio is within `split_tolerance` of a split
    jump_threshold: float = float(np.log(1.8))
    split_tolerance: float = 0.04
    today: dt.date | None = None
    # prices outside [min_price, max_price] are not prices (1e308 and 1e-320 broke features_regime)
    min_price: float = field(default_factory=lambda: _env_float("QUANTLAKE_MIN_PRICE", 1e-8))
    max_price: float = field(default_factory=lambda: _env_float("QUANTLAKE_MAX_PRICE", 1e7))
    # a close more than this many times (or less than 1/this of) the previous good close is rejected,
    # unless it is a recorded split (split-like ratios get their own message)
    max_jump: float = field(default_factory=lambda: _env_float("QUANTLAKE_MAX_JUMP", 10.0))


def _positive(col: str) -> pa.Check:
    return pa.Check(lambda s: s.isna() | (s > 0), element_wise=False, error=f"{col} must be > 0")


def _finite(col: str) -> pa.Check:
    return pa.Check(lambda s: s.isna() | np.isfinite(s.astype(float)), error=f"{col} must be finite")


def _nonneg(col: str) -> pa.Check:
    return pa.Check(lambda s: s.isna() | (s >= 0), error=f"{col} must be >= 0")


def _bounded(col: str, lo: float, hi: float) -> list[pa.Check]:
    """Finite positive prices within [lo, hi] (non-finite and non-positive values have their own reasons)."""

    def above(s: pd.Series) -> pd.Series:
        x = s.astype(float)
        return ~np.isfinite(x) | (x <= hi)

    def below(s: pd.Series) -> pd.Series:
        x = s.astype(float)
        return ~np.isfinite(x) | (x <= 0) | (x >= lo)

    return [pa.Check(above, error=f"{col} above {hi:g}", ignore_na=True),
            pa.Check(below, error=f"{col} below {lo:g}", ignore_na=True)]  # fmt: skip


def _price_col(col: str, required: bool, bounds: tuple[float, float]) -> pa.Column:
    checks = [_finite(col), _positive(col), *_bounded(col, *bounds)]
    return pa.Column(float, checks, nullable=not required, required=False, coerce=True)


def _symbol_check(col: str, pattern: str = SYMBOL_RE.pattern) -> pa.Check:
    return pa.Check(lambda s: s.astype(str).str.fullmatch(pattern), error=f"{col} is not a valid symbol")


def _tol(a: pd.Series) -> pd.Series:
    return a.abs() * 1e-6 + 1e-9


def equity_schema(
    required: tuple[str, ...], today: dt.date, intraday: bool = False, bounds: tuple[float, float] = (1e-8, 1e7)
) -> pa.DataFrameSchema:
    """Rules of ``equity_bars`` rows; with ``intraday`` those of ``bars`` (any interval, crypto symbols,
    a UTC ``ts`` that must not be in the future)."""

    def not_future(s: pd.Series) -> pd.Series:
        return pd.to_datetime(s) <= pd.Timestamp(today)

    def ts_not_future(s: pd.Series) -> pd.Series:
        return pd.to_datetime(s, utc=True) <= pd.Timestamp.now(tz="UTC")

    def high_ge_low(d: pd.DataFrame) -> pd.Series:
        return d["high"].isna() | d["low"].isna() | (d["high"] >= d["low"] - _tol(d["low"]))

    def within(col: str):  # type: ignore[no-untyped-def]
        def check(d: pd.DataFrame) -> pd.Series:
            lo, hi, x = d["low"], d["high"], d[col]
            ok = (x >= lo - _tol(lo)) & (x <= hi + _tol(hi))
            return lo.isna() | hi.isna() | x.isna() | ok

        return check

    keys: dict[str, pa.Column] = {
        "symbol": pa.Column(str, _symbol_check("symbol")),
        "date": pa.Column(checks=pa.Check(not_future, error="date is in the future"), nullable=False),
    }
    if intraday:
        keys = {
            "symbol": pa.Column(str, _symbol_check("symbol", ANY_SYMBOL_RE.pattern)),
            "interval": pa.Column(str, nullable=False),
            "ts": pa.Column(checks=pa.Check(ts_not_future, error="ts is in the future"), nullable=False),
        }
    return pa.DataFrameSchema(
        {
            **keys,
            **{c: _price_col(c, c in required, bounds) for c in PRICE_COLS},
            "volume": pa.Column(float, [_finite("volume"), _nonneg("volume")], nullable="volume" not in required,
                                required=False, coerce=True),
        },
        checks=[
            pa.Check(high_ge_low, error="high < low"),
            pa.Check(within("close"), error="close outside [low, high]"),
            # an open outside [low, high] is NOT rejected: index vendors (CBOE's VIX before 2007, some SPY days)
            # print the previous close as the open; rejecting those would punch holes in real series.
        ],
    )


def macro_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "series_id": pa.Column(str, pa.Check.str_matches(r"^[A-Za-z0-9_.\-]{1,40}$", error="bad series id")),
            "date": pa.Column(nullable=False),
            "realtime_start": pa.Column(nullable=False),
            "value": pa.Column(float, _finite("value"), nullable=False, coerce=True),
        }
    )


def actions_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "symbol": pa.Column(str, _symbol_check("symbol")),
            "date": pa.Column(nullable=False),
            "kind": pa.Column(str, pa.Check.isin(["split", "dividend"], error="kind must be split or dividend")),
            "value": pa.Column(float, [_finite("value"), _positive("value")], nullable=False, coerce=True),
        }
    )


def cot_schema() -> pa.DataFrameSchema:
    spec = get_spec("cot_positions")
    counts = [c for c in spec.schema.names if c.endswith(("_long", "_short")) or c == "open_interest"]
    return pa.DataFrameSchema(
        {
            "report_date": pa.Column(nullable=False),
            "market_code": pa.Column(str, pa.Check.str_length(1, 20, error="bad market code")),
            **{c: pa.Column(float, _nonneg(c), nullable=True, required=False, coerce=True) for c in counts},
        }
    )


def _schema_for(batch: RawBatch, settings: ValidationSettings) -> pa.DataFrameSchema:
    today = settings.today or dt.date.today()
    if batch.table in ("equity_bars", "bars"):
        return equity_schema(batch.required or ("close",), today, intraday=batch.table == "bars",
                             bounds=(settings.min_price, settings.max_price))  # fmt: skip
    return {
        "macro_series": macro_schema,
        "corporate_actions": actions_schema,
        "cot_positions": cot_schema,
    }[batch.table]()


def _row_reasons(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        for rec in fc.itertuples(index=False):
            idx = rec.index
            if idx is None or (isinstance(idx, float) and np.isnan(idx)):
                continue  # a schema-wide failure (e.g. dtype) is reported per row by the element checks
            check = str(rec.check)
            if check == "not_nullable":
                msg = f"{rec.column} is missing"
            elif rec.schema_context == "Column" and not check.startswith("coerce_dtype"):
                msg = f"{check} (got {shown(rec.failure_case)})"
            elif check.startswith("coerce_dtype"):
                msg = f"{rec.column} is not a number (got {shown(rec.failure_case)})"
            else:
                msg = check
            if msg not in reasons[int(idx)]:
                reasons[int(idx)].append(msg)
    return reasons


def _duplicate_reasons(frame: pd.DataFrame, keys: tuple[str, ...], reasons: dict[int, list[str]]) -> None:
    dup_mask = frame.duplicated(list(keys), keep=False)
    if not dup_mask.any():
        return
    value_cols = [c for c in frame.columns if c not in (ROW_NO, "ingested_at")]
    for _, group in frame[dup_mask].groupby(list(keys), sort=False, dropna=False):
        rows = group[ROW_NO].tolist()
        identical = len(group[value_cols].astype(str).drop_duplicates()) == 1
        key = cut(", ".join(str(group.iloc[0][k]) for k in keys), 120)
        if identical:  # keep the first copy, reject the repeats
            for idx in group.index[1:]:
                reasons[idx].append(f"duplicate key ({key}): repeats row {rows[0]}")
        else:
            for idx in group.index:
                others = [r for r in rows if r != frame.at[idx, ROW_NO]]
                reasons[idx].append(f"duplicate key ({key}) with different values in row(s) {others}")


def _jump_reasons(
    frame: pd.DataFrame,
    settings: ValidationSettings,
    known_splits: set[tuple[str, dt.date]],
    prev_close: Mapping[str, tuple[dt.date, float]],
    reasons: dict[int, list[str]],
) -> None:
    """Flag closes that move by a split-like ratio versus the previous good close with no split recorded,
    and closes more than ``max_jump`` times (or less than 1/``max_jump`` of) the previous good close."""
    _big_jumps(frame, settings, known_splits, prev_close, reasons)
    for symbol, g in _closes_by_symbol(frame, reasons):
        closes = g["close"].to_numpy(dtype=float)
        prev = np.roll(closes, 1)
        prev_dates = np.roll(g["date"].to_numpy(), 1)
        if str(symbol) in prev_close:
            prev[0] = prev_close[str(symbol)][1]
            prev_dates[0] = prev_close[str(symbol)][0]
        else:
            prev[0] = np.nan
        ratio = closes / prev
        big = np.abs(np.log(ratio)) > settings.jump_threshold
        for i in np.flatnonzero(big):
            r = ratio[i] if ratio[i] >= 1 else 1 / ratio[i]
            match = [s for s in SPLIT_RATIOS if abs(r / s - 1) < settings.split_tolerance]
            day = g["date"].iloc[i]
            if match and (str(symbol), day) not in known_splits:
                n = match[0]
                kind = f"{n:g}:1 reverse split" if ratio[i] > 1 else f"{n:g}:1 split"
                reasons[g.index[i]].append(
                    f"close jumps x{ratio[i]:.3f} vs previous close on {prev_dates[i]} "
                    f"(looks like an unrecorded {kind}; record it in corporate_actions to accept)"
                )


def _closes_by_symbol(frame: pd.DataFrame, reasons: dict[int, list[str]]) -> Iterator[tuple[object, pd.DataFrame]]:
    """Each symbol's rows with no reason yet and a positive close, in time order."""
    ok = frame[[not reasons.get(i) for i in frame.index]].dropna(subset=["close"])
    ok = ok[ok["close"] > 0]
    for symbol, g in ok.groupby("symbol", sort=False):
        yield symbol, g.sort_values("ts" if "ts" in g.columns else "date", kind="stable")


def _big_jumps(
    frame: pd.DataFrame,
    settings: ValidationSettings,
    known_splits: set[tuple[str, dt.date]],
    prev_close: Mapping[str, tuple[dt.date, float]],
    reasons: dict[int, list[str]],
) -> None:
    """Closes beyond ``max_jump`` x the previous *accepted* close (a rejected close is no reference, so the
    day after a bad print is compared with the day before it).  Split-like ratios are left to the split rule
    and recorded splits are accepted."""
    limit = math.log(settings.max_jump)
    for symbol, g in _closes_by_symbol(frame, reasons):
        closes = g["close"].to_numpy(dtype=float)
        first = prev_close.get(str(symbol))
        steps = np.abs(np.diff(np.log(closes), prepend=np.log(first[1]) if first else np.nan))
        if not (steps > limit).any():  # the common case: nothing to walk through
            continue
        prev_day, prev = (first[0], first[1]) if first else (None, math.nan)
        for idx, day, c in zip(g.index, g["date"], closes, strict=True):
            ratio = c / prev
            if math.isfinite(ratio) and abs(math.log(ratio)) > limit and (str(symbol), day) not in known_splits:
                r = ratio if ratio >= 1 else 1 / ratio
                if not any(abs(r / n - 1) < settings.split_tolerance for n in SPLIT_RATIOS):
                    reasons[idx].append(
                        f"close jumps x{ratio:.3f} vs previous close on {prev_day}, more than the "
                        f"{settings.max_jump:g}x allowed (QUANTLAKE_MAX_JUMP)"
                    )
                    continue
            prev_day, prev = day, c


def split_batch(
    batch: RawBatch,
    settings: ValidationSettings | None = None,
    known_splits: set[tuple[str, dt.date]] | None = None,
    prev_close: Mapping[str, tuple[dt.date, float]] | None = None,
    keep_row_no: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a batch into (good rows, rejected_rows frame); good rows keep ``_row_no`` if ``keep_row_no``."""
    settings = settings or ValidationSettings()
    spec = get_spec(batch.table)
    frame = batch.frame.reset_index(drop=True)
    if ROW_NO not in frame.columns:
        frame[ROW_NO] = np.arange(1, len(frame) + 1)
    if batch.table == "option_quotes":
        frame = conform_frame(frame)
        reasons = check_quotes(frame, QuoteRules(today=settings.today), row_nos=frame[ROW_NO].to_numpy())
    else:
        reasons = _row_reasons(frame, _schema_for(batch, settings)) if len(frame) else {}
        _duplicate_reasons(frame, spec.keys, reasons)
    if batch.table == "equity_bars" and len(frame):
        _jump_reasons(frame, settings, known_splits or set(), prev_close or {}, reasons)
    elif batch.table == "bars" and len(frame):  # within the batch; crypto pairs have no splits
        stock = frame[~frame["symbol"].astype(str).str.contains(":", regex=False)]
        for _, g in stock.groupby("interval", sort=False):
            _jump_reasons(g.sort_values("ts"), settings, known_splits or set(), {}, reasons)

    bad_idx = sorted(i for i, r in reasons.items() if r)
    found = [(int(frame.at[i, ROW_NO]), "; ".join(reasons[i]), frame.loc[i].drop(labels=[ROW_NO]).to_dict())
             for i in bad_idx]  # fmt: skip
    rejects = [
        reject_row(batch, row_no, reason, raw) for row_no, reason, raw in [*found, *batch.unparsable]
    ]
    good = frame.drop(index=bad_idx)
    if not keep_row_no:
        good = good.drop(columns=[ROW_NO])
    return good.reset_index(drop=True), pd.DataFrame(rejects, columns=REJECT_COLUMNS)


REJECT_COLUMNS = ["table", "batch_id", "row_no", "origin", "reason", "raw"]


def reject_row(batch: RawBatch, row_no: int, reason: str, parsed: Mapping[str, object]) -> dict[str, object]:
    """A ``rejected_rows`` record: ``raw`` is the row's text as the origin had it (``batch.raw``), else the
    values the source handed over."""
    raw: Mapping[str, object] = parsed
    if batch.raw is not None and row_no in batch.raw.index:
        raw = batch.raw.loc[row_no].to_dict()
    return {"table": batch.table, "batch_id": batch.batch_id, "row_no": int(row_no), "origin": batch.origin,
            "reason": reason, "raw": _raw_json(raw)}  # fmt: skip


def _raw_json(row: Mapping[str, object]) -> str:
    def clean(v: object) -> object:
        if isinstance(v, np.generic):
            v = v.item()
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)  # "inf" / "-inf": JSON has no such numbers
        if isinstance(v, dt.date | pd.Timestamp):
            return str(v)[:10] if not isinstance(v, pd.Timestamp) else v.isoformat()
        return v

    return json.dumps({str(k): clean(v) for k, v in row.items()}, default=str, allow_nan=False, ensure_ascii=False)
