"""Parameter sweeps: every combination × every symbol (or pair), a chunk of symbols per vectorized call.

Memory is bounded by ``chunk_size``: a chunk holds ``T × C × chunk_size`` arrays (signals, prices, value).
Chunks are independent pure functions (:func:`run_chunk`), mapped by the current runner
(:mod:`backtests.research.runner`): sequential, or Prefect tasks on threads or a Dask cluster.

Each combination is also a *trial* for the overfitting statistics: its daily return is the equal-weight mean
of its symbols' daily returns (each symbol trades its own equal slice of capital; only symbols with data
that day count).  The best combination is the one with the best ``config.metric`` of that combined return.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtests.equity import metrics as M
from backtests.equity.config import LOWER_IS_BETTER, CostsConfig, ExecutionConfig, SweepConfig
from backtests.equity.data import Bars, load_bars
from backtests.equity.filters import read_regimes, regime_mask, universe_mask
from backtests.equity.params import combinations, swept
from backtests.equity.simulate import fill_labels, simulate_pairs, simulate_signals
from backtests.equity.strategies import STRATEGIES
from backtests.research.overfitting import DeflatedSharpe, PBOResult, deflated_sharpe, pbo_cscv
from backtests.research.runner import current_runner
from quantlake.errors import ConfigError
from quantlake.lake import Lake
from risk.position_sizing import SizingSpec


@dataclass
class ChunkTask:
    kind: str
    bars: Bars  # the symbols of the chunk (pairs: the Y legs)
    combos: pd.DataFrame
    costs: CostsConfig
    execution: ExecutionConfig
    entry_ok: np.ndarray | None = None  # (T, S) universe & regime gate of entries
    force_exit: np.ndarray | None = None  # (T, S) regime exits
    x_bars: Bars | None = None  # pairs: the X legs
    chunk_id: int = 0
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
    ret_sum: np.ndarray  # (T, C) sum over units of daily returns
    ret_count: np.ndarray  # (T, C) units with data
    n_backtests: int
    seconds: float


@dataclass
class Simulation:
    """A simulated chunk: the vectorbt portfolio and per-unit arrays (unit = column of ``value``)."""

    pf: Any
    value: np.ndarray
    in_position: np.ndarray
    alive: np.ndarray
    sums: dict[str, np.ndarray]
    unit_rows: np.ndarray  # unit -> instrument index within the chunk
    extra: pd.DataFrame | None = None


def _tile(a: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if a is None else np.tile(a, (1, n))


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


def simulate_chunk(task: ChunkTask) -> Simulation:
    sdef = STRATEGIES[task.kind]
    n_combos, n_inst = len(task.combos), len(task.bars.symbols)
    init = task.execution.init_cash
    if task.x_bars is None:
        signals = sdef.fn(task.bars, task.combos)
        signals = signals.gate(_tile(task.entry_ok, n_combos), _tile(task.force_exit, n_combos))
        pf = simulate_signals(task.bars, signals, task.combos, task.costs, task.execution, entry_sizes(task))
        del signals
        close = pd.DataFrame(task.bars.close).ffill().to_numpy()
        value, assets = M.value_from_orders(pf, np.tile(close, (1, n_combos)), init)
        alive = np.tile(task.bars.alive, (1, n_combos))
        sums = M.trade_sums(pf, value.shape[1])
        return Simulation(pf, value, assets != 0, alive, sums, np.tile(np.arange(n_inst), n_combos))
    y, x = task.bars, task.x_bars
    w_y, w_x, pvals = sdef.fn(y.close, x.close, task.combos)
    pf = simulate_pairs(y, x, w_y, w_x, task.combos, task.costs, task.execution)
    value = np.asarray(pf.value(), dtype=float).reshape(len(y.index), -1).copy()
    n_units = value.shape[1]
    assets = pf.assets().to_numpy().reshape(value.shape[0], n_units, 2)
    alive = np.tile(y.alive & x.alive, (1, n_combos))
    sums = M.trade_sums(pf, n_units, np.repeat(np.arange(n_units), 2))
    return Simulation(
        pf, value, (assets != 0).any(axis=2), alive, sums, np.tile(np.arange(n_inst), n_combos), pvals
    )


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Simulate and measure one chunk (a pure function: runs in any worker)."""
    t0 = time.perf_counter()
    sim = simulate_chunk(task)
    n_combos, n_inst = len(task.combos), len(task.bars.symbols)
    table, rets = M.unit_metrics(
        sim.value, sim.in_position, sim.alive, task.execution.init_cash, sim.sums, sim.unit_rows,
        task.periods_per_year,
    )
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
    cube = rets.reshape(rets.shape[0], n_combos, n_inst)
    return ChunkResult(
        table=table,
        ret_sum=np.nansum(cube, axis=2),
        ret_count=(~np.isnan(cube)).sum(axis=2),
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
    """Per combination: return metrics of the combined per-bar returns, pooled trade statistics, mean
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


def _masks(
    lake: Lake, bars: Bars, config: SweepConfig
) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    notes: list[str] = []
    entry_ok: np.ndarray | None = None
    force_exit: np.ndarray | None = None
    if config.universe.active:
        entry_ok = universe_mask(bars, config.universe)
        if config.universe.min_dollar_volume is not None:
            no_vol = [s for s, ok in zip(bars.symbols, np.isnan(bars.volume).all(axis=0), strict=True) if ok]
            if no_vol:
                notes.append(
                    f"no volume (close-only), never in the dollar-volume universe: {', '.join(no_vol)}"
                )
    if config.regime is not None:
        allowed = regime_mask(read_regimes(lake, config.regime, bars), config.regime)
        entry_ok = allowed if entry_ok is None else entry_ok & allowed
        if config.regime.exit_on_change:
            force_exit = ~allowed & bars.alive
    return entry_ok, force_exit, notes


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def prepare(
    config: SweepConfig, lake: Lake
) -> tuple[pd.DataFrame, list[ChunkTask], dict[str, Any], list[str]]:
    """Combinations, chunk tasks and the context the reports need (bars and masks)."""
    sdef = STRATEGIES[config.strategy.kind]
    combos = combinations(config.strategy, config.costs, config.search)
    notes: list[str] = []
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
        tasks = [
            ChunkTask(
                config.strategy.kind,
                y.take(ix),
                combos,
                config.costs,
                config.execution,
                x_bars=x.take(ix),
                chunk_id=i,
                periods_per_year=config.periods_per_year,
            )
            for i, ix in enumerate(_chunks(len(legs), config.chunk_size))
        ]
        return combos, tasks, {"bars": y, "x_bars": x}, notes
    bars = load_bars(lake, config.symbols, config.start, config.end, config.execution.price, config.interval)
    entry_ok, force_exit, notes = _masks(lake, bars, config)
    if sdef.needs_ohlc:
        co = [s for s, ok in zip(bars.symbols, bars.has_ohlc, strict=True) if not ok]
        if co:
            notes.append(f"close-only, true range from closes: {', '.join(co)}")
    fills = fill_labels(bars, config.execution)
    fb = [s for s, f in zip(bars.symbols, fills, strict=True) if f != config.execution.fill]
    if fb:
        notes.append(f"no opens, trade at the next close instead: {', '.join(fb)}")
    tasks = []
    for i, ix in enumerate(_chunks(len(bars.symbols), config.chunk_size)):
        tasks.append(
            ChunkTask(
                config.strategy.kind,
                bars.take(ix),
                combos,
                config.costs,
                config.execution,
                None if entry_ok is None else entry_ok[:, ix],
                None if force_exit is None else force_exit[:, ix],
                chunk_id=i,
                periods_per_year=config.periods_per_year,
                sizing=config.sizing,
            )
        )
    return combos, tasks, {"bars": bars, "entry_ok": entry_ok, "force_exit": force_exit}, notes


def run_sweep(config: SweepConfig, lake: Lake) -> SweepResult:
    """Run the sweep of ``config`` on ``lake`` (chunks mapped by the current runner).

    The timing starts after vectorbt is imported (seconds on a cold process): it measures the sweep."""
    from backtests.equity.jit import enable_cache

    enable_cache()
    t0 = time.perf_counter()
    combos, tasks, context, notes = prepare(config, lake)
    results: list[ChunkResult] = current_runner()(run_chunk, tasks)
    index = context["bars"].index
    table = pd.concat([r.table for r in results], ignore_index=True)
    params = combos.loc[table["combo"]].reset_index(drop=True)
    table = pd.concat([params, table], axis=1)
    total = np.sum([r.ret_sum for r in results], axis=0)
    count = np.sum([r.ret_count for r in results], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        combined = np.where(count > 0, total / np.maximum(count, 1), np.nan)
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
        n_backtests=sum(r.n_backtests for r in results),
        notes=notes,
        context=context,
    )


# ------------------------------------------------------------------------------------- one combination
@dataclass
class Detail:
    """The selected combination re-simulated over every unit, with dates: for plots, trades and Monte Carlo."""

    combo: int
    params: dict[str, Any]
    value: pd.DataFrame  # (dates × units) account value
    returns: pd.Series  # combined daily returns (equal weight)
    trades: pd.DataFrame
    pf: Any


def detail(result: SweepResult, combo: int | None = None) -> Detail:
    combo = result.best if combo is None else combo
    cfg = result.config
    bars: Bars = result.context["bars"]
    one = result.combos.loc[[combo]]
    task = ChunkTask(
        cfg.strategy.kind,
        bars,
        one,
        cfg.costs,
        cfg.execution,
        result.context.get("entry_ok"),
        result.context.get("force_exit"),
        x_bars=result.context.get("x_bars"),
    )
    sim = simulate_chunk(task)
    units = task.units
    value = pd.DataFrame(sim.value, index=bars.index, columns=units).where(sim.alive)
    rec = sim.pf.trades.values
    leg_unit = (rec["col"] // 2) if task.x_bars is not None else rec["col"]
    legs = (
        np.where(rec["col"] % 2 == 0, "Y", "X")
        if task.x_bars is not None
        else np.full(len(rec), "", dtype=object)
    )
    trades = pd.DataFrame(
        {
            "unit": np.asarray(units, dtype=object)[leg_unit],
            "leg": legs,
            "direction": np.where(rec["direction"] == 0, "long", "short"),
            "entry_date": bars.index[rec["entry_idx"]],
            "exit_date": bars.index[rec["exit_idx"]],
            "size": rec["size"],
            "entry_price": rec["entry_price"],
            "exit_price": rec["exit_price"],
            "fees": rec["entry_fees"] + rec["exit_fees"],
            "pnl": rec["pnl"],
            "return": rec["return"],
            "status": np.where(rec["status"] == 1, "closed", "open"),
        }
    ).sort_values(["exit_date", "unit"], kind="stable", ignore_index=True)
    return Detail(
        combo,
        result.best_params if combo == result.best else dict(one.iloc[0]),
        value,
        result.returns[combo],
        trades,
        sim.pf,
    )
