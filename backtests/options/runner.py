"""Run a backtest: read the market from the lake, build the strategy, let backtrader drive the engine, and
collect trades, daily equity and Greeks, metrics and plots into a :class:`BacktestResult`.

``simulate`` is the same without the lake (bars, chain source and strategy given), for tests and studies.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.options import metrics as mx
from backtests.options.config import OptionsBacktestConfig
from backtests.options.driver import run_cerebro
from backtests.options.engine import Engine, EngineSettings, Strategy, sizing_inputs
from backtests.options.market import MarketData, load_market
from backtests.options.quotes import ChainSource
from quantlake.lake import Lake

TRADE_COLUMNS = [
    "position_id", "tag", "contract", "expiry", "strike", "right", "qty", "entry_date", "entry_price", "entry_fees",
    "entry_iv", "entry_delta", "entry_spot", "exit_date", "exit_price", "exit_fees", "exit_iv", "exit_delta",
    "exit_spot", "exit_action", "exit_reason", "pnl", "regime_at_entry",
]
FILL_COLUMNS = ["date", "position_id", "tag", "action", "contract", "expiry", "strike", "right", "qty", "price",
                "fees", "iv", "delta", "spot", "source", "reason"]
REJECTION_COLUMNS = ["date", "tag", "reason", "requirement", "excess_after", "equity", "limit", "shares_needed",
                     "shares_held"]
SKIP_COLUMNS = ["date", "tag", "reason"]
POSITION_COLUMNS = ["position_id", "tag", "opened", "closed", "units", "entry_net", "exit_net", "pnl", "fees",
                    "exit_reason", "regime_at_entry", "days_held"]


@dataclass
class BacktestResult:
    name: str
    daily: pd.DataFrame  # index: date
    trades: pd.DataFrame  # one row per closed leg
    fills: pd.DataFrame  # every fill / settlement / delivery event
    positions: pd.DataFrame  # one row per closed position
    open_positions: pd.DataFrame  # legs still open at the end (marked, not closed)
    rejections: pd.DataFrame
    regimes: pd.DataFrame  # per-regime metrics
    metrics: dict[str, float]
    leg_days: dict[str, int]
    seconds: float
    initial_cash: float
    extra: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Path] = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIP_COLUMNS))  # entries not made

    def summary(self) -> dict[str, float]:
        keys = ("final_equity", "total_return", "cagr", "ann_vol", "sharpe", "max_drawdown", "positions",
                "win_rate", "fees", "interest", "dividends", "rejections", "entries_skipped", "margin_call_days",
                "uncovered_call_days", "leg_days_observed", "leg_days_modeled")
        return {k: self.metrics[k] for k in keys if k in self.metrics}


def _frame(rows: list[dict[str, Any]], columns: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns) if rows or columns else pd.DataFrame(rows)


def collect(name: str, engine: Engine, initial_cash: float, seconds: float) -> BacktestResult:
    acc = engine.account
    if not engine.daily:
        raise ValueError("the backtest produced no bars")
    daily = pd.DataFrame(engine.daily).set_index("date")
    positions = _frame(acc.closed, POSITION_COLUMNS)
    open_legs = [
        {"position_id": p.id, "tag": p.tag, "contract": leg.contract.label(), "qty": leg.qty,
         "entry_date": leg.entry_date, "entry_price": leg.entry_price, "mark": leg.mark, "iv": leg.iv,
         "delta": leg.delta}
        for p in acc.positions.values() for leg in p.legs
    ]
    metrics = mx.overall(daily, positions, initial_cash)
    metrics["rejections"] = float(sum(1 for r in acc.rejections if r["reason"] != "limit not filled"))
    metrics["unfilled_limits"] = float(sum(1 for r in acc.rejections if r["reason"] == "limit not filled"))
    metrics["entries_skipped"] = float(len(engine.skips))
    metrics["uncovered_call_days"] = float((daily["uncovered_calls"] > 0).sum())
    summarize = getattr(engine.strategy, "summarize", None)
    if callable(summarize):
        metrics.update(summarize(daily))
    metrics["leg_days_observed"] = float(engine.leg_days["observed"])
    metrics["leg_days_modeled"] = float(engine.leg_days["modeled"])
    total = engine.leg_days["observed"] + engine.leg_days["modeled"]
    metrics["leg_days_observed_share"] = engine.leg_days["observed"] / total if total else float("nan")
    regimes = mx.per_regime(daily, positions, initial_cash)
    for row in regimes.itertuples(index=False):
        metrics[f"regime.{row.regime}.pnl"] = float(row.pnl)
        metrics[f"regime.{row.regime}.days"] = float(row.days)
        if pd.notna(row.sharpe):
            metrics[f"regime.{row.regime}.sharpe"] = float(row.sharpe)
    extra: dict[str, Any] = {}
    decisions = getattr(engine.strategy, "decisions", None)
    if isinstance(decisions, dict):
        extra["decisions"] = dict(decisions)
        for k, v in decisions.items():
            metrics[f"router.{k}"] = float(v)
    return BacktestResult(
        name=name, daily=daily, trades=_frame(acc.trades, TRADE_COLUMNS), fills=_frame(acc.fills, FILL_COLUMNS),
        positions=positions, open_positions=_frame(open_legs), rejections=_frame(acc.rejections, REJECTION_COLUMNS), regimes=regimes,
        metrics=metrics, leg_days=dict(engine.leg_days), seconds=seconds, initial_cash=initial_cash, extra=extra,
        skipped=pd.DataFrame(engine.skips) if engine.skips else pd.DataFrame(columns=SKIP_COLUMNS),
    )


def simulate(bars: pd.DataFrame, chains: ChainSource, strategy: Strategy, settings: EngineSettings,
             initial_cash: float, start: dt.date | None = None, name: str = "simulation") -> BacktestResult:
    """Run ``strategy`` over ``bars`` (DatetimeIndex; close required; rate, regime, iv_rank, vix optional)."""
    b = bars.copy()
    b.index = pd.DatetimeIndex(b.index)
    for col in ("open", "high", "low"):
        if col not in b:
            b[col] = b["close"]
    defaults: dict[str, Any] = {"volume": 0.0, "rate": 0.0, "iv_rank": float("nan"), "vix": float("nan"),
                                "regime": "unknown"}
    for col, val in defaults.items():
        if col not in b:
            b[col] = val
    first = start or b.index[0].date()
    market = MarketData(settings.underlying, b, first, "regime" in bars)
    return _run(name, market, chains, strategy, settings, initial_cash)


def _run(name: str, market: MarketData, chains: ChainSource, strategy: Strategy, settings: EngineSettings,
         initial_cash: float) -> BacktestResult:
    t0 = time.perf_counter()
    engine = Engine(settings, chains, strategy, initial_cash, market.trading_dates)
    engine.sizing_inputs = sizing_inputs(settings.sizing, market.bars)
    engine.use_settlement_levels(market.settlement_levels)
    run_cerebro(market, engine, ema=getattr(strategy, "ema", None))
    result = collect(name, engine, initial_cash, time.perf_counter() - t0)
    _reference_settlements(result, market)
    return result


def _reference_settlements(result: BacktestResult, market: MarketData) -> None:
    """Legs settled after their expiry at the reference index's level of the expiry day (the bars had no row
    for it): counted in ``settled_on_reference_level`` and listed in ``extra`` with the index and level."""
    t = result.trades
    if not market.settlement_levels or t.empty:
        result.metrics["settled_on_reference_level"] = 0.0
        return
    late = t[(t["exit_reason"] == "expiry") & (pd.to_datetime(t["exit_date"]) > pd.to_datetime(t["expiry"]))]
    result.metrics["settled_on_reference_level"] = float(len(late))
    if len(late):
        result.extra["settled_on_reference_level"] = [
            {"contract": r.contract, "expiry": str(r.expiry), "settled_on": str(r.exit_date), "level": r.exit_spot,
             "index": market.settlement_symbol} for r in late.itertuples()]


def chain_months(horizon_days: int | None) -> int:
    """Monthly expiries a modeled chain must list for a strategy that holds options at most ``horizon_days``
    out (``None``: unknown, the chain's default 12).  Modeled prices do not depend on which other expiries
    are listed, so a shorter list only saves time (a 2-month chain is about a quarter of a 12-month one)."""
    if horizon_days is None:
        return 12
    return int(min(12, max(2, math.ceil(horizon_days / 28) + 1)))


def default_chain_source(lake: Lake, horizon_days: int | None = None,
                         roots: tuple[str, ...] | None = None) -> ChainSource:
    """``features.chains.ChainProvider`` over ``lake`` (observed quotes of ``roots``, else modeled), modeling
    expiries up to :func:`chain_months` of ``horizon_days``."""
    from backtests.options.errors import ChainError

    try:
        from features.chains import ChainModelConfig, ChainProvider
    except ImportError as exc:  # pragma: no cover - depends on the features package being installed
        raise ChainError(f"option chains need features.chains ({exc})") from None
    provider: ChainSource = ChainProvider(lake, ChainModelConfig(months=chain_months(horizon_days)), roots)
    return provider


def warmup_days(strategy: Strategy) -> int:
    """Calendar days of bars before ``start`` a strategy's indicators need (the slow EMA's seed)."""
    ema = getattr(strategy, "ema", None)
    return int(ema[1] * 2.2) + 10 if ema else 0


def market_for(config: OptionsBacktestConfig, lake: Lake, strategy: Strategy) -> MarketData:
    """The market data ``strategy`` needs for ``config`` (bars with warm-up, rates, regimes)."""
    return load_market(config, lake, warmup_days=warmup_days(strategy),
                       regime_uses=tuple(getattr(strategy, "regime_uses", ())), strategy=strategy.name)


def run_backtest(config: OptionsBacktestConfig, lake: Lake | None = None, chains: ChainSource | None = None,
                 strategy: Strategy | None = None, market: MarketData | None = None) -> BacktestResult:
    """Run ``config`` on the lake (default: ``$QUANTLAKE_HOME/lake``); ``market`` (from :func:`market_for`)
    and ``chains`` may be given when many backtests share them (option sweeps)."""
    from backtests.options.strategies import build_strategy

    lake = lake if lake is not None else Lake()
    strat = strategy if strategy is not None else build_strategy(config.strategy)
    market = market if market is not None else market_for(config, lake, strat)
    settings = EngineSettings.from_config(config, strat.default_delay)
    roots = tuple(config.chain.roots) if config.chain.roots else None
    source = chains if chains is not None else default_chain_source(lake, getattr(strat, "horizon_days", None), roots)
    result = _run(config.name, market, source, strat, settings, config.initial_cash)
    result.extra.update(has_regime=market.has_regime, strategy=strat.name, underlying=config.underlying,
                        bars_source=market.bars_source)
    _iv_rank_sources(result, market)
    _early_settlements(result)
    return result


def _early_settlements(result: BacktestResult) -> None:
    """Legs settled before their expiry although the expiry was an exchange trading day: the bars have no
    row for it (a gap in chain-derived bars), so they settled at the last level before it.  Counted in
    ``settled_before_expiry`` and listed in ``extra`` (a holiday expiry settling the day before is normal)."""
    from quantlake.calendars import is_trading_day

    t = result.trades
    settled = t[(t["exit_reason"] == "expiry") & (pd.to_datetime(t["exit_date"]) < pd.to_datetime(t["expiry"]))]
    early = settled[[is_trading_day(e) for e in settled["expiry"]]] if len(settled) else settled
    result.metrics["settled_before_expiry"] = float(len(early))
    if len(early):
        result.extra["settled_before_expiry"] = [
            {"contract": r.contract, "expiry": str(r.expiry), "settled_on": str(r.exit_date), "level": r.exit_spot}
            for r in early.itertuples()]


def _iv_rank_sources(result: BacktestResult, market: MarketData) -> None:
    """Say which IV rank each bar used: the daily ``iv_rank_source`` column and counts per source."""
    if "iv_rank_source" not in market.bars:
        return
    src = market.bars["iv_rank_source"].reindex(pd.DatetimeIndex(pd.to_datetime(result.daily.index))).fillna("")
    result.daily["iv_rank_source"] = src.to_numpy()
    counts = src[src != ""].value_counts()
    result.metrics["iv_rank_days_underlying"] = float(counts.get(market.underlying, 0))
    result.metrics["iv_rank_days_vix"] = float(counts.drop(market.underlying, errors="ignore").sum())
    result.extra["iv_rank_source"] = {str(k): int(v) for k, v in counts.items()}
