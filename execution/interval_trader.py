"""Paper trading at an intraday interval (``1h`` crypto 24/7, ``1h``/``15m`` equities in their sessions).

One run at instant ``as_of`` (UTC; the hourly deployment runs a few minutes after each bar closes):

1. the interval paper ledger fills every open order at the open of the **first bar that opens at or after
   the instant the order was decided and has closed by** ``as_of`` (± slippage, commission by the cost
   model) — a bar still forming never fills anything;
2. the closed bars of ``interval`` come from :func:`features.bars.resample` (stored bars of that interval,
   else aggregated from finer ones, session-aligned; only buckets closed by ``as_of``);
3. the decision bar is the latest closed bar; the rule is the EMA cross of the scanner's kernels
   (:func:`execution.indicators.add_indicators`): long ``max_position_fraction`` of equity while
   EMA(fast) > EMA(slow) at that bar's close, flat otherwise;
4. target units (rounded down to ``lot_size``: 1 share, or 0.0001 BTC) - (held + working) become orders
   (a held position within ``band`` × its size of the target is left alone, as in the daily trader)
   (:func:`execution.orders.plan_orders`, exits first), client ids carry the bar's close instant
   (``ql-<yyyymmdd>T<hhmm>-...``), so a re-run for the same bar sends nothing twice; each is written to
   ``exec_orders`` (``trade_date`` = the bar's UTC date) with the ledger's answer; each later run first brings
   the ledger's statuses and fills of open audited orders into ``exec_orders``/``exec_fills``.

The daily trader (:mod:`execution.trader`) keeps its date-keyed path; this module shares its pieces (order
ids, planning, sizing, cost model, account lock, audit rows) and differs only in the clock: bar instants.
Live brokers are not wired to interval runs (paper only).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import Field, field_validator, model_validator

from execution._model import ExecModel
from execution.brokers.base import OPEN_STATUSES, OrderRequest
from execution.brokers.paper import PaperBroker
from execution.errors import DuplicateOrderError
from execution.settings import CostModel
from quantlake.calendars import check_interval, parse_interval
from quantlake.errors import InvalidDateError, UserInputError
from quantlake.lake import Lake
from quantlake.tables import validate_symbol

Period = Annotated[int, Field(ge=2, le=1000)]


def utc(when: Any) -> pd.Timestamp:
    """``when`` as a UTC timestamp (naive values are read as UTC)."""
    ts = pd.Timestamp(when)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class IntervalTradeConfig(ExecModel):
    """One interval paper account: ``symbols`` traded on ``interval`` bars by the EMA(fast/slow) cross."""

    symbols: list[str] = Field(min_length=1)
    interval: str = "1h"
    account: str = "hourly"
    strategy: str = "ema_cross"
    fast: Period = 12
    slow: Period = 26
    max_position_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.10
    band: Annotated[float, Field(ge=0.0, le=1.0)] = 0.10
    lot_size: Annotated[float, Field(gt=0.0)] = 1.0
    initial_cash: Annotated[float, Field(gt=0.0)] = 100_000.0
    costs: CostModel = Field(default_factory=CostModel)
    history_bars: Annotated[int, Field(ge=10, le=100_000)] = 500
    as_of: dt.datetime | None = None

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return [validate_symbol(s) for s in v]

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        out = check_interval(v)
        if parse_interval(out) >= pd.Timedelta(days=1):
            raise ValueError(f"interval {out}: interval trading is for intraday bars; daily runs use `quantlake trade`")
        return out

    @model_validator(mode="after")
    def _periods(self) -> IntervalTradeConfig:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class IntervalPaperBroker(PaperBroker):
    """The paper ledger on a bar clock: orders decided at a bar's close fill at the open of the next bar of
    ``interval`` once that bar has closed; marks are the latest closed bar's close."""

    def __init__(self, lake: Lake, interval: str, ledger_dir: Path | None = None, account: str = "hourly",
                 costs: CostModel | None = None, initial_cash: float = 100_000.0) -> None:  # fmt: skip
        super().__init__(lake, ledger_dir=ledger_dir, account=account, costs=costs, initial_cash=initial_cash)
        self.interval = check_interval(interval)

    @property
    def clock_ts(self) -> pd.Timestamp | None:
        value = self._meta("clock_ts")
        return utc(value) if value else None

    def now(self) -> dt.datetime:
        clock = self.clock_ts
        return clock.to_pydatetime() if clock is not None else dt.datetime.now(dt.UTC)

    def _bars(self, symbols: list[str], as_of: pd.Timestamp, since: pd.Timestamp) -> pd.DataFrame:
        from features.bars import resample

        start = (since - pd.Timedelta(days=7)).date()
        return resample(self.lake, sorted(set(symbols)), self.interval, start=start, as_of=as_of)

    def _marks(self, symbols: list[str], as_of: dt.date) -> dict[str, float]:
        """Close of the latest bar closed by the ledger's clock (``as_of``, a date, is the daily signature's)."""
        clock = self.clock_ts
        if not symbols or clock is None:
            return {}
        bars = self._bars(symbols, clock, clock)  # the last week's closed bars
        last = bars.sort_values("ts").groupby("symbol").tail(1)
        return {str(r.symbol): float(r.close) for r in last.itertuples(index=False)}

    def _next_bars(self, open_orders: list[sqlite3.Row], as_of: dt.date) -> pd.DataFrame:
        """Per open order the first bar opening at or after its decision instant and closed by ``as_of``."""
        cols = ["cid", "date", "open", "close", "open_at", "close_at"]
        orders = pd.DataFrame({"cid": [r["client_order_id"] for r in open_orders],
                               "symbol": [r["symbol"] for r in open_orders],
                               "decided": [utc(r["submitted_at"]) for r in open_orders]})  # fmt: skip
        bars = self._bars(list(orders["symbol"]), utc(as_of), orders["decided"].min())
        if bars.empty:
            return pd.DataFrame(columns=cols)
        bars = bars.assign(open_at=pd.to_datetime(bars["ts"], utc=True), close_at=pd.to_datetime(bars["close_ts"], utc=True))
        both = orders.merge(bars, on="symbol")
        both = both[both["open_at"] >= both["decided"]].sort_values(["cid", "open_at"])
        return both.groupby("cid", sort=False).head(1)[cols]

    def sync(self, as_of: dt.date) -> None:
        """Fill what the bars closed by ``as_of`` (an instant) allow; the clock moves to ``as_of``."""
        when = utc(as_of)
        open_rows = self.db.execute(
            f"SELECT * FROM orders WHERE status IN ({', '.join('?' for _ in OPEN_STATUSES)})", tuple(OPEN_STATUSES)
        ).fetchall()
        if open_rows:
            self._fill_at_bars(open_rows, self._next_bars(open_rows, when.to_pydatetime()))
        clock = self.clock_ts
        if clock is None or when > clock:
            with self._tx() as db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('clock_ts', ?)", (when.isoformat(),))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('clock', ?)", (when.date().isoformat(),))


