"""Running the trials of an option sweep in chunks, on whatever runner the caller installed
(:mod:`backtests.research.runner`: sequential, or a Prefect flow's threads or Dask workers).

Trials share everything that does not depend on their settings, once per process (a :class:`Workspace`):

* the lake, pinned to the table versions the sweep started from (so every worker reads the same data, and the
  run's lineage records those versions);
* the chains: one :class:`~backtests.options.chain_cache.SharedChains` over ``features.chains.ChainProvider``
  — observed quotes read once per day, a modeled chain priced once per day (listing the expiries the longest
  trial can hold), each day normalised once;
* the market data (bars, rates, regimes), loaded once per warm-up length.

A chunk (:class:`TrialChunk`) is small and picklable (trial ids and their configs as JSON); its result carries
each trial's metrics and daily returns in excess of the cash rate, never the engine's objects.  Results do
not depend on the chunking or the runner: every trial is a pure function of its config and the pinned data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtests.options import metrics as mx
from backtests.options.chain_cache import SharedChains
from backtests.options.config import OptionsBacktestConfig, parse_config
from backtests.options.market import MarketData
from backtests.options.runner import (
    BacktestResult,
    chain_months,
    default_chain_source,
    market_for,
    run_backtest,
    warmup_days,
)
from quantlake import stats as qstats
from quantlake.calendars import TRADING_DAYS_PER_YEAR
from quantlake.lake import Lake

TABLES = ("equity_bars", "macro_series", "features_regime", "option_quotes")  # what a backtest may read
# the backtest's own figures kept per trial (besides sortino and the swept values)
TRIAL_METRICS = (
    "sharpe", "cagr", "total_return", "max_drawdown", "calmar", "ann_vol", "final_equity", "positions", "win_rate",
    "avg_position_pnl", "fees", "interest", "rejections", "unfilled_limits", "margin_call_days",
    "leg_days_observed", "leg_days_modeled",
)  # fmt: skip


def pins_of(lake: Lake) -> dict[str, int]:
    """The version of every table a backtest may read: the lake's pins, else the latest version now."""
    out = {}
    for table in TABLES:
        if table in lake.pins:
            out[table] = lake.pins[table]
        elif lake.exists(table):
            out[table] = lake.version(table)
    return out


def excess_returns(result: BacktestResult) -> pd.Series:
    """Daily returns of the account in excess of what cash earned (the series DSR, PBO and walk-forward use)."""
    r = mx.returns(result.daily, result.initial_cash) - mx.cash_returns(result.daily)
    r.index = pd.DatetimeIndex(result.daily.index)
    return r.rename("excess_return")


def trial_metrics(result: BacktestResult) -> dict[str, float]:
    m = {k: float(result.metrics.get(k, np.nan)) for k in TRIAL_METRICS}
    m["sortino"] = float(qstats.sortino_ratio(excess_returns(result).to_numpy(dtype=float), TRADING_DAYS_PER_YEAR))
    return m


# ------------------------------------------------------------------------------------------ workspace
class Workspace:
    """What the trials of one sweep share inside one process (see the module docstring)."""

    def __init__(self, lake_root: str, pins: dict[str, int], horizon_days: int | None) -> None:
        self.lake = Lake(lake_root, pins=pins)
        self.chains = SharedChains(default_chain_source(self.lake, horizon_days))
        self._markets: dict[tuple[int, tuple[str, ...]], MarketData] = {}
        self._lock = threading.Lock()

    def market(self, config: OptionsBacktestConfig, strategy: Any) -> MarketData:
        key = (warmup_days(strategy), tuple(getattr(strategy, "regime_uses", ())))
        with self._lock:
            if key not in self._markets:
                self._markets[key] = market_for(config, self.lake, strategy)
            return self._markets[key]

    def run(self, config: OptionsBacktestConfig) -> BacktestResult:
        from backtests.options.strategies import build_strategy

        strategy = build_strategy(config.strategy)
        return run_backtest(config, self.lake, chains=self.chains, strategy=strategy,
                            market=self.market(config, strategy))


