"""The option strategy a trader drives: **the backtester's own objects** — the strategy object of
``backtests.options.strategies`` inside the backtest :class:`~backtests.options.engine.Engine` — kept between
trading runs as the strategy's *book*.

* A strategy version lives in the MLflow registry like a signal model: :func:`register_option_strategy`
  registers an options backtest run's ``config.json`` as a version of a model (kind ``option_strategy``);
  ``quantlake models promote`` makes one the champion; :func:`load_option_strategy` reads the champion's
  config back.
* The book (:class:`Book`): the engine — account with cash, interest, the positions with their entry
  prices, exit rules and entry regime, the strategy object with its state, the orders waiting at the broker —
  pickled under ``$QUANTLAKE_HOME/execution/book-<broker>-<account>-<strategy>.pkl`` after each run (replaced
  atomically).  Its positions change only through fills and expiry events, exactly as in a backtest.
* :func:`bar_of` builds the day's :class:`~backtests.options.engine.Bar` with the backtest's market loader
  (:func:`backtests.options.market.load_market`: close, open, rate from FRED, regime, IV rank, VIX).
* :func:`live_calendar` is the engine's calendar for a trading day: the underlying's bars up to it, then the
  NYSE sessions ahead (known in advance; an expiry on a holiday settles the session before, as in a backtest).
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.options.config import OptionsBacktestConfig, parse_config
from backtests.options.engine import Bar, Engine, EngineSettings, sizing_inputs
from backtests.options.market import MarketData, load_market
from quantlake.errors import ConfigError, UserInputError
from quantlake.lake import Lake

BOOK_FORMAT = 1
KIND = "option_strategy"
CONFIG_ARTIFACT = "config.json"
UNSUPPORTED_LIVE = {"ema_crossover": "its EMA crossover signal is computed by backtrader over the whole history"}


class BookError(UserInputError):
    """The book of an option strategy cannot be used (unreadable, another strategy's, an older format)."""


# ----------------------------------------------------------------------------------------- registry
def register_option_strategy(run_id: str, name: str) -> str:
    """Register the config of options backtest run ``run_id`` as a new version of model ``name``; returns
    the version.  The run's metrics stay on the version's run for the promotion gate.  Any other job's run
    (an equity sweep's config is a ``config.json`` too) is refused before anything is registered."""
    from mlflow.exceptions import MlflowException

    from backtests.options.jobs import JOB
    from tracking import tags
    from tracking.registry import register_version
    from tracking.run_context import client

    try:
        run = client().get_run(run_id)
    except MlflowException:
        raise UserInputError(f"no run {run_id!r} in the MLflow store (`quantlake runs list -e options_backtest`)") from None
    job = run.data.tags.get(tags.JOB)
    if job != JOB:
        raise UserInputError(f"run {run_id} is not an options backtest run (its job: {job or 'none'}); register "
                             "the run id `quantlake options-backtest` prints (`quantlake runs list -e options_backtest`)")
    return register_version(name, f"runs:/{run_id}/{CONFIG_ARTIFACT}", run_id, KIND)


def load_option_strategy(name: str) -> tuple[OptionsBacktestConfig, str]:
    """The champion version of option strategy ``name``: its backtest config and a label."""
    import json

    import mlflow

    from execution.signal_source import champion_version
    from tracking.registry import CHAMPION

    version = champion_version(name, f"register an options backtest run with `quantlake trade register-options "
                               f"RUN_ID --name {name}` and promote it (`quantlake models promote {name} --version VERSION`)")  # fmt: skip
    if (version.tags or {}).get("quantlake.kind") != KIND:
        raise ConfigError(f"model {name!r} v{version.version} is not an option strategy (kind "
                          f"{(version.tags or {}).get('quantlake.kind')!r}); trade it with `quantlake trade --model`")  # fmt: skip
    path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=CONFIG_ARTIFACT)
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return parse_config(data, source=f"models:/{name}@{CHAMPION}"), f"models:/{name}@{CHAMPION} (v{version.version})"


def check_live(cfg: OptionsBacktestConfig) -> None:
    """Refuse what the trader cannot reproduce live, naming the setting."""
    kind = cfg.strategy.kind
    if kind in UNSUPPORTED_LIVE:
        raise ConfigError(f"strategy.kind {kind!r} cannot trade live yet: {UNSUPPORTED_LIVE[kind]}")
    if cfg.execution.delay == "same_bar" or (cfg.execution.delay is None and kind in ("buy_write", "put_write")):
        raise ConfigError(
            f"execution.delay: a live order decided at the close fills at the next session; set "
            f"execution.delay: next_bar for {kind} (its backtest default fills on the roll date itself)"
        )


