"""The per-symbol families: ``features_technical`` and ``features_regime`` (``sql/features_technical.sql``,
``sql/features_regime.sql`` define every column).  Each symbol's bars go through the series pass
(:mod:`features.series`) part by part; an incremental build recomputes only the symbols whose bars changed,
from their first changed bar, resuming recursions from the stored row before it (see :mod:`features.build`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from features import incremental, sql_runner
from features.build_state import Build, Plan, TableResult, fingerprint
from features.series import regime_series, technical_series
from features.settings import FeatureSettings
from features.tables import REGIME, technical_spec
from quantlake.tables import register

RV_PERIODS: tuple[int, ...] = (5, 10, 20, 60, 120)
# bars each row of the per-symbol tables can look back: 52-week windows (252), SMA200, rv_120 + 1 return
MIN_WARMUP = 253


def _template(settings: FeatureSettings) -> dict[str, Any]:
    return {"sma_periods": settings.technical.sma_periods, "ema_periods": settings.technical.ema_periods}


def _warmup(settings: FeatureSettings) -> int:
    return max(settings.warmup_rows, MIN_WARMUP, max(settings.technical.sma_periods) + 1)


def _stored_state(b: Build, table: str, positions: pa.Table) -> pa.Table:
    """Rows of the stored ``table`` on the dates incremental recursions resume from (the bar before each
    affected symbol's first changed bar).  Filtered on the date column only (see ``materialize``)."""
    schema = technical_spec(b.settings.technical).schema
    ema = [f"ema_{n}" for n in b.settings.technical.ema_periods]
    columns = ["symbol", "date", *ema, "macd_signal", "atr_14", "adx_14"]
    columns += [c for c in schema.names if c.startswith("st_")]  # only what technical_scope.sql reads
    dates = pc.unique(positions.column("prev_date").drop_null())
    if len(dates) == 0:
        return schema.empty_table().select(columns)
    dataset = b.lake.delta(table).to_pyarrow_dataset()
    return dataset.to_table(columns=columns, filter=pc.field("date").isin(dates))


def _per_symbol_scope(
    b: Build, first_dates: dict[str, dt.date], scope_sql: str, template: dict[str, Any] | None
) -> pa.Table:
    key = tuple(sorted(first_dates.items()))
    if b.positions is None or b.positions[0] != key:  # the regime family often asks for the technical one's
        b.con.register("affected", incremental.affected_table(first_dates))
        b.positions = (key, b.run("incremental/symbol_positions", {"warmup": _warmup(b.settings)}))
    positions = b.positions[1]
    b.con.register("positions", positions)
    if scope_sql == "incremental/technical_scope":
        b.con.register("features_technical", _stored_state(b, "features_technical", positions))
    return b.run(scope_sql, {"warmup": _warmup(b.settings)}, template, register_as="scope")


def _scope_detail(scope: pa.Table) -> str:
    resumed = scope.num_rows - scope.column("write_from").null_count
    return f"{scope.num_rows} symbol(s), {resumed} resumed from stored state/warm-up"


def _plan_on_bars(b: Build, result: TableResult, table: str, fp: str) -> Plan | None:
    """The plan of a family built from equity_bars, with equity_bars loaded (None: nothing to build, and
    ``result`` says why)."""
    if not b.has("equity_bars"):
        result.mode, result.detail = "skipped", "no equity_bars in the lake"
        return None
    plan = b.plan(table, ("equity_bars",), fp)
    if plan.up_to_date:
        result.mode = "up to date"
        return None
    b.load("equity_bars", whole=False)
    return plan


def build_technical(b: Build, result: TableResult) -> None:
    spec = register(technical_spec(b.settings.technical))
    tmpl = _template(b.settings)
    fp = fingerprint(
        b.settings.fingerprint("technical"),
        sql_runner.render("features_technical", tmpl),
        sql_runner.render("series/technical_bars"),
        sql_runner.render("incremental/technical_scope", tmpl),
    )
    inputs = ("equity_bars",)
    plan = _plan_on_bars(b, result, spec.name, fp)
    if plan is None:
        return
    if not plan.full:
        changes = b.known_bar_changes(plan.prev_inputs["equity_bars"])
        if changes.removed:
            plan = Plan(True, reason="bars were removed")
        elif not changes.first_date:
            result.mode, result.detail = "up to date", "no bar values changed"
            return
    if plan.full:
        scope = b.run(
            "incremental/full_scope", template={"ema_periods": tmpl["ema_periods"]}, register_as="scope"
        )
        result.detail = f"{scope.num_rows} symbol(s); {plan.reason}"
    else:
        scope = _per_symbol_scope(b, changes.first_date, "incremental/technical_scope", tmpl)
        result.detail = _scope_detail(scope)
    settings = b.settings.technical
    parts = b.series_parts(
        scope,
        "series/technical_bars",
        lambda bars, part: technical_series(bars, part, settings.sma_periods, settings.ema_periods),
        "technical_series",
        "features_technical",
        None,
        tmpl,
    )
    result.mode = "full" if plan.full else "incremental"
    b.commit(spec, parts, b.note(inputs, fp), result, None if plan.full else incremental.rows_predicate(scope))


def _regime_params(settings: FeatureSettings) -> dict[str, Any]:
    rules = settings.regime
    return {
        "vix_symbol": rules.vix_symbol,
        "vix_max_stale_days": rules.vix_max_stale_days,
        "high_rank": rules.high_rank,
        "high_level": rules.high_level,
        "low_rank": rules.low_rank,
        "low_level": rules.low_level,
        "expansion_change": rules.expansion_change,
        "contraction_change": rules.contraction_change,
        "elevated_rank": rules.elevated_rank,
        "elevated_level": rules.elevated_level,
    }


def build_regime(b: Build, result: TableResult) -> None:
    tmpl = {"rv_periods": RV_PERIODS}
    fp = fingerprint(
        b.settings.fingerprint("regime"),
        sql_runner.render("features_regime", tmpl),
        sql_runner.render("series/regime_bars"),
        sql_runner.render("incremental/regime_scope"),
    )
    inputs = ("equity_bars",)
    plan = _plan_on_bars(b, result, REGIME.name, fp)
    if plan is None:
        return
    first: dict[str, dt.date] = {}
    if not plan.full:
        changes = b.known_bar_changes(plan.prev_inputs["equity_bars"])
        first = dict(changes.first_date)
        vix_from = first.get(b.settings.regime.vix_symbol)
        if changes.removed:
            plan = Plan(True, reason="bars were removed")
        elif vix_from is not None:  # the VIX labels every symbol: all symbols trading since then change
            rows = b.con.execute(
                "SELECT symbol FROM equity_bars GROUP BY symbol HAVING max(date) >= ?", [vix_from]
            ).fetchall()
            for (sym,) in rows:
                first[sym] = min(first.get(sym, vix_from), vix_from)
        if not plan.full and not first:
            result.mode, result.detail = "up to date", "no bar values changed"
            return
    if plan.full:
        scope = b.run("incremental/full_scope", template={"ema_periods": ()}, register_as="scope")
        result.detail = f"{scope.num_rows} symbol(s); {plan.reason}"
    else:
        scope = _per_symbol_scope(b, first, "incremental/regime_scope", None)
        result.detail = _scope_detail(scope)
    parts = b.series_parts(
        scope,
        "series/regime_bars",
        lambda bars, _part: regime_series(bars, RV_PERIODS),
        "regime_series",
        "features_regime",
        _regime_params(b.settings),
        tmpl,
    )
    result.mode = "full" if plan.full else "incremental"
    b.commit(
        REGIME, parts, b.note(inputs, fp), result, None if plan.full else incremental.rows_predicate(scope)
    )
