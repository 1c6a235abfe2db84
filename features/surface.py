"""Build ``features_surface`` (``sql/features_surface.sql``): the implied-vol surface of each underlying per day.

The table aggregates ``features_options`` (each quote's IV solved from its mid by
``features.pricing.implied_vol``, its Greeks, the vendor's IV) and reuses ``features_option_flow``'s put/call
ratios, so both are built first in the same build (:func:`features.build.resolve_tables` adds them).  It is
incremental like them: the quote dates from the first changed quote, rate or underlying close on are
recomputed; the rolling columns (IV rank and percentile, realized vol) read the stored rows before that date,
so an incremental build writes bitwise the rows a full rebuild would.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import incremental, sql_runner
from features.errors import FeatureBuildError
from features.tables import OPTION_FLOW, OPTIONS, SURFACE

if TYPE_CHECKING:
    from features.build_state import Build, TableResult

INPUTS = ("option_quotes", "macro_series", "equity_bars")  # what features_options is computed from
QUOTE_COLUMNS = ["quote_date", "underlying", "root", "expiry", "strike", "right", "mid", "mid_source", "iv",
                 "vendor_iv", "delta", "gamma", "rate", "t_years", "dte", "underlying_price", "open_interest"]
HISTORY_COLUMNS = ["underlying", "date", "spot", "atm_iv_30"]


def _params(b: Build, start: dt.date) -> tuple[dict[str, Any], dict[str, Any]]:
    s = b.settings.surface
    params = {"from_date": start, "min_dte": s.min_dte, "expansion_hv_iv": s.expansion_hv_iv,
              "expansion_rank": s.expansion_rank, "contraction_hv_iv": s.contraction_hv_iv,
              "high_rank": s.high_rank, "low_rank": s.low_rank}
    return params, {"rank_window": s.rank_window, "hv_window": s.hv_window}


def _in_step(b: Build, table: str, inputs: tuple[str, ...]) -> None:
    """``table`` must have been built from the inputs' current versions (else the surface would mix days)."""
    note = incremental.last_note(b.lake, table)
    if note is None or any(note.inputs.get(t) != b.versions.get(t) for t in inputs):
        raise FeatureBuildError(f"features_surface reads {table}, which was built from older versions of "
                                f"{', '.join(inputs)}: build it first (quantlake features build -t "
                                f"{table.removeprefix('features_')},surface)")


def _read(b: Build, table: str, date_col: str, start: dt.date, columns: list[str], before: bool = False) -> pa.Table:
    ds = b.lake.delta(table).to_pyarrow_dataset()
    names = set(ds.schema.names)
    cond = pc.field(date_col) < start if before else pc.field(date_col) >= start
    data = ds.to_table(columns=[c for c in columns if c in names], filter=cond)
    if "root" in columns and "root" not in names:  # lakes from before option_quotes had a root column
        data = data.append_column("root", data.column("underlying"))
    return data.select(columns)


def _gaps(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """(underlying, date, gap): for every quote date of the build (history included), the exchange trading
    days since the underlying's previous quote date (``quantlake.calendars``, XNYS) — what one log return of
    the chain's level spans.  At least 1 (a quote stamped on a closed day is not a zero-day return)."""
    from quantlake.calendars import sessions

    df = con.execute(
        "SELECT DISTINCT underlying, quote_date AS date FROM surface_quotes "
        "UNION SELECT underlying, date FROM surface_history ORDER BY underlying, date").df()
    if df.empty:
        return pa.table({"underlying": pa.array([], pa.string()), "date": pa.array([], pa.date32()),
                         "gap": pa.array([], pa.int64())})
    days = pd.to_datetime(df["date"]).to_numpy(dtype="datetime64[D]")
    open_days = sessions(days.min().astype(dt.date), days.max().astype(dt.date)).to_numpy(dtype="datetime64[D]")
    pos = pd.Series(np.searchsorted(open_days, days, side="right"))
    gap = (pos - pos.groupby(df["underlying"].to_numpy()).shift(1)).fillna(1).clip(lower=1).astype("int64")
    return pa.table({"underlying": pa.array(df["underlying"].astype(str).to_numpy(), pa.string()),
                     "date": pa.array(pd.to_datetime(df["date"]).dt.date.to_numpy(), pa.date32()),
                     "gap": pa.array(gap.to_numpy(), pa.int64())})


def build_surface(b: Build, result: TableResult) -> None:
    from features.build_state import fingerprint
    from features.quote_families import quote_plan

    if not b.has("option_quotes") or not b.lake.exists(OPTIONS.name):
        result.mode, result.detail = "skipped", "no option_quotes in the lake"
        return
    params, template = _params(b, dt.date(1800, 1, 1))
    fp = fingerprint(b.settings.fingerprint("surface"), b.settings.fingerprint("options"),
                     sql_runner.render(OPTIONS.name), sql_runner.render(SURFACE.name, template))
    b.load(*INPUTS)
    plan, start = quote_plan(b, SURFACE, INPUTS, fp)
    if start is None:
        result.mode = "up to date"
        return
    _in_step(b, OPTIONS.name, INPUTS)
    _in_step(b, OPTION_FLOW.name, ("option_quotes",))
    b.con.register("surface_quotes", _read(b, OPTIONS.name, "quote_date", start, QUOTE_COLUMNS))
    b.con.register("surface_flow", _read(b, OPTION_FLOW.name, "quote_date", start,
                                         ["underlying", "quote_date", "put_call_volume_ratio", "put_call_oi_ratio"]))
    history = (SURFACE.schema.empty_table().select(HISTORY_COLUMNS) if plan.full or not b.lake.exists(SURFACE.name)
               else _read(b, SURFACE.name, "date", start, HISTORY_COLUMNS, before=True))
    b.con.register("surface_history", history)
    b.con.register("surface_gaps", _gaps(b.con))
    params["from_date"] = start
    data = b.run(SURFACE.name, params, template)
    result.mode = "full" if plan.full else "incremental"
    result.detail = plan.reason if plan.full else f"quote dates from {start}"
    predicate = None if plan.full else incremental.since_predicate("date", start)
    b.commit(SURFACE, data, b.note(INPUTS, fp), result, predicate)