_WORKSPACES: dict[str, Workspace] = {}
_WS_LOCK = threading.Lock()
MAX_WORKSPACES = 2  # per process: a long-lived Dask worker keeps the caches of the latest sweeps only


def workspace(key: str, lake_root: str, pins: dict[str, int], horizon_days: int | None) -> Workspace:
    """This process's workspace of sweep ``key`` (created on first use; the oldest one is dropped beyond
    :data:`MAX_WORKSPACES`, since workers of an existing cluster outlive the sweeps they run)."""
    with _WS_LOCK:
        ws = _WORKSPACES.get(key)
        if ws is None:
            while len(_WORKSPACES) >= MAX_WORKSPACES:
                _WORKSPACES.pop(next(iter(_WORKSPACES)))
            ws = _WORKSPACES[key] = Workspace(lake_root, pins, horizon_days)
        return ws


def release(key: str) -> None:
    with _WS_LOCK:
        _WORKSPACES.pop(key, None)


# ------------------------------------------------------------------------------------------ chunks
@dataclass
class TrialChunk:
    key: str
    lake_root: str
    pins: dict[str, int]
    horizon_days: int | None
    trials: list[tuple[int, dict[str, Any]]]  # (trial id, backtest config as JSON)


@dataclass
class TrialOutput:
    trial: int
    metrics: dict[str, float]
    returns: pd.Series  # daily excess returns (date index)
    seconds: float
    cpu_seconds: float = 0.0  # CPU time of the trial's thread (steadier than wall time on a busy machine)


@dataclass
class ChunkResult:
    outputs: list[TrialOutput]
    versions_read: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run_chunk(chunk: TrialChunk) -> ChunkResult:
    """Run the trials of ``chunk`` (a pure function of the chunk: runs in any worker)."""
    t0 = time.perf_counter()
    ws = workspace(chunk.key, chunk.lake_root, chunk.pins, chunk.horizon_days)
    outputs = []
    for trial, data in chunk.trials:
        t1, c1 = time.perf_counter(), time.thread_time()
        res = ws.run(parse_config(data, source=f"trial {trial}"))
        outputs.append(TrialOutput(trial, trial_metrics(res), excess_returns(res), time.perf_counter() - t1,
                                   time.thread_time() - c1))
    return ChunkResult(outputs, dict(ws.lake.versions_read), time.perf_counter() - t0)


def horizon(configs: Sequence[OptionsBacktestConfig]) -> int | None:
    """The longest holding horizon (days) of the trials' strategies: the modeled chain lists expiries up to it
    (:func:`~backtests.options.runner.chain_months`); ``None`` (a full chain) if a strategy does not say."""
    from backtests.options.strategies import build_strategy

    days = [getattr(build_strategy(c.strategy), "horizon_days", None) for c in configs]
    return None if any(d is None for d in days) else max(int(d) for d in days)  # type: ignore[arg-type]


def make_chunks(key: str, lake: Lake, configs: Sequence[OptionsBacktestConfig], n_chunks: int) -> list[TrialChunk]:
    """``n_chunks`` chunks (fewer if there are fewer trials), trials dealt round-robin so that slow and fast
    settings (grids are ordered) spread over the chunks."""
    n = max(1, min(n_chunks, len(configs)))
    pins = pins_of(lake)
    days = horizon(configs)
    dealt: list[list[tuple[int, dict[str, Any]]]] = [[] for _ in range(n)]
    for i, cfg in enumerate(configs):
        dealt[i % n].append((i, cfg.model_dump(mode="json")))
    return [TrialChunk(key, lake.uri, pins, days, trials) for trials in dealt]


def months_listed(configs: Sequence[OptionsBacktestConfig]) -> int:
    return chain_months(horizon(configs))
