"""The paper broker: a persistent local ledger (SQLite under ``$QUANTLAKE_HOME/paper``) that fills market
orders at the **next bar's open** after the date they were decided, with the configured costs.

* Fill price = open × (1 + slippage) for buys, × (1 - slippage) for sells; a close-only series (no open)
  fills at that bar's close.  Commission = :meth:`CostModel.commission`.
* Cash = initial cash + sells - buys - commissions; positions = signed sum of fills; equity = cash +
  positions marked at the latest close on or before the ledger's clock (the last synced date).
* At submission a buy that would exceed the buying power (cash minus open buys at their reference price)
  and, unless shorting is allowed, a sell of more shares than held (minus open sells) are **rejected**.
* Client order ids are the ledger's primary key, so the same order can never be booked twice; every
  change is one SQLite transaction (a process killed mid-way leaves the ledger consistent).
* Option orders (single legs and multi-leg packages) fill with the option backtester's fill model from the
  lake's chain and expiries settle by its rule: :mod:`execution.brokers.paper_options`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from execution.brokers.base import (
    ACCEPTED,
    CANCELLED,
    FILLED,
    NEW,
    OPEN_STATUSES,
    REJECTED,
    AccountState,
    BrokerFill,
    BrokerOrder,
    OrderRequest,
)
from execution.brokers.paper_options import OptionRules, PaperOptions, ensure_schema, fill_of
from execution.errors import DuplicateOrderError
from execution.option_orders import MULTIPLIER, parse_occ
from execution.settings import CostModel
from quantlake.config import paths
from quantlake.errors import BrokerError
from quantlake.lake import Lake

NEW_YORK = ZoneInfo("America/New_York")
EPS = 1e-9
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY, broker_order_id TEXT NOT NULL UNIQUE, symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')), qty REAL NOT NULL CHECK (qty > 0),
    ref_price REAL NOT NULL, trade_date TEXT NOT NULL, submitted_at TEXT NOT NULL, status TEXT NOT NULL,
    filled_qty REAL NOT NULL DEFAULT 0, filled_avg_price REAL, commission REAL NOT NULL DEFAULT 0,
    reason TEXT, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    qty REAL NOT NULL, price REAL NOT NULL, commission REAL NOT NULL, fill_date TEXT NOT NULL,
    filled_at TEXT NOT NULL
);
"""


def close_of(day: dt.date) -> dt.datetime:
    """16:00 New York on ``day``, in UTC (when the paper broker decides and submits)."""
    return dt.datetime.combine(day, dt.time(16, 0), tzinfo=NEW_YORK).astimezone(dt.UTC)


def open_of(day: dt.date) -> dt.datetime:
    """09:30 New York on ``day``, in UTC (when the paper broker fills)."""
    return dt.datetime.combine(day, dt.time(9, 30), tzinfo=NEW_YORK).astimezone(dt.UTC)


