"""Parameter sweeps: every combination × every symbol (or pair), one vectorized call per chunk.

Each symbol (pair) is simulated on its own calendar: symbols are grouped by the exact set of dates they have
bars on (:func:`backtests.equity.data.calendar_groups`), and a chunk is ``chunk_size`` symbols of one group
on that group's rows only.  So a symbol with missing days (rows rejected at ingest, a halted stock) never
trades on a price invented for a day it did not trade, and its results do not depend on which other symbols
are in the sweep.  A chunk holds at most :data:`MAX_COLUMNS` (combination, symbol) columns: a large grid is
split by combinations too, so memory per chunk is bounded whatever the grid size.  Chunks are independent
pure functions (:func:`run_chunk`) mapped by the current runner (:mod:`backtests.research.runner`); their results
are folded as they arrive (only the per-combination daily sums and the per-unit table are kept).

Single-symbol strategies run in :mod:`backtests.equity.engine` (vectorbt's order functions in a parallel
numba loop); pairs run in vectorbt's ``Portfolio.from_orders`` (two legs, shared cash).

Each combination is also a *trial* for the overfitting statistics: its daily return is the equal-weight mean
of its symbols' daily returns (each symbol trades its own equal slice of capital; only symbols with a bar
that day count).  The best combination is the one with the best ``config.metric`` of that combined return.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from vectorbt.portfolio.enums import SizeType

from backtests.equity import engine as E
from backtests.equity import metrics as M
from backtests.equity.config import LOWER_IS_BETTER, CostsConfig, ExecutionConfig, SweepConfig
from backtests.equity.data import Bars, calendar_groups, load_bars
from backtests.equity.filters import read_regimes, regime_mask, universe_mask
from backtests.equity.params import combinations, swept
from backtests.equity.simulate import cost_arrays, fill_labels, order_price, simulate_pairs
from backtests.equity.strategies import STRATEGIES
from backtests.research.overfitting import DeflatedSharpe, PBOResult, deflated_sharpe, pbo_cscv
from backtests.research.runner import current_runner
from quantlake.errors import ConfigError
from quantlake.lake import Lake
from risk.position_sizing import SizingSpec

MAX_COLUMNS = 2048  # (combination, symbol) columns per chunk: ~12 bytes per column and bar in flight


@dataclass
class ChunkTask:
    kind: str
    bars: Bars  # the symbols of the chunk (pairs: the Y legs), on their calendar's rows only
    combos: pd.DataFrame
    costs: CostsConfig
    execution: ExecutionConfig
    entry_ok: np.ndarray | None = None  # (T, S) universe & regime gate of entries
    force_exit: np.ndarray | None = None  # (T, S) regime exits
    x_bars: Bars | None = None  # pairs: the X legs
    chunk_id: int = 0
    rows: np.ndarray | None = None  # row positions of ``bars`` in the sweep's dates (None: all)
    periods_per_year: float = M.ANN_FACTOR  # bars a year at the sweep's interval (quantlake.calendars)
    sizing: SizingSpec | None = None  # None or all_in: all cash per entry

    @property
    def units(self) -> list[str]:
        if self.x_bars is None:
            return list(self.bars.symbols)
        return [f"{y}/{x}" for y, x in zip(self.bars.symbols, self.x_bars.symbols, strict=True)]


@dataclass
class ChunkResult:
    table: pd.DataFrame  # one row per (combination, unit)
    rows: np.ndarray | None  # row positions in the sweep's dates (None: all)
    combos: np.ndarray  # combination ids of the columns of ret_sum
    ret_sum: np.ndarray  # (T chunk, C chunk) sum over units of daily returns
    ret_count: int  # units of the chunk (each has a bar on every row of the chunk)
    n_backtests: int
    seconds: float


@dataclass
class Simulation:
    """A simulated chunk: per-unit arrays (unit = column ``c * S + s``) and the vectorbt order records."""

    out: np.ndarray  # (T, U) daily returns (``values=False``) or account values (``values=True``)
    final_value: np.ndarray  # (U,)
    exposure: np.ndarray  # (U,) share of bars with a position
    sums: dict[str, np.ndarray]  # trade counts and sums per unit
    unit_rows: np.ndarray  # unit -> instrument index within the chunk
    close: np.ndarray  # (T, S) closes the values are marked at
    index: pd.DatetimeIndex
    init_cash: float
    records: np.ndarray | None = None  # single-symbol strategies: vectorbt order records
    pf_pairs: Any = None  # pairs: the vectorbt portfolio
    extra: pd.DataFrame | None = None
    values: bool = False

    @property
    def value(self) -> np.ndarray:
        if not self.values:
            raise ValueError("simulated as returns: call simulate_chunk(task, values=True)")
        return self.out

    @cached_property
    def pf(self) -> Any:
        """The chunk as a ``vectorbt.Portfolio`` (trades, drawdowns, plots)."""
        if self.pf_pairs is not None:
            return self.pf_pairs
        assert self.records is not None
        res = E.EngineResult(self.out, self.final_value, self.exposure, self.records, len(self.unit_rows))
        return E.portfolio(res, self.close[:, self.unit_rows], self.index, self.init_cash)


def entry_sizes(task: ChunkTask) -> np.ndarray | None:
    """(T, S) fraction of cash per entry from the config's ``sizing`` (None: all in)."""
    spec = task.sizing
    if spec is None or spec.is_all_in:
        return None
    from backtests.equity.indicators import atr
    from risk.position_sizing import equity_fractions

    b = task.bars
    a = atr(b.high, b.low, b.close, spec.atr_period) if spec.method == "atr_risk" else None
    return equity_fractions(spec, b.close, a, task.periods_per_year)


