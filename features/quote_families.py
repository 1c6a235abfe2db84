"""The families recomputed per quote date or whole: ``features_options`` and ``features_option_flow`` (quote
dates from the first changed quote, Treasury yield or underlying close on), ``features_macro`` and
``features_positioning`` (small: replaced whole when their input changed).  ``features_surface`` is in
:mod:`features.surface`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from features import incremental, sql_runner
from features.build_state import Build, Plan, TableResult, fingerprint
from features.tables import MACRO, OPTION_FLOW, OPTIONS, POSITIONING
from quantlake.tables import TableSpec

_ALL_DATES = dt.date(1800, 1, 1)


def _build_whole(b: Build, result: TableResult, spec: TableSpec, input_table: str) -> None:
    """Families small enough to recompute and replace whole whenever their input changed."""
    fp = fingerprint(sql_runner.render(spec.name))
    if not b.has(input_table):
        result.mode, result.detail = "skipped", f"no {input_table} in the lake"
        return
    plan = b.plan(spec.name, (input_table,), fp)
    if plan.up_to_date:
        result.mode = "up to date"
        return
    b.load(input_table)
    data = b.run(spec.name)
    result.mode = "full"
    result.detail = plan.reason or f"{input_table} changed: recomputed whole"
    b.commit(spec, data, b.note((input_table,), fp), result, None)


def build_macro(b: Build, result: TableResult) -> None:
    _build_whole(b, result, MACRO, "macro_series")


def build_positioning(b: Build, result: TableResult) -> None:
    _build_whole(b, result, POSITIONING, "cot_positions")


def quote_plan(b: Build, spec: TableSpec, inputs: tuple[str, ...], fp: str) -> tuple[Plan, dt.date | None]:
    """Plan of a per-quote-date table: (plan, first quote date to recompute; None = nothing to do)."""
    plan = b.plan(spec.name, inputs, fp)
    if plan.full:
        return plan, _ALL_DATES
    if plan.up_to_date:
        return plan, None
    starts: list[dt.date] = []
    prev = plan.prev_inputs
    if prev.get("option_quotes", 0) < 0:
        starts.append(_ALL_DATES)
    elif "option_quotes" in prev:
        if not incremental.has_column(b.con, "prev_option_quotes", "root"):
            return Plan(True, reason="option_quotes was upgraded (root joined the key)"), _ALL_DATES
        ch = incremental.changed_quotes(b.con)
        if ch.removed:
            return Plan(True, reason="quotes were removed"), _ALL_DATES
        starts += [ch.first_date] if ch.first_date else []
    if "macro_series" in prev:
        if prev["macro_series"] < 0:
            starts.append(_ALL_DATES)
        else:
            rc = incremental.changed_rates(b.con)
            starts += [rc.first_date] if rc.first_date else []
    if "equity_bars" in prev:
        if prev["equity_bars"] < 0:
            starts.append(_ALL_DATES)
        else:
            underlyings = {
                r[0] for r in b.con.execute("SELECT DISTINCT underlying FROM option_quotes").fetchall()
            }
            changes = b.known_bar_changes(prev["equity_bars"]).first_date
            starts += [d for s, d in changes.items() if s in underlyings]
    return plan, (min(starts) if starts else None)


def build_option_flow(b: Build, result: TableResult) -> None:
    _build_quotes(b, result, OPTION_FLOW, ("option_quotes",), {})


def build_options(b: Build, result: TableResult) -> None:
    opts = b.settings.options
    _build_quotes(
        b,
        result,
        OPTIONS,
        ("option_quotes", "macro_series", "equity_bars"),
        {"risk_free": opts.risk_free, "div_yield": opts.dividend_yield},
        b.settings.fingerprint("options"),
    )


def _build_quotes(
    b: Build,
    result: TableResult,
    spec: TableSpec,
    inputs: tuple[str, ...],
    params: dict[str, Any],
    settings_fp: str = "",
) -> None:
    if not b.has("option_quotes"):
        result.mode, result.detail = "skipped", "no option_quotes in the lake"
        return
    fp = fingerprint(settings_fp, sql_runner.render(spec.name))
    b.load(*inputs)
    plan, start = quote_plan(b, spec, inputs, fp)
    if start is None:
        result.mode = "up to date"
        return
    data = b.run(spec.name, {**params, "from_date": start})
    result.mode = "full" if plan.full else "incremental"
    result.detail = plan.reason if plan.full else f"quote dates from {start}"
    predicate = None if plan.full else incremental.since_predicate("quote_date", start)
    b.commit(spec, data, b.note(inputs, fp), result, predicate)
