"""One option research run: every trial of the sweep (in chunks on the current runner), the selected trial
re-run in full (trades, equity and Greeks), deflated Sharpe and PBO over the trials' daily returns, and —
when configured — walk-forward and Monte Carlo through the shared research code (:mod:`backtests.research`).

The trials' returns are their **daily returns in excess of the cash rate** (an option account earns interest
on its collateral; counting it as strategy return would flatter every trial alike): DSR, PBO and the
walk-forward windows all read that matrix.  Monte Carlo resamples the selected trial's closed positions, each
as its P&L over the account's equity before it was opened (so ``fraction`` 1 by default).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtests.options.runner import BacktestResult
from backtests.options.sweep.config import (
    LOWER_IS_BETTER,
    METRICS,
    OptionsSweepConfig,
    Trials,
    config_value,
    expand,
)
from backtests.options.sweep.trials import ChunkResult, make_chunks, release, run_chunk, workspace
from backtests.research.montecarlo import MonteCarloResult, monte_carlo
from backtests.research.overfitting import DeflatedSharpe, PBOResult, deflated_sharpe, pbo_cscv
from backtests.research.runner import current_runner
from backtests.research.walkforward import WalkForwardResult, walk_forward
from quantlake.calendars import TRADING_DAYS_PER_YEAR
from quantlake.lake import Lake

PERIODS_PER_YEAR = TRADING_DAYS_PER_YEAR  # daily bars of an NYSE-traded underlying


@dataclass
class OptionSweepResult:
    config: OptionsSweepConfig
    trials: pd.DataFrame  # index trial: swept values, then metrics
    returns: pd.DataFrame  # dates × trials: daily excess returns
    swept: list[str]
    best: int
    dsr: DeflatedSharpe
    pbo: PBOResult
    selected: BacktestResult
    walkforward: WalkForwardResult | None = None
    montecarlo: MonteCarloResult | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    trial_seconds: list[float] = field(default_factory=list)
    trial_cpu_seconds: list[float] = field(default_factory=list)
    chunk_seconds: list[float] = field(default_factory=list)
    chains_built: int = 0
    files: dict[str, Any] = field(default_factory=dict)

    @property
    def best_params(self) -> dict[str, Any]:
        return {k: config_value(v) for k, v in self.trials.loc[self.best, list(self.params)].items()}

    @property
    def params(self) -> list[str]:
        return [c for c in self.trials.columns if c not in _metric_columns()]

    def metrics(self) -> dict[str, float]:
        """Flat finite numbers for MLflow (timings are tags: a reproduction must give identical metrics)."""
        row = self.trials.loc[self.best]
        out: dict[str, float] = {f"best.{k}": float(row[k]) for k in _metric_columns() if k in row}
        out["n_trials"] = float(len(self.trials))
        out.update({f"dsr.{k}": v for k, v in self.dsr.as_dict().items()})
        out.update({f"pbo.{k}": v for k, v in self.pbo.as_dict().items()})
        out["dsr.sharpe_annualized"] = self.dsr.sharpe * np.sqrt(PERIODS_PER_YEAR)
        out["dsr.sr0_annualized"] = self.dsr.sr0 * np.sqrt(PERIODS_PER_YEAR)
        if self.walkforward is not None:
            out.update(self.walkforward.metrics())
        if self.montecarlo is not None:
            out.update(self.montecarlo.metrics())
        return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}

    def timing(self) -> dict[str, float]:
        per = float(np.mean(self.trial_seconds)) if self.trial_seconds else float("nan")
        cpu = float(np.mean(self.trial_cpu_seconds)) if self.trial_cpu_seconds else float("nan")
        return {"sweep_seconds": self.seconds, "seconds_per_trial": per, "cpu_seconds_per_trial": cpu,
                "chains_built": float(self.chains_built)}


def _metric_columns() -> tuple[str, ...]:
    from backtests.options.sweep.trials import TRIAL_METRICS

    return (*TRIAL_METRICS, "sortino")


def rank_order(values: pd.Series, metric: str) -> pd.Series:
    """Trials best first by ``metric`` (NaN last; ties: the lower trial id)."""
    return values.sort_values(ascending=metric in LOWER_IS_BETTER, na_position="last", kind="stable")


def assemble(trials: Trials, results: list[ChunkResult]) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[float, float]]]:
    """The trials table (swept values + metrics, index trial), the (dates × trials) excess-return matrix and
    each trial's (wall, CPU) seconds."""
    outputs = sorted((o for r in results for o in r.outputs), key=lambda o: o.trial)
    if [o.trial for o in outputs] != list(range(len(trials))):
        raise RuntimeError("option sweep: chunk results do not cover every trial exactly once")
    metrics = pd.DataFrame([o.metrics for o in outputs], index=trials.params.index)
    table = pd.concat([trials.params, metrics], axis=1)
    returns = pd.concat({o.trial: o.returns for o in outputs}, axis=1).sort_index()
    returns.columns.name = "trial"
    return table, returns, [(o.seconds, o.cpu_seconds) for o in outputs]