# ----------------------------------------------------------------------------------------- the book
@dataclass
class Book:
    """What a trader keeps of an option strategy between runs."""

    engine: Engine
    strategy_label: str
    config: OptionsBacktestConfig
    last_day: dt.date | None = None
    submitted: dict[str, str] = field(default_factory=dict)  # client order id → trade date (ISO)
    format: int = BOOK_FORMAT


def book_path(broker: str, account: str, strategy: str) -> Path:
    from execution.account_state import state_dir

    return state_dir() / f"book-{broker}-{account}-{strategy}.pkl"


def load_book(path: Path) -> Book | None:
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            book = pickle.load(handle)
    except Exception as exc:
        raise BookError(f"the option book {path} is unreadable ({type(exc).__name__}: {exc}); restore it from a "
                        "backup or move it away to start the strategy flat") from None  # fmt: skip
    if not isinstance(book, Book) or getattr(book, "format", None) != BOOK_FORMAT:
        raise BookError(f"the option book {path} was written by another quantlake version; move it away to "
                        "start the strategy flat")  # fmt: skip
    return book


def save_book(path: Path, book: Book) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(book, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def new_book(cfg: OptionsBacktestConfig, label: str, initial_cash: float) -> Book:
    from backtests.options.strategies import build_strategy

    strategy = build_strategy(cfg.strategy)
    settings = EngineSettings.from_config(cfg, "next_bar")
    engine = Engine(settings, None, strategy, initial_cash, [])  # type: ignore[arg-type]  # chains attached per run
    return Book(engine, label, cfg)


def adopt_config(book: Book, cfg: OptionsBacktestConfig, label: str) -> None:
    """A newly promoted version: the engine keeps its account and positions (their own exit rules), the
    strategy object and the account rules come from the new config."""
    from backtests.options.strategies import build_strategy

    if label == book.strategy_label:
        return
    if cfg.underlying != book.config.underlying:
        raise BookError(f"the new champion trades {cfg.underlying}, the book holds {book.config.underlying}: "
                        "use another --strategy name for it")  # fmt: skip
    book.engine.strategy = build_strategy(cfg.strategy)
    book.engine.settings = EngineSettings.from_config(cfg, "next_bar")
    book.config, book.strategy_label = cfg, label


# ----------------------------------------------------------------------------------------- market
def market_until(cfg: OptionsBacktestConfig, lake: Lake, day: dt.date, strategy: Any) -> MarketData:
    """The backtest's market data (bars, rate, regime) of ``cfg`` from its start up to ``day``."""
    start = min(cfg.start, day)
    live = cfg.model_copy(update={"start": start, "end": day})
    return load_market(live, lake, regime_uses=tuple(getattr(strategy, "regime_uses", ())), strategy=strategy.name)


def bar_of(market: MarketData, day: dt.date) -> Bar:
    ts = pd.Timestamp(day)
    if ts not in market.bars.index:
        raise UserInputError(f"no bar of {market.underlying} on {day}: ingest it first, or trade a trading day")
    r = market.bars.loc[ts]
    import math

    rate = float(r["rate"])
    return Bar(date=day, close=float(r["close"]), open=float(r["open"]), rate=rate if math.isfinite(rate) else 0.0,
               regime=str(r["regime"]), iv_rank=float(r["iv_rank"]), vix=float(r["vix"]))  # fmt: skip


def live_calendar(market: MarketData, day: dt.date, ahead_days: int = 400) -> list[dt.date]:
    """Bars up to ``day``, then NYSE sessions for ``ahead_days`` calendar days."""
    from features.calendar import is_trading_day

    past = [d for d in market.trading_dates if d <= day]
    future = [day + dt.timedelta(days=i) for i in range(1, ahead_days)]
    return past + [d for d in future if is_trading_day(d)]


def prepare_engine(book: Book, market: MarketData, day: dt.date) -> None:
    """The engine's calendar and sizing inputs for ``day`` (recomputed each run: the calendar grows)."""
    from backtests.options.contracts import monthly_expiries, settlement_dates

    e = book.engine
    import numpy as np

    cal = live_calendar(market, day)
    e.calendar = np.asarray([np.datetime64(d, "D") for d in cal], dtype="datetime64[D]")
    months = monthly_expiries(cal[0], cal[-1]) if cal else []
    e.monthly_settlements = {d for d in settlement_dates(months, e.calendar) if d is not None}
    e._settle_cache = {}
    e.sizing_inputs = sizing_inputs(e.settings.sizing, market.bars)


__all__ = [
    "Book",
    "BookError",
    "adopt_config",
    "bar_of",
    "book_path",
    "check_live",
    "live_calendar",
    "load_book",
    "load_option_strategy",
    "market_until",
    "new_book",
    "prepare_engine",
    "register_option_strategy",
    "save_book",
]