def _sizing(task: ChunkTask) -> E.Sizing:
    """The engine's sizing step: all in, or the config's fraction of cash per entry (read on the signal
    bar, like the signals)."""
    sizes = entry_sizes(task)
    if sizes is None:
        return E.all_in()
    return E.Sizing(np.ascontiguousarray(sizes, dtype=np.float64), E.PER_SYMBOL, SizeType.Percent)


def _engine_costs(task: ChunkTask, n_units: int) -> dict[str, Any]:
    c = cost_arrays(task.combos, task.costs, n_units)
    return {k: (v if np.ndim(v) else float(v)) for k, v in c.items()}


def simulate_chunk(task: ChunkTask, values: bool = False) -> Simulation:
    sdef = STRATEGIES[task.kind]
    n_combos, n_inst = len(task.combos), len(task.bars.symbols)
    init = task.execution.init_cash
    b = task.bars
    if task.x_bars is None:
        signals = sdef.fn(b, task.combos)
        c = _engine_costs(task, n_inst)
        sl_stop, sl_trail = c["sl_stop"], np.asarray(False)
        if signals.sl_stop is not None:
            sl_stop, sl_trail = signals.sl_stop, np.asarray(signals.sl_trail)
        elif not np.all(np.isnan(c["tsl_stop"])):
            sl_stop, sl_trail = c["tsl_stop"], np.asarray(True)
        fills = fill_labels(b, task.execution)
        res = E.simulate(
            close=b.close,
            price=order_price(b, task.execution),
            open_=b.open,
            high=b.high,
            low=b.low,
            signals_at_open=np.asarray([f == "next_open" for f in fills]),
            entries=signals.entries,
            exits=signals.exits,
            short_entries=signals.short_entries,
            short_exits=signals.short_exits,
            entry_ok=task.entry_ok,
            force_exit=task.force_exit,
            col_sym=np.tile(np.arange(n_inst), n_combos),
            lag=0 if task.execution.fill == "close" else 1,
            fees=c["fees"],
            slippage=c["slippage"],
            fixed_fees=task.costs.fixed_fees,
            init_cash=init,
            sl_stop=sl_stop,
            sl_trail=sl_trail,
            tp_stop=c["tp_stop"],
            sizing=_sizing(task),
            as_returns=not values,
        )
        del signals
        unit_rows = np.tile(np.arange(n_inst), n_combos)
        trades = E.trade_records(res, b.close[-1, unit_rows])
        sums = M.trade_sums(trades, len(unit_rows))
        return Simulation(
            res.out, res.final_value, res.exposure, sums, unit_rows, b.close, b.index, init,
            records=res.records, values=values,
        )  # fmt: skip
    y, x = task.bars, task.x_bars
    w_y, w_x, pvals = sdef.fn(y.close, x.close, task.combos)
    pf = simulate_pairs(y, x, w_y, w_x, task.combos, task.costs, task.execution)
    value = np.asarray(pf.value(), dtype=float).reshape(len(y.index), -1).copy()
    n_units = value.shape[1]
    assets = pf.assets().to_numpy().reshape(value.shape[0], n_units, 2)
    sums = M.trade_sums(pf.trades.values, n_units, np.repeat(np.arange(n_units), 2))
    out = value if values else M.simple_returns(value, init)
    return Simulation(
        out, value[-1].copy(), (assets != 0).any(axis=2).mean(axis=0), sums, np.tile(np.arange(n_inst), n_combos),
        y.close, y.index, init, pf_pairs=pf, extra=pvals, values=values,
    )  # fmt: skip


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Simulate and measure one chunk (a pure function: runs in any worker)."""
    t0 = time.perf_counter()
    sim = simulate_chunk(task)
    n_combos, n_inst = len(task.combos), len(task.bars.symbols)
    table = M.unit_table(sim.out, sim.exposure, sim.final_value, sim.sums, task.periods_per_year)
    table.insert(0, "combo", np.repeat(task.combos.index.to_numpy(), n_inst))
    table.insert(1, "unit", np.tile(np.asarray(task.units, dtype=object), n_combos))
    fills = fill_labels(task.bars, task.execution)
    if task.x_bars is not None:
        fills = [
            a if a == b else "next_close"
            for a, b in zip(fills, fill_labels(task.x_bars, task.execution), strict=True)
        ]
        if sim.extra is not None:
            table["coint_pvalue"] = sim.extra["coint_pvalue"].to_numpy()
    table.insert(2, "fill", np.tile(np.asarray(fills, dtype=object), n_combos))
    ret_sum = sim.out.reshape(sim.out.shape[0], n_combos, n_inst).sum(axis=2)
    return ChunkResult(
        table=table,
        rows=task.rows,
        combos=task.combos.index.to_numpy(),
        ret_sum=ret_sum,
        ret_count=n_inst,
        n_backtests=n_combos * n_inst,
        seconds=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    config: SweepConfig
    combos: pd.DataFrame
    table: pd.DataFrame  # per (combination, unit): params, unit, fill, metrics
    summary: pd.DataFrame  # per combination: params, metrics of the equal-weight combination
    returns: pd.DataFrame  # (dates × combinations) combined daily returns
    best: int
    dsr: DeflatedSharpe
    pbo: PBOResult
    seconds: float
    n_backtests: int
    notes: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def swept(self) -> list[str]:
        return swept(self.combos)

    @property
    def best_params(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.combos.loc[self.best].items()}

    @property
    def best_metrics(self) -> dict[str, float]:
        row = self.summary.loc[self.best]
        return {
            m: float(row[m])
            for m in (
                *M.RETURN_METRICS,
                "win_rate",
                "avg_win",
                "avg_loss",
                "profit_factor",
                "trades",
                "exposure",
            )
        }

    @property
    def backtests_per_second(self) -> float:
        return self.n_backtests / self.seconds if self.seconds > 0 else float("nan")

    def overfitting(self) -> dict[str, float]:
        out = {f"dsr.{k}": v for k, v in self.dsr.as_dict().items()}
        out.update({f"pbo.{k}": v for k, v in self.pbo.as_dict().items()})
        return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def rank_order(values: pd.Series, metric: str) -> pd.Series:
    """Combinations best first by ``metric`` (NaN last)."""
    return values.sort_values(ascending=metric in LOWER_IS_BETTER, na_position="last")


def summarize(
    combos: pd.DataFrame, table: pd.DataFrame, returns: pd.DataFrame, periods_per_year: float = M.ANN_FACTOR
) -> pd.DataFrame:
    """Per combination: return metrics of the combined daily returns, pooled trade statistics, mean
    exposure and mean per-unit Sharpe."""
    ret = M.returns_table(returns, periods_per_year)
    grouped = table.groupby("combo", sort=True)
    sums = grouped[list(M.TRADE_SUMS)].sum().reindex(combos.index)
    trade = pd.DataFrame(M.trade_metrics(sums), index=combos.index)
    extra = pd.DataFrame(
        {
            "exposure": grouped["exposure"].mean(),
            "mean_unit_sharpe": grouped["sharpe"].mean(),
            "units": grouped.size(),
        }
    ).reindex(combos.index)
    return pd.concat([combos, ret, trade, extra], axis=1)


@dataclass
class Group:
    """One calendar: the row positions (in the sweep's dates) its units trade on, the units (symbol indices,
    or pair indices), and the entry gate / forced exits on those rows (``(rows, units)``)."""

    rows: np.ndarray
    units: np.ndarray
    entry_ok: np.ndarray | None = None
    force_exit: np.ndarray | None = None


def _gates(
    bars: Bars, config: SweepConfig, regimes: pd.DataFrame | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Universe gate and regime exits of ``bars`` (one calendar's rows: every value is the symbol's own)."""
    entry_ok: np.ndarray | None = None
    force_exit: np.ndarray | None = None
    if config.universe.active:
        entry_ok = universe_mask(bars, config.universe)
    if regimes is not None and config.regime is not None:
        allowed = regime_mask(regimes, config.regime)
        entry_ok = allowed if entry_ok is None else entry_ok & allowed
        if config.regime.exit_on_change:
            force_exit = ~allowed
    return entry_ok, force_exit


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def _combo_slices(n_combos: int, n_units: int) -> list[slice]:
    per = max(1, MAX_COLUMNS // max(n_units, 1))
    return [slice(i, min(i + per, n_combos)) for i in range(0, n_combos, per)]


def prepare(
    config: SweepConfig, lake: Lake
) -> tuple[pd.DataFrame, list[ChunkTask], dict[str, Any], list[str]]:
    """Combinations, chunk tasks and the context the reports need (bars, calendar groups and their gates)."""
    sdef = STRATEGIES[config.strategy.kind]
    combos = combinations(config.strategy, config.costs, config.search)
    notes: list[str] = []
    tasks: list[ChunkTask] = []
    if sdef.pairs:
        if config.universe.active or config.regime is not None:
            raise ConfigError("universe/regime: not supported by the pairs strategy (remove them)")
        if any(getattr(config.costs, s) is not None for s in ("sl_stop", "tsl_stop", "tp_stop")):
            raise ConfigError(
                "costs: stops are not supported by the pairs strategy (it exits on the z-score)"
            )
        legs = [p.split("/") for p in config.pairs or []]
        symbols = list(dict.fromkeys(s for leg in legs for s in leg))
        bars = load_bars(lake, symbols, config.start, config.end, config.execution.price, config.interval)
        pos = {s: i for i, s in enumerate(bars.symbols)}
        y = bars.take([pos[a] for a, _ in legs])
        x = bars.take([pos[b] for _, b in legs])
        groups = [Group(r, u) for r, u in calendar_groups(y.alive & x.alive)]
        for g in groups:
            for ix in _chunks(len(g.units), config.chunk_size):
                units = g.units[ix]
                for sl in _combo_slices(len(combos), len(units)):
                    tasks.append(
                        ChunkTask(config.strategy.kind, y.take(units).at_rows(g.rows), combos.iloc[sl],
                                  config.costs, config.execution, x_bars=x.take(units).at_rows(g.rows),
                                  chunk_id=len(tasks), rows=g.rows, periods_per_year=config.periods_per_year)
                    )  # fmt: skip
        return combos, tasks, {"bars": y, "x_bars": x, "groups": groups}, notes
    bars = load_bars(lake, config.symbols, config.start, config.end, config.execution.price, config.interval)
    if sdef.needs_htf and config.htf_interval:  # multi-timeframe kinds: closed higher-timeframe bars alongside
        from backtests.equity.multitf import with_higher_timeframe

        bars = with_higher_timeframe(bars, lake, config.interval, config.htf_interval, config.start, config.end,
                                     config.execution.price)  # fmt: skip
    regimes = None if config.regime is None else read_regimes(lake, config.regime, bars)
    if config.universe.min_dollar_volume is not None:
        no_vol = [s for s, ok in zip(bars.symbols, np.isnan(bars.volume).all(axis=0), strict=True) if ok]
        if no_vol:
            notes.append(f"no volume (close-only), never in the dollar-volume universe: {', '.join(no_vol)}")
    if sdef.needs_ohlc:
        co = [s for s, ok in zip(bars.symbols, bars.has_ohlc, strict=True) if not ok]
        if co:
            notes.append(f"close-only, true range from closes: {', '.join(co)}")
    fills = fill_labels(bars, config.execution)
    fb = [s for s, f in zip(bars.symbols, fills, strict=True) if f != config.execution.fill]
    if fb:
        notes.append(f"no opens, trade at the next close instead: {', '.join(fb)}")
    groups = []
    for rows, units in calendar_groups(bars.alive):
        gbars = bars.take(units).at_rows(rows)
        greg = None if regimes is None else regimes.iloc[rows, units]
        ok, fx = _gates(gbars, config, greg)
        groups.append(Group(rows, units, ok, fx))
        for ix in _chunks(len(units), config.chunk_size):
            for sl in _combo_slices(len(combos), len(ix)):
                tasks.append(
                    ChunkTask(config.strategy.kind, gbars.take(ix), combos.iloc[sl], config.costs,
                              config.execution, None if ok is None else ok[:, ix], None if fx is None else fx[:, ix],
                              chunk_id=len(tasks), rows=rows, periods_per_year=config.periods_per_year,
                              sizing=config.sizing)
                )  # fmt: skip
    gaps = [bars.symbols[u] for r, us in ((g.rows, g.units) for g in groups) for u in us
            if (r[-1] - r[0] + 1) > len(r)]  # fmt: skip
    if gaps:
        notes.append(f"missing days, traded on their own calendar: {', '.join(gaps)}")
    return combos, tasks, {"bars": bars, "groups": groups}, notes


def _fold(
    results: Iterable[ChunkResult], n_rows: int, combos: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Stream the chunk results into the per-unit table and the per-combination daily means."""
    pos = pd.Series(np.arange(len(combos)), index=combos.index)
    total = np.zeros((n_rows, len(combos)))
    count = np.zeros((n_rows, len(combos)), dtype=np.int32)
    tables: list[pd.DataFrame] = []
    n_backtests = 0
    for r in results:
        cols = pos.loc[r.combos].to_numpy()
        rows = np.arange(n_rows) if r.rows is None else r.rows
        block = np.ix_(rows, cols)
        total[block] += r.ret_sum
        count[block] += r.ret_count
        tables.append(r.table)
        n_backtests += r.n_backtests
        del r
        gc.collect(0)  # chunk arrays hold no cycles; collect young objects so memory is returned now
    with np.errstate(invalid="ignore", divide="ignore"):
        combined = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return pd.concat(tables, ignore_index=True), combined, n_backtests


def run_sweep(config: SweepConfig, lake: Lake) -> SweepResult:
    """Run the sweep of ``config`` on ``lake`` (chunks mapped by the current runner).

    Annualized metrics use ``config.periods_per_year`` (bars a year at the sweep's interval; 252 for daily
    NYSE bars).  The timing starts after the engine is imported (seconds on a cold process)."""
    t0 = time.perf_counter()
    combos, tasks, context, notes = prepare(config, lake)
    index = context["bars"].index
    table, combined, n_backtests = _fold(current_runner()(run_chunk, tasks), len(index), combos)
    params = combos.loc[table["combo"]].reset_index(drop=True)
    table = pd.concat([params, table], axis=1)
    returns = pd.DataFrame(combined, index=index, columns=combos.index)
    summary = summarize(combos, table, returns, config.periods_per_year)
    order = rank_order(summary[config.metric], config.metric)
    best = int(order.index[0])
    clean = returns.dropna(how="all").fillna(0.0).to_numpy()
    dsr = deflated_sharpe(clean, int(np.flatnonzero(combos.index == best)[0]))
    pbo = pbo_cscv(clean, config.overfitting.cscv_splits)
    return SweepResult(
        config=config,
        combos=combos,
        table=table,
        summary=summary,
        returns=returns,
        best=best,
        dsr=dsr,
        pbo=pbo,
        seconds=time.perf_counter() - t0,
        n_backtests=n_backtests,
        notes=notes,
        context=context,
    )


# ------------------------------------------------------------------------------------- one combination
@dataclass
class Detail:
    """The selected combination re-simulated over every unit, with dates: for plots, trades and Monte Carlo."""

    combo: int
    params: dict[str, Any]
    value: pd.DataFrame  # (dates × units) account value (NaN where a unit has no bar)
    returns: pd.Series  # combined daily returns (equal weight)
    trades: pd.DataFrame


def detail(result: SweepResult, combo: int | None = None) -> Detail:
    combo = result.best if combo is None else combo
    cfg = result.config
    bars: Bars = result.context["bars"]
    x_all: Bars | None = result.context.get("x_bars")
    one = result.combos.loc[[combo]]
    units_all = (
        list(bars.symbols)
        if x_all is None
        else [f"{y}/{x}" for y, x in zip(bars.symbols, x_all.symbols, strict=True)]
    )
    value = np.full((len(bars.index), len(units_all)), np.nan)
    frames = []
    for g in result.context["groups"]:
        task = ChunkTask(
            cfg.strategy.kind,
            bars.take(g.units).at_rows(g.rows),
            one,
            cfg.costs,
            cfg.execution,
            g.entry_ok,
            g.force_exit,
            x_bars=None if x_all is None else x_all.take(g.units).at_rows(g.rows),
            periods_per_year=cfg.periods_per_year,
            sizing=cfg.sizing,
        )
        sim = simulate_chunk(task, values=True)
        value[np.ix_(g.rows, g.units)] = sim.value
        rec = sim.pf.trades.values
        idx = task.bars.index
        units = np.asarray(task.units, dtype=object)
        leg_unit = (rec["col"] // 2) if task.x_bars is not None else rec["col"]
        legs = (
            np.where(rec["col"] % 2 == 0, "Y", "X")
            if task.x_bars is not None
            else np.full(len(rec), "", dtype=object)
        )
        frames.append(
            pd.DataFrame(
                {
                    "unit": units[leg_unit],
                    "leg": legs,
                    "direction": np.where(rec["direction"] == 0, "long", "short"),
                    "entry_date": idx[rec["entry_idx"]],
                    "exit_date": idx[rec["exit_idx"]],
                    "size": rec["size"],
                    "entry_price": rec["entry_price"],
                    "exit_price": rec["exit_price"],
                    "fees": rec["entry_fees"] + rec["exit_fees"],
                    "pnl": rec["pnl"],
                    "return": rec["return"],
                    "status": np.where(rec["status"] == 1, "closed", "open"),
                }
            )
        )
    trades = pd.concat(frames, ignore_index=True).sort_values(
        ["exit_date", "unit"], kind="stable", ignore_index=True
    )
    return Detail(
        combo,
        result.best_params if combo == result.best else dict(one.iloc[0]),
        pd.DataFrame(value, index=bars.index, columns=units_all),
        result.returns[combo],
        trades,
    )