class PaperBroker:
    name = "paper"
    syncs = True  # sync() fills orders from the lake: the paper broker's own work

    def __init__(
        self,
        lake: Lake,
        ledger_dir: Path | None = None,
        account: str = "default",
        costs: CostModel | None = None,
        initial_cash: float = 100_000.0,
        allow_short: bool = False,
        option_rules: dict[str, OptionRules] | None = None,
        chains: Any | None = None,
    ) -> None:
        self.lake = lake
        self.account_name = account
        self.costs = costs or CostModel()
        self.allow_short = allow_short
        directory = ledger_dir or paths().paper
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{account}.sqlite"
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        ensure_schema(self._db)
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('initial_cash', ?)", (repr(float(initial_cash)),))
        self.options = PaperOptions(lake, lambda: self.db, self._tx, self.cash, lambda: self.clock,
                                    dict(option_rules or {}), chains)  # fmt: skip

    # ------------------------------------------------------------------ plumbing
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise BrokerError(f"paper ledger {self.path} is closed")
        return self._db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    @property
    def initial_cash(self) -> float:
        return float(self._meta("initial_cash") or 0.0)

    @property
    def clock(self) -> dt.date | None:
        value = self._meta("clock")
        return dt.date.fromisoformat(value) if value else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ------------------------------------------------------------------ market data
    def _marks(self, symbols: list[str], as_of: dt.date) -> dict[str, float]:
        """Latest close on or before ``as_of`` for each symbol."""
        if not symbols:
            return {}
        marks = self.lake.query(
            "SELECT symbol, close FROM equity_bars WHERE close IS NOT NULL AND date <= ? AND symbol IN "
            f"({', '.join('?' for _ in symbols)}) QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY date DESC) = 1",
            [as_of, *symbols],
        )
        return {str(r.symbol): float(r.close) for r in marks.itertuples(index=False)}

    def _next_bars(self, open_orders: list[sqlite3.Row], as_of: dt.date) -> pd.DataFrame:
        """The first bar after each order's trade date, up to ``as_of`` (cid, date, open, close, open_at,
        close_at: the instants a fill at the bar's open or close is stamped with)."""
        frame = pd.DataFrame(
            {
                "cid": [r["client_order_id"] for r in open_orders],
                "symbol": [r["symbol"] for r in open_orders],
                "trade_date": [dt.date.fromisoformat(r["trade_date"]) for r in open_orders],
            }
        )
        con = self.lake.connect()
        try:
            con.register("o", frame)
            bars = con.execute(
                "SELECT o.cid, b.date, b.open, b.close FROM o JOIN equity_bars b "
                "ON b.symbol = o.symbol AND b.date > o.trade_date AND b.date <= ? AND b.close IS NOT NULL "
                "QUALIFY row_number() OVER (PARTITION BY o.cid ORDER BY b.date) = 1",
                [as_of],
            ).df()
        finally:
            con.close()
        days = [pd.Timestamp(d).date() for d in bars["date"]]
        return bars.assign(open_at=[open_of(d) for d in days], close_at=[close_of(d) for d in days])

    # ------------------------------------------------------------------ protocol
    def now(self) -> dt.datetime:
        clock = self.clock
        return close_of(clock) if clock else dt.datetime.now(dt.UTC)

    def sync(self, as_of: dt.date) -> None:
        """Fill every open order whose next bar (after its trade date) is on or before ``as_of``."""
        open_rows = self.db.execute(
            f"SELECT * FROM orders WHERE status IN ({', '.join('?' for _ in OPEN_STATUSES)})", tuple(OPEN_STATUSES)
        ).fetchall()
        self._fill_at_bars(open_rows, self._next_bars(open_rows, as_of) if open_rows else pd.DataFrame())
        last = self.clock
        self.options.sync(as_of, last)
        with self._tx() as db:
            clock = self.clock
            if clock is None or as_of > clock:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('clock', ?)", (as_of.isoformat(),))

    def _fill_at_bars(self, open_rows: list[sqlite3.Row], bars: pd.DataFrame) -> None:
        """Fill each open order at its bar of ``bars`` (:meth:`_next_bars`): the open ± slippage (a close-only
        bar: its close), the whole remaining quantity, commission by the cost model; one transaction."""
        by_cid = {r["client_order_id"]: r for r in open_rows}
        with self._tx() as db:
            for bar in bars.itertuples(index=False):
                order = by_cid[bar.cid]
                has_open = pd.notna(bar.open)
                reference = float(bar.open) if has_open else float(bar.close)
                price = self.costs.fill_price(reference, order["side"])
                qty = float(order["qty"]) - float(order["filled_qty"])
                commission = self.costs.commission(qty, price)
                day = pd.Timestamp(bar.date).date()
                filled_at = pd.Timestamp(bar.open_at if has_open else bar.close_at).isoformat()
                db.execute(
                    "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, fill_date, "
                    "filled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"{order['broker_order_id']}-1", bar.cid, order["symbol"], order["side"], qty, price,
                     commission, day.isoformat(), filled_at),
                )
                db.execute(
                    "UPDATE orders SET status = ?, filled_qty = qty, filled_avg_price = ?, commission = ?, "
                    "updated_at = ? WHERE client_order_id = ?",
                    (FILLED, price, commission, filled_at, bar.cid),
                )

    def positions(self) -> dict[str, float]:
        """Signed shares per symbol and signed contracts per OCC option symbol."""
        rows = self.db.execute(
            "SELECT symbol, sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) AS q FROM fills GROUP BY symbol"
        ).fetchall()
        return {str(r["symbol"]): float(r["q"]) for r in rows if abs(float(r["q"])) > EPS}

    def cash(self) -> float:
        row = self.db.execute(
            "SELECT coalesce(sum(CASE side WHEN 'sell' THEN qty * price * multiplier ELSE -qty * price * multiplier "
            "END), 0) AS flow, coalesce(sum(commission), 0) AS fees FROM fills"
        ).fetchone()
        return self.initial_cash + float(row["flow"]) - float(row["fees"])

    def _open_commitments(self) -> tuple[float, dict[str, float]]:
        """(cash reserved by open buys at their reference price incl. costs, shares reserved by open sells)."""
        reserved, selling = 0.0, dict[str, float]()
        for o in self.open_orders():
            rest = o.qty - o.filled_qty
            row = self.db.execute(
                "SELECT ref_price FROM orders WHERE client_order_id = ?", (o.client_order_id,)
            ).fetchone()
            if o.side == "buy":
                price = self.costs.fill_price(float(row["ref_price"]), "buy")
                reserved += rest * price + self.costs.commission(rest, price)
            else:
                selling[o.symbol] = selling.get(o.symbol, 0.0) + rest
        return reserved, selling

    def account(self) -> AccountState:
        cash = self.cash()
        pos = self.positions()
        day = self.clock or dt.date.today()
        options = sorted(s for s in pos if parse_occ(s) is not None)
        marks = {**self._marks(sorted(set(pos) - set(options)), day), **self.options.marks(options, day)}
        missing = sorted(set(pos) - set(marks))
        if missing:
            raise BrokerError(f"paper ledger: no price on or before {day} for {', '.join(missing)}")
        equity = cash + sum(q * marks[s] * (MULTIPLIER if s in options else 1.0) for s, q in pos.items())
        reserved, _ = self._open_commitments()
        return AccountState(equity=equity, cash=cash, buying_power=cash - reserved)

    def submit(self, order: OrderRequest) -> BrokerOrder:
        if self.get_order(order.client_order_id) is not None:
            raise DuplicateOrderError(f"paper ledger already has order {order.client_order_id}")
        now = (order.decided_at or close_of(order.trade_date)).isoformat()
        broker_id = f"paper-{uuid.uuid4().hex[:16]}"
        if order.is_option:
            self.options.submit(order, broker_id, now, None)
            found_option = self.options.get(order.client_order_id)
            assert found_option is not None
            return found_option
        reason = self._refuse(order)
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO orders (client_order_id, broker_order_id, symbol, side, qty, ref_price, "
                    "trade_date, submitted_at, status, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (order.client_order_id, broker_id, order.symbol, order.side, float(order.qty),
                     float(order.ref_price), order.trade_date.isoformat(), now,
                     REJECTED if reason else ACCEPTED, reason, now),
                )
        except sqlite3.IntegrityError as exc:
            if "client_order_id" in str(exc):
                raise DuplicateOrderError(f"paper ledger already has order {order.client_order_id}") from None
            raise BrokerError(f"paper ledger refused order {order.client_order_id}: {exc}") from None
        found = self.get_order(order.client_order_id)
        assert found is not None
        return found

    def _refuse(self, order: OrderRequest) -> str | None:
        """Why the ledger refuses ``order`` (None = accepted)."""
        if order.qty <= 0:
            return f"quantity must be positive, got {order.qty}"
        if not self._marks([order.symbol], order.trade_date):
            return f"no price for {order.symbol} on or before {order.trade_date}"
        reserved, selling = self._open_commitments()
        if order.side == "buy":
            price = self.costs.fill_price(order.ref_price, "buy")
            need = order.qty * price + self.costs.commission(order.qty, price)
            available = self.cash() - reserved
            if need > available + EPS:
                return f"insufficient buying power: needs {need:,.2f}, available {available:,.2f}"
        elif not self.allow_short:
            held = self.positions().get(order.symbol, 0.0) - selling.get(order.symbol, 0.0)
            if order.qty > held + EPS:
                return f"insufficient position: selling {order.qty:g} {order.symbol}, {held:g} available"
        return None

    def _order(self, row: sqlite3.Row) -> BrokerOrder:
        return BrokerOrder(
            client_order_id=row["client_order_id"],
            broker_order_id=row["broker_order_id"],
            symbol=row["symbol"],
            side=row["side"],
            qty=float(row["qty"]),
            status=row["status"],
            filled_qty=float(row["filled_qty"]),
            filled_avg_price=row["filled_avg_price"],
            commission=float(row["commission"]),
            submitted_at=dt.datetime.fromisoformat(row["submitted_at"]),
            reason=row["reason"],
        )

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        row = self.db.execute("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)).fetchone()
        return self._order(row) if row is not None else self.options.get(client_order_id)

    def open_orders(self) -> list[BrokerOrder]:
        rows = self.db.execute(
            f"SELECT * FROM orders WHERE status IN ({', '.join('?' for _ in OPEN_STATUSES)}) ORDER BY submitted_at",
            tuple(OPEN_STATUSES),
        ).fetchall()
        return [self._order(r) for r in rows] + self.options.open_orders()

    def orders(self) -> list[BrokerOrder]:
        return [self._order(r) for r in self.db.execute("SELECT * FROM orders ORDER BY submitted_at").fetchall()]

    def cancel(self, client_order_id: str) -> BrokerOrder:
        self.options.cancel(client_order_id, self.now().isoformat())
        with self._tx() as db:
            db.execute(
                f"UPDATE orders SET status = ?, updated_at = ? WHERE client_order_id = ? AND status IN "
                f"({', '.join('?' for _ in OPEN_STATUSES)})",
                (CANCELLED, self.now().isoformat(), client_order_id, *OPEN_STATUSES),
            )
        found = self.get_order(client_order_id)
        if found is None:
            raise BrokerError(f"paper ledger has no order {client_order_id}")
        return found

    def replace(self, client_order_id: str, new_client_order_id: str, limit_price: float) -> BrokerOrder:
        """An open option limit order replaced by a copy with a new net limit and client id (the old one is
        cancelled); the paper broker fills at the next bar, so a replace only matters before its sync."""
        self.options.replace(client_order_id, new_client_order_id, limit_price, self.now().isoformat(),
                             f"paper-{uuid.uuid4().hex[:16]}")  # fmt: skip
        found = self.get_order(new_client_order_id)
        if found is None:
            raise BrokerError(f"paper ledger has no open option order {client_order_id} to replace")
        return found

    def fills(self, client_order_id: str) -> list[BrokerFill]:
        rows = self.db.execute(
            "SELECT * FROM fills WHERE client_order_id = ? ORDER BY fill_id", (client_order_id,)
        ).fetchall()
        return [fill_of(r) for r in rows]

    def events(self, since: dt.date | None = None) -> list[BrokerFill]:
        """Option expiry events (cash settlement, exercise, assignment, worthless expiry) after ``since``."""
        return self.options.events(since)

    def describe(self) -> dict[str, Any]:
        return {"ledger": str(self.path), "initial_cash": self.initial_cash, "clock": str(self.clock)}


__all__ = ["NEW", "PaperBroker", "close_of", "open_of"]
