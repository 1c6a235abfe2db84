"""Option orders on the paper broker: multi-leg packages filled with **the option backtester's fill model**
(:func:`backtests.options.fills.package_prices` and :func:`~backtests.options.fills.option_commission` on
the quotes of :class:`backtests.options.quotes.ChainSnapshot`), from the lake's chain of the fill date
(observed quotes, else the modeled chain: ``features.chains.ChainProvider``), the source recorded per fill;
expiries settled with the backtester's rule (:func:`backtests.options.engine.settle`: cash settlement,
exercise and assignment into shares, or expiry worthless), each one an event in the fills.

* An order decided at the close of day t is tried at each later trading day's quotes: market and mid orders
  fill on the first; a limit order when the package's reference price reaches its net limit (at the limit,
  or better when the market gapped through it).  ``day`` orders expire after their first session, ``gtc``
  limits stay working until filled or cancelled.
* Opening orders are refused when their maximum loss (:func:`risk.book.max_loss`, at the quotes of the
  decision day) plus commission exceeds the cash not already committed (open orders' maximum loss and the
  held option packages' worst expiry loss): a cash-secured rule.  Closing orders are refused when the
  account does not hold the contracts.
* Options are marked at the chain's mid (:meth:`PaperOptions.marks`); cash moves by contracts × 100 × price.

Rules per underlying come from the strategy's config (:class:`OptionRules`): fill mode and slippage,
commissions, chain mode, settlement style and price — the same objects the backtest reads.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from execution.brokers.base import (
    ACCEPTED,
    CANCELLED,
    EXPIRED,
    FILLED,
    OPEN_STATUSES,
    REJECTED,
    BrokerFill,
    BrokerOrder,
    OrderRequest,
)
from execution.option_orders import MULTIPLIER, OptionLeg, parse_occ
from quantlake.errors import BrokerError

if TYPE_CHECKING:
    from backtests.options.config import RateConfig
    from backtests.options.engine import EngineSettings
    from backtests.options.quotes import ChainSnapshot, ChainSource, LegQuotes
    from quantlake.lake import Lake

OPTION_SCHEMA = """
CREATE TABLE IF NOT EXISTS option_orders (
    client_order_id TEXT PRIMARY KEY, broker_order_id TEXT NOT NULL UNIQUE, underlying TEXT NOT NULL,
    side TEXT NOT NULL, legs TEXT NOT NULL, units REAL NOT NULL CHECK (units > 0), order_type TEXT NOT NULL,
    limit_price REAL, tif TEXT NOT NULL, intent TEXT NOT NULL, ref_price REAL NOT NULL, trade_date TEXT NOT NULL,
    submitted_at TEXT NOT NULL, status TEXT NOT NULL, filled_units REAL NOT NULL DEFAULT 0, net_price REAL,
    commission REAL NOT NULL DEFAULT 0, reason TEXT, updated_at TEXT NOT NULL
);
"""
IV_LOOKBACK_DAYS = 60
FILL_COLUMNS = {"multiplier": "REAL NOT NULL DEFAULT 1", "kind": "TEXT NOT NULL DEFAULT 'trade'", "source": "TEXT"}


@dataclass(frozen=True)
class OptionRules:
    """How the paper broker trades options of one underlying: the backtest's engine settings (fill,
    commissions, chain mode, settlement) and rate config (Black-Scholes fallback for a contract missing
    from the chain), so a paper fill is the fill the backtest would get."""

    settings: EngineSettings
    rate: RateConfig | None = None
    horizon_days: int | None = None


def ensure_schema(db: sqlite3.Connection) -> None:
    db.executescript(OPTION_SCHEMA)
    have = {r[1] for r in db.execute("PRAGMA table_info(fills)").fetchall()}
    for name, decl in FILL_COLUMNS.items():
        if name not in have:  # ledgers written before option support
            db.execute(f"ALTER TABLE fills ADD COLUMN {name} {decl}")


def _legs_json(legs: tuple[OptionLeg, ...]) -> str:
    return json.dumps([{"underlying": g.underlying, "expiry": g.expiry.isoformat(), "strike": g.strike,
                        "right": g.right, "ratio": g.ratio, "root": g.root} for g in legs])  # fmt: skip


def legs_from_json(text: str) -> tuple[OptionLeg, ...]:
    return tuple(OptionLeg(d["underlying"], dt.date.fromisoformat(d["expiry"]), float(d["strike"]), d["right"],
                           int(d["ratio"]), d.get("root")) for d in json.loads(text))  # fmt: skip


@dataclass
class PaperOptions:
    """The option half of :class:`execution.brokers.paper.PaperBroker` (same SQLite ledger and transactions)."""

    lake: Lake
    db: Callable[[], sqlite3.Connection]
    tx: Callable[[], Any]
    cash: Callable[[], float]
    clock: Callable[[], dt.date | None]
    rules: Mapping[str, OptionRules]
    chains: ChainSource | None = None
    _snaps: dict[tuple[str, dt.date], ChainSnapshot | None] = field(default_factory=dict)
    _bars: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ market
    def rule(self, underlying: str) -> OptionRules:
        if underlying in self.rules:
            return self.rules[underlying]
        from backtests.options.engine import EngineSettings

        return OptionRules(EngineSettings(underlying=underlying, settlement="cash" if underlying.startswith("^")
                                          else "physical"))  # fmt: skip

    def _source(self) -> ChainSource:
        if self.chains is None:
            from backtests.options.runner import default_chain_source

            horizon = max((r.horizon_days or 0 for r in self.rules.values()), default=0) or None
            self.chains = default_chain_source(self.lake, horizon)
        return self.chains

    def bars(self, underlying: str) -> Any:
        """The underlying's daily bars (date-indexed: open, close, rate) from the lake."""
        if underlying not in self._bars:
            import pandas as pd

            from backtests.options.market import rate_series

            df = self.lake.read("equity_bars", columns=["date", "open", "close"], where="symbol = ? AND close IS NOT NULL",
                                params=[underlying])  # fmt: skip
            df["date"] = pd.to_datetime(df["date"])
            df = df.sort_values("date").drop_duplicates("date").set_index("date")
            df["open"] = df["open"].fillna(df["close"])
            rule = self.rule(underlying)
            if rule.rate is not None:
                df["rate"] = rate_series(self.lake, rule.rate, pd.DatetimeIndex(df.index)).to_numpy()
            else:
                df["rate"] = 0.0
            self._bars[underlying] = df
        return self._bars[underlying]

    def snapshot(self, underlying: str, day: dt.date) -> ChainSnapshot | None:
        key = (underlying, day)
        if key not in self._snaps:
            import pandas as pd

            from backtests.options.quotes import ChainSnapshot, Market

            bars = self.bars(underlying)
            ts = pd.Timestamp(day)
            if ts not in bars.index:
                self._snaps[key] = None
            else:
                rule = self.rule(underlying)
                market = Market(day, float(bars.at[ts, "close"]), float(bars.at[ts, "rate"]),
                                rule.settings.dividend_yield)  # fmt: skip
                frame = self._source().chain(underlying, day, rule.settings.chain_source)
                if frame is None or len(frame) == 0:
                    import pandas as pd

                    frame = pd.DataFrame(columns=["expiry", "strike", "right", "bid", "ask"])
                self._snaps[key] = ChainSnapshot(frame, market, underlying)
        return self._snaps[key]

    def quotes(self, underlying: str, day: dt.date, legs: tuple[OptionLeg, ...], held: bool = False) -> LegQuotes:
        """Quotes of the legs on ``day``.  A contract the day's chain lacks is priced as the backtester prices
        it: Black-Scholes at the implied vol of the chain's nearest strike, or — a ``held`` contract (marks,
        closing orders) — at its own implied vol of the last day the chain quoted it (looked up to
        :data:`IV_LOOKBACK_DAYS` sessions back)."""
        snap = self.snapshot(underlying, day)
        if snap is None:
            raise BrokerError(f"paper broker: no bar of {underlying} on {day} to quote its options")
        contracts = [leg.contract() for leg in legs]
        q = snap.quotes(contracts)
        if not held or not q.fallback.any():
            return q
        return snap.quotes(contracts, self._last_ivs(underlying, day, contracts, q))

    def _last_ivs(self, underlying: str, day: dt.date, contracts: list[Any], q: LegQuotes) -> list[float]:
        import pandas as pd

        ivs = [float("nan") if q.fallback[i] else float(q.iv[i]) for i in range(len(contracts))]
        idx = self.bars(underlying).index
        earlier = list(idx[idx < pd.Timestamp(day)])[-IV_LOOKBACK_DAYS:]
        for ts in reversed(earlier):
            missing = [i for i, v in enumerate(ivs) if v != v]
            if not missing:
                break
            snap = self.snapshot(underlying, ts.date())
            if snap is None:
                continue
            back = snap.quotes([contracts[i] for i in missing])
            for j, i in enumerate(missing):
                if not back.fallback[j]:
                    ivs[i] = float(back.iv[j])
        return ivs

    def marks(self, contracts: list[str], day: dt.date) -> dict[str, float]:
        """Mid price per OCC symbol at the latest bar on or before ``day`` of each underlying."""
        import pandas as pd

        out: dict[str, float] = {}
        by_underlying: dict[str, list[tuple[str, OptionLeg]]] = {}
        for sym in contracts:
            leg = parse_occ(sym)
            if leg is not None:
                by_underlying.setdefault(leg.underlying, []).append((sym, leg))
        for und, items in by_underlying.items():
            bars = self.bars(und)
            dates = bars.index[bars.index <= pd.Timestamp(day)]
            if not len(dates):
                continue
            q = self.quotes(und, dates[-1].date(), tuple(leg for _, leg in items), held=True)
            out.update({sym: float(q.mid[i]) for i, (sym, _) in enumerate(items)})
        return out

    # ------------------------------------------------------------------ orders
    def submit(self, order: OrderRequest, broker_id: str, submitted_at: str, refuse: str | None) -> None:
        reason = refuse or self._refuse(order)
        with self.tx() as db:
            db.execute(
                "INSERT INTO option_orders (client_order_id, broker_order_id, underlying, side, legs, units, "
                "order_type, limit_price, tif, intent, ref_price, trade_date, submitted_at, status, reason, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (order.client_order_id, broker_id, order.symbol, order.side, _legs_json(order.legs), float(order.qty),
                 order.order_type, order.limit_price, order.time_in_force, order.intent, float(order.ref_price),
                 order.trade_date.isoformat(), submitted_at, REJECTED if reason else ACCEPTED, reason, submitted_at),
            )  # fmt: skip

    def _held(self) -> dict[str, float]:
        rows = self.db().execute(
            "SELECT symbol, sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) AS q FROM fills WHERE multiplier > 1 "
            "GROUP BY symbol"
        ).fetchall()
        return {str(r["symbol"]): float(r["q"]) for r in rows if abs(float(r["q"])) > 1e-9}

    def _refuse(self, order: OrderRequest) -> str | None:
        if order.qty <= 0 or order.qty != int(order.qty):
            return f"option orders need a positive whole number of units, got {order.qty}"
        if order.order_type == "limit" and order.limit_price is None:
            return "a limit order needs a limit price"
        if order.intent == "close":
            held = self._held()
            for leg in order.legs:
                have = held.get(leg.occ, 0.0)
                if have * leg.ratio >= 0 or abs(have) + 1e-9 < abs(leg.ratio) * order.qty:
                    return f"insufficient position: closing {leg.ratio * order.qty:+g} {leg.occ}, holding {have:+g}"
            return None
        need = self.max_loss(order.symbol, order.trade_date, order.legs, order.qty)
        available = self.cash() - self.committed()
        if need > available + 1e-6:
            return f"insufficient buying power: the package can lose {need:,.2f}, available {available:,.2f}"
        return None

    def max_loss(self, underlying: str, day: dt.date, legs: tuple[OptionLeg, ...], units: float) -> float:
        """Worst expiry loss of ``units`` packages bought at the day's mid (:func:`risk.book.max_loss`) plus
        the commission the fill model charges."""
        from backtests.options.fills import option_commission
        from risk.book import Order, max_loss

        q = self.quotes(underlying, day, legs)
        spot = float(self.snapshot(underlying, day).market.spot)  # type: ignore[union-attr]
        book = [Order(symbol=_risk_symbol(underlying), price=max(float(q.mid[i]), 0.0), qty=abs(leg.ratio) * units,
                      side=leg.side, right=leg.right, strike=leg.strike, expiry=leg.expiry, underlying_price=spot)
                for i, leg in enumerate(legs)]  # fmt: skip
        fees = option_commission(float(sum(abs(g.ratio) for g in legs) * units), self.rule(underlying).settings.commissions)
        return float(max_loss(book)) + fees

    def committed(self) -> float:
        """Cash the account cannot spend: open opening orders' maximum loss plus the worst expiry loss of the
        option positions held (each underlying's contracts together, so spreads net)."""
        total = 0.0
        for r in self.db().execute(
            f"SELECT * FROM option_orders WHERE intent = 'open' AND status IN ({', '.join('?' for _ in OPEN_STATUSES)})",
            tuple(OPEN_STATUSES),
        ).fetchall():
            total += self.max_loss(r["underlying"], dt.date.fromisoformat(r["trade_date"]), legs_from_json(r["legs"]),
                                   float(r["units"]) - float(r["filled_units"]))  # fmt: skip
        held = self._held()
        if held:
            from risk.book import Position, book_max_loss

            day = self.clock() or dt.date.today()
            marks = self.marks(sorted(held), day)
            book = []
            for sym, qty in held.items():
                leg = parse_occ(sym)
                if leg is None or sym not in marks:
                    continue
                spot = float(self.bars(leg.underlying)["close"].iloc[-1])
                book.append(Position(symbol=_risk_symbol(leg.underlying), price=max(marks[sym], 0.0), qty=qty,
                                     right=leg.right, strike=leg.strike, expiry=leg.expiry, underlying_price=spot))  # fmt: skip
            total += float(book_max_loss(book)) if book else 0.0
        return total

    # ------------------------------------------------------------------ sync: fills and expiries
    def sync(self, as_of: dt.date, last: dt.date | None) -> None:
        """Fill working option orders and settle expiring contracts day by day up to ``as_of``."""
        open_rows = self.db().execute(
            f"SELECT * FROM option_orders WHERE status IN ({', '.join('?' for _ in OPEN_STATUSES)}) ORDER BY submitted_at",
            tuple(OPEN_STATUSES),
        ).fetchall()
        held = self._held()
        underlyings = {r["underlying"] for r in open_rows}
        underlyings |= {leg.underlying for leg in (parse_occ(s) for s in held) if leg is not None}
        first = min([dt.date.fromisoformat(r["trade_date"]) for r in open_rows] + ([last] if last else []),
                    default=as_of)  # fmt: skip
        for und in sorted(underlyings):
            for day in self._days(und, first, as_of):
                self._fill_day(und, day)
                self._settle_day(und, day, last)

    def _days(self, underlying: str, after: dt.date, until: dt.date) -> Iterator[dt.date]:
        import pandas as pd

        idx = self.bars(underlying).index
        for ts in idx[(idx > pd.Timestamp(after)) & (idx <= pd.Timestamp(until))]:
            yield ts.date()

    def _fill_day(self, underlying: str, day: dt.date) -> None:
        from backtests.options.fills import option_commission, package_prices
        from execution.brokers.paper import open_of

        rows = self.db().execute(
            f"SELECT * FROM option_orders WHERE underlying = ? AND trade_date < ? AND status IN "
            f"({', '.join('?' for _ in OPEN_STATUSES)}) ORDER BY submitted_at",
            (underlying, day.isoformat(), *OPEN_STATUSES),
        ).fetchall()
        rule = self.rule(underlying).settings
        for r in rows:
            legs = legs_from_json(r["legs"])
            units = float(r["units"]) - float(r["filled_units"])
            expired = [g for g in legs if g.expiry < day]
            when = open_of(day).isoformat()
            if expired:
                self._finish(r, EXPIRED, f"contract {expired[0].occ} expired before the order could fill", when)
                continue
            q = self.quotes(underlying, day, legs, held=r["intent"] == "close")
            ratio = np.array([g.ratio for g in legs], dtype=float)
            limit = float(r["limit_price"]) if r["order_type"] == "limit" and r["limit_price"] is not None else None
            fill_cfg = rule.fill if limit is None or rule.fill.mode == "limit" else rule.fill.model_copy(update={"mode": "limit"})
            prices = package_prices(q.bid, q.ask, ratio, fill_cfg, limit, q.mid)
            if prices is None:
                if r["tif"] == "day":
                    self._finish(r, EXPIRED, f"limit {limit:g} not reached on {day} (day order)", when)
                continue
            contracts = np.abs(ratio) * units
            fees = option_commission(float(contracts.sum()), rule.commissions)
            with self.tx() as db:
                for i, leg in enumerate(legs):
                    db.execute(
                        "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, fill_date, "
                        "filled_at, multiplier, kind, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'trade', ?)",
                        (f"{r['broker_order_id']}-{i + 1}", r["client_order_id"], leg.occ, leg.side, float(contracts[i]),
                         float(prices[i]), fees * float(contracts[i]) / float(contracts.sum()), day.isoformat(), when,
                         MULTIPLIER, "modeled" if q.modeled[i] else "observed"),
                    )  # fmt: skip
                net = float(np.sum(ratio * prices))
                db.execute(
                    "UPDATE option_orders SET status = ?, filled_units = units, net_price = ?, commission = ?, "
                    "updated_at = ? WHERE client_order_id = ?",
                    (FILLED, net, fees, when, r["client_order_id"]),
                )

    def _finish(self, row: sqlite3.Row, status: str, reason: str, when: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE option_orders SET status = ?, reason = ?, updated_at = ? WHERE client_order_id = ?",
                       (status, reason, when, row["client_order_id"]))  # fmt: skip

    def _settle_day(self, underlying: str, day: dt.date, last: dt.date | None) -> None:
        """Settle the held contracts of ``underlying`` whose expiry settles on ``day`` (the last trading day
        on or before the expiry)."""
        import pandas as pd

        from backtests.options.contracts import settlement_dates
        from backtests.options.engine import settle
        from execution.brokers.paper import close_of

        if last is not None and day <= last:
            return  # settled by an earlier sync
        bars = self.bars(underlying)
        cal = bars.index.to_numpy(dtype="datetime64[D]")
        rule = self.rule(underlying).settings
        ts = pd.Timestamp(day)
        spot = float(bars.at[ts, "open"] if rule.settlement_price == "open" else bars.at[ts, "close"])
        for sym, qty in sorted(self._held().items()):
            leg = parse_occ(sym)
            if leg is None or leg.underlying != underlying:
                continue
            settles = settlement_dates([leg.expiry], cal)[0]
            if settles is None or settles != day:
                continue
            out = settle(leg.contract(), qty, spot, rule.settlement, rule.commissions.exercise_fee)
            when = close_of(day).isoformat()
            tag = uuid.uuid4().hex[:12]
            with self.tx() as db:
                db.execute(
                    "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, fill_date, "
                    "filled_at, multiplier, kind, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    (f"event-{tag}", f"expiry-{day:%Y%m%d}-{sym}", sym, "sell" if qty > 0 else "buy", abs(qty),
                     out.price, out.fee, day.isoformat(), when, MULTIPLIER, out.action),
                )  # fmt: skip
                if out.shares:
                    db.execute(
                        "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, fill_date, "
                        "filled_at, multiplier, kind, source) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, 1, ?, NULL)",
                        (f"event-{tag}-shares", f"expiry-{day:%Y%m%d}-{sym}", underlying,
                         "buy" if out.shares > 0 else "sell", abs(out.shares), spot, day.isoformat(), when, out.action),
                    )  # fmt: skip

    # ------------------------------------------------------------------ reading
    def order(self, row: sqlite3.Row) -> BrokerOrder:
        return BrokerOrder(
            client_order_id=row["client_order_id"], broker_order_id=row["broker_order_id"], symbol=row["underlying"],
            side=row["side"], qty=float(row["units"]), status=row["status"], filled_qty=float(row["filled_units"]),
            filled_avg_price=row["net_price"], commission=float(row["commission"]),
            submitted_at=dt.datetime.fromisoformat(row["submitted_at"]), reason=row["reason"],
            legs=legs_from_json(row["legs"]), limit_price=row["limit_price"],
        )  # fmt: skip

    def get(self, client_order_id: str) -> BrokerOrder | None:
        row = self.db().execute("SELECT * FROM option_orders WHERE client_order_id = ?", (client_order_id,)).fetchone()
        return None if row is None else self.order(row)

    def open_orders(self) -> list[BrokerOrder]:
        rows = self.db().execute(
            f"SELECT * FROM option_orders WHERE status IN ({', '.join('?' for _ in OPEN_STATUSES)}) ORDER BY submitted_at",
            tuple(OPEN_STATUSES),
        ).fetchall()
        return [self.order(r) for r in rows]

    def cancel(self, client_order_id: str, when: str) -> None:
        with self.tx() as db:
            db.execute(
                f"UPDATE option_orders SET status = ?, updated_at = ? WHERE client_order_id = ? AND status IN "
                f"({', '.join('?' for _ in OPEN_STATUSES)})",
                (CANCELLED, when, client_order_id, *OPEN_STATUSES),
            )

    def replace(self, client_order_id: str, new_client_order_id: str, limit_price: float, when: str,
                broker_id: str) -> None:
        with self.tx() as db:
            row = db.execute(
                f"SELECT * FROM option_orders WHERE client_order_id = ? AND status IN "
                f"({', '.join('?' for _ in OPEN_STATUSES)})", (client_order_id, *OPEN_STATUSES),
            ).fetchone()  # fmt: skip
            if row is None:
                return
            db.execute("UPDATE option_orders SET status = ?, reason = ?, updated_at = ? WHERE client_order_id = ?",
                       (CANCELLED, f"replaced by {new_client_order_id}", when, client_order_id))  # fmt: skip
            values = dict(row)
            values.update(client_order_id=new_client_order_id, broker_order_id=broker_id, limit_price=float(limit_price),
                          submitted_at=when, updated_at=when, reason=None)  # fmt: skip
            cols = ", ".join(values)
            db.execute(f"INSERT INTO option_orders ({cols}) VALUES ({', '.join('?' for _ in values)})",
                       tuple(values.values()))  # fmt: skip

    def events(self, since: dt.date | None = None) -> list[BrokerFill]:
        """Expiry events (settlements, exercises, assignments, worthless expiries) since ``since``."""
        rows = self.db().execute(
            "SELECT * FROM fills WHERE kind != 'trade' AND fill_date > ? ORDER BY fill_date, fill_id",
            ((since or dt.date.min).isoformat(),),
        ).fetchall()
        return [fill_of(r) for r in rows]


def _risk_symbol(underlying: str) -> str:
    return underlying


def fill_of(r: sqlite3.Row) -> BrokerFill:
    keys = r.keys()
    return BrokerFill(
        fill_id=r["fill_id"], client_order_id=r["client_order_id"], symbol=r["symbol"], side=r["side"],
        qty=float(r["qty"]), price=float(r["price"]), commission=float(r["commission"]),
        filled_at=dt.datetime.fromisoformat(r["filled_at"]),
        multiplier=float(r["multiplier"]) if "multiplier" in keys else 1.0,
        kind=str(r["kind"]) if "kind" in keys and r["kind"] else "trade",
        source=r["source"] if "source" in keys else None,
    )  # fmt: skip


__all__ = ["OptionRules", "PaperOptions", "ensure_schema", "fill_of", "legs_from_json"]