@dataclass
class IntervalTradeResult:
    bar_close: pd.Timestamp  # the decision bar's close instant (UTC)
    signals: dict[str, float]
    orders: list[dict[str, Any]]
    equity: float
    cash: float
    positions: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for o in self.orders:
            counts[o["status"]] = counts.get(o["status"], 0) + 1
        return {"bar_close": self.bar_close.isoformat(), "orders": counts, "equity": round(self.equity, 2),
                "cash": round(self.cash, 2), "positions": self.positions, "signals": self.signals}  # fmt: skip


def ema_cross_signals(bars: pd.DataFrame, fast: int, slow: int) -> pd.DataFrame:
    """Per closed bar (``symbol``, ``date`` = close instant): 1.0 while EMA(fast) > EMA(slow), else 0.0 (also
    before ``slow`` bars exist).  EMAs from the one implementation (the numba kernels, SMA-seeded)."""
    from execution.indicators import add_indicators

    ind = add_indicators(bars[["symbol", "date", "close", "volume"]], [fast, slow], macd_periods=(fast, slow, 2))
    up = (ind[f"ema_{fast}"] > ind[f"ema_{slow}"]).fillna(False)
    return ind[["symbol", "date", "close"]].assign(signal=up.astype(float))


def run_interval_trade(cfg: IntervalTradeConfig, lake: Lake | None = None, as_of: Any = None,
                       broker: IntervalPaperBroker | None = None, ledger_dir: Path | None = None) -> IntervalTradeResult:  # fmt: skip
    """One interval run at ``as_of`` (default ``cfg.as_of``, else now): fills, then the decision on the
    latest closed bar, orders sent to the interval paper ledger and recorded in ``exec_orders``."""
    from execution import audit
    from execution.account_state import account_lock
    from execution.orders import plan_orders, target_quantities
    from features.bars import resample

    lake = lake or Lake()
    when = utc(as_of if as_of is not None else (cfg.as_of or pd.Timestamp.now(tz="UTC")))
    own = broker is None
    book = broker or IntervalPaperBroker(lake, cfg.interval, ledger_dir, cfg.account, cfg.costs, cfg.initial_cash)
    try:
        with account_lock("paper", cfg.account):
            book.sync(when.to_pydatetime())
            refresh_audit(lake, book, cfg.account)
            since = when - parse_interval(cfg.interval) * cfg.history_bars
            bars = resample(lake, cfg.symbols, cfg.interval, start=(since - pd.Timedelta(days=7)).date(), as_of=when)
            if bars.empty:
                raise InvalidDateError(f"no {cfg.interval} bars of {', '.join(cfg.symbols)} closed by {when.isoformat()}")
            bars = bars.assign(date=pd.to_datetime(bars["close_ts"], utc=True))
            sig = ema_cross_signals(bars[bars["date"] > since], cfg.fast, cfg.slow)
            bar_close = pd.Timestamp(sig["date"].max())
            now = sig[sig["date"] == bar_close].set_index("symbol")  # symbols whose latest bar closed then
            state = book.account()
            held = book.positions()
            current = dict(held)
            for o in book.open_orders():
                current[o.symbol] = current.get(o.symbol, 0.0) + (o.qty - o.filled_qty) * (1 if o.side == "buy" else -1)
            targets = target_quantities(now["signal"], now["close"], state.equity, cfg.max_position_fraction,
                                        lot_size=cfg.lot_size)  # fmt: skip
            decided = bar_close.to_pydatetime()
            planned = plan_orders(decided, cfg.strategy, targets.to_dict(), current, now["close"].to_dict(),
                                  cfg.band, cfg.account)  # fmt: skip
            rows: list[dict[str, Any]] = []
            for po in planned:
                request = OrderRequest(po.client_order_id, po.symbol, po.side, po.qty, decided.date(), po.ref_price,
                                       decided_at=decided)  # fmt: skip
                row = audit.order_row(po.with_(trade_date=decided.date()), "paper", cfg.account)
                try:
                    rows.append(audit.with_broker_state(row, book.submit(request)))
                except DuplicateOrderError:  # a re-run for the same bar: sent before, never twice
                    continue
            if rows:
                audit.record_orders(lake, rows, note=f"execution: interval {cfg.interval} {cfg.strategy} {bar_close.isoformat()}")
            after = book.account()
            return IntervalTradeResult(bar_close, now["signal"].to_dict(), rows, after.equity, after.cash, book.positions())
    finally:
        if own:
            book.close()


def refresh_audit(lake: Lake, book: IntervalPaperBroker, account: str) -> None:
    """Audited orders the ledger may still act on, updated with its view (status, fills) in one commit, and
    their fills written to ``exec_fills`` — as the daily trader does at the start of a run."""
    from execution import audit

    updates, fills = [], []
    for row in audit.orders(lake, "paper", account, open_only=True).to_dict("records"):
        state = book.get_order(row["client_order_id"])
        if state is None:
            continue
        got = book.fills(row["client_order_id"]) if state.filled_qty > 0 else []
        fills += got
        new = audit.with_broker_state(row, state, got)
        if audit.changed(new, row):
            updates.append(new)
    audit.record_fills(lake, "paper", account, fills)
    if updates:
        audit.record_orders(lake, updates, note=f"execution: interval fills {account}")


def load_interval_config(data: dict[str, Any]) -> IntervalTradeConfig:
    from pydantic import ValidationError

    try:
        return IntervalTradeConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "config"
        raise UserInputError(f"interval trade config: {where}: {err.get('msg')}") from None


__all__ = ["IntervalPaperBroker", "IntervalTradeConfig", "IntervalTradeResult", "ema_cross_signals",
           "load_interval_config", "run_interval_trade", "utc"]  # fmt: skip