def position_returns(result: BacktestResult) -> np.ndarray:
    """Each closed position's P&L over the account's equity at the close before it opened (in closing order)."""
    pos = result.positions
    if pos.empty:
        return np.array([], dtype=float)
    equity = result.daily["equity"].astype(float)
    before = equity.shift(1).fillna(result.initial_cash)
    before.index = pd.to_datetime(before.index)
    opened = pd.to_datetime(pos["opened"])
    base = before.reindex(opened).to_numpy(dtype=float)
    order = np.argsort(pd.to_datetime(pos["closed"]).to_numpy(), kind="stable")
    return (pos["pnl"].to_numpy(dtype=float) / base)[order]


def research_sections(config: OptionsSweepConfig, returns: pd.DataFrame, selected: BacktestResult
                      ) -> tuple[WalkForwardResult | None, MonteCarloResult | None]:
    """The configured walk-forward (rolling or anchored windows over the trials' excess returns, each window's
    pick by ``config.metric`` in-sample) and Monte Carlo (the selected trial's closed positions) — both the
    shared :mod:`backtests.research` code of the equity sweeps."""
    wf = None
    if config.walkforward is not None:
        wf = walk_forward(returns, config.walkforward, METRICS[config.metric], PERIODS_PER_YEAR)
    mc = None
    if config.montecarlo is not None:
        trades = position_returns(selected)
        mc = monte_carlo(trades, config.montecarlo, config.montecarlo.fraction or 1.0)
    return wf, mc


def run_option_sweep(config: OptionsSweepConfig, lake: Lake) -> OptionSweepResult:
    """Run ``config`` on ``lake`` (trials mapped in chunks by the current runner; see the module docstring)."""
    t0 = time.perf_counter()
    trials = expand(config)
    key = f"{config.name}-{uuid.uuid4().hex[:12]}"
    chunks = make_chunks(key, lake, trials.configs, config.chunks)
    try:
        results: list[ChunkResult] = list(current_runner()(run_chunk, chunks))
        table, returns, per_trial = assemble(trials, results)
        for r in results:  # lineage: the versions the workers read (the pins)
            lake.versions_read.update(r.versions_read)
        order = rank_order(table[config.metric], config.metric)
        best = int(order.index[0])
        clean = returns.dropna(how="all").fillna(0.0)
        matrix = clean.to_numpy()
        dsr = deflated_sharpe(matrix, best)
        pbo = pbo_cscv(matrix, config.overfitting.cscv_splits)
        first = chunks[0]
        ws = workspace(key, first.lake_root, first.pins, first.horizon_days)
        selected = ws.run(trials.configs[best].model_copy(update={"name": f"{config.name}-selected"}))
        chains_built = ws.chains.builds
        lake.versions_read.update(ws.lake.versions_read)
    finally:
        release(key)
    notes = list(trials.notes)
    wf, mc = research_sections(config, clean, selected)
    return OptionSweepResult(
        config=config, trials=table, returns=returns, swept=trials.swept, best=best, dsr=dsr, pbo=pbo,
        selected=selected, walkforward=wf, montecarlo=mc, notes=notes, seconds=time.perf_counter() - t0,
        trial_seconds=[w for w, _ in per_trial], trial_cpu_seconds=[c for _, c in per_trial], chunk_seconds=[r.seconds for r in results], chains_built=chains_built,
    )
