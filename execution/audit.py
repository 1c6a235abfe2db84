"""The audit trail of trading runs in the lake (contracts in :mod:`execution.tables`).

* ``exec_orders`` — one row per (account, broker, client order id), merged in place: written **before** an order is sent
  (status ``pending_submit``: the intent survives a crash), then updated with what the broker said and
  filled.  Every update is a Delta version, so ``quantlake lake history exec_orders`` is the order log.
* ``exec_fills`` — every fill the broker reported (key: broker, fill id; cumulative fills grow in place).
* ``exec_account`` — one snapshot per (broker, account, strategy, trade date): equity, cash, peak,
  drawdown, positions, reconciliation differences and the kill switch.

Nothing here talks to a broker; :mod:`execution.trader` decides what to write.  Secrets never reach these
tables: rows hold ids, quantities, prices and the broker's own messages only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from execution.brokers.base import FINAL_STATUSES, BrokerFill, BrokerOrder
from execution.orders import PlannedOrder
from execution.tables import EXEC_ACCOUNT, EXEC_FILLS, EXEC_ORDERS
from quantlake.lake import CommitResult, Lake
from quantlake.tables import TableSpec

log = logging.getLogger(__name__)
ORDER_COLUMNS = [f.name for f in EXEC_ORDERS.schema]
_KEY_CHECKED: set[str] = set()  # lake roots whose exec_orders key is current (checked once per process)
FILL_COLUMNS = [f.name for f in EXEC_FILLS.schema]
ACCOUNT_COLUMNS = [f.name for f in EXEC_ACCOUNT.schema]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _arrow(rows: Iterable[Mapping[str, Any]], spec: TableSpec) -> pa.Table:
    """Rows as an Arrow table of ``spec``'s columns (volatile timestamps left to the lake): missing values
    (None, NaN, NaT) become nulls and timestamps read back from the lake are turned into dates where the
    column is a date.  (Building Arrow directly also avoids pandas' deprecated tz-aware ``.values`` path.)"""
    fields = [f for f in spec.schema if f.name not in spec.volatile]
    out: list[dict[str, Any]] = []
    for row in rows:
        clean: dict[str, Any] = {}
        for f in fields:
            value = row.get(f.name)
            if value is None or (not isinstance(value, str | bytes | bool) and bool(pd.isna(value))):
                value = None
            elif pa.types.is_date32(f.type) and isinstance(value, dt.datetime):
                value = value.date()
            elif pa.types.is_floating(f.type):
                value = float(value)
            clean[f.name] = value
        out.append(clean)
    return pa.Table.from_pylist(out, schema=pa.schema(fields))


def _read(lake: Lake, spec: TableSpec, where: str | None, params: list[Any]) -> pd.DataFrame:
    if not lake.exists(spec.name):  # typed even when empty: object columns break arithmetic on pandas 3
        return spec.schema.empty_table().to_pandas()
    return lake.read(spec.name, where=where, params=params)


# ------------------------------------------------------------------------------------------- orders
def order_row(
    order: PlannedOrder,
    broker: str,
    account: str,
    flow_run_id: str | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """An ``exec_orders`` row for a decided order (status and reason as the order carries them)."""
    now = _now()
    return {
        "client_order_id": order.client_order_id,
        "trade_date": order.trade_date,
        "strategy": order.strategy,
        "broker": broker,
        "account": account,
        "symbol": order.symbol,
        "leg": order.leg,
        "side": order.side,
        "qty": float(order.qty),
        "order_type": "market",
        "ref_price": float(order.ref_price),
        "target_qty": float(order.target_qty),
        "position_before": float(order.position_before),
        "status": order.status,
        "broker_order_id": None,
        "filled_qty": 0.0,
        "filled_avg_price": None,
        "commission": 0.0,
        "reason": order.reason or None,
        "risk_check": order.risk_check or None,
        "flow_run_id": flow_run_id,
        "created_at": created_at or now,
        "updated_at": now,
    }


def with_broker_state(row: Mapping[str, Any], state: BrokerOrder, fills: Sequence[BrokerFill] = ()) -> dict[str, Any]:
    """``row`` updated with the broker's view of the order (status, ids, fills, commission, reason)."""
    commission = sum(f.commission for f in fills) if fills else state.commission
    out = dict(row)
    out.update(
        status=state.status,
        broker_order_id=state.broker_order_id or row.get("broker_order_id"),
        filled_qty=float(state.filled_qty),
        filled_avg_price=state.filled_avg_price,
        commission=float(commission),
        reason=state.reason or row.get("reason"),
    )
    out["updated_at"] = _now() if changed(out, row) else row.get("updated_at")
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # None or NaN


def changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether the broker-reported fields of an order row differ (None and NaN count as equal)."""
    for key in ("status", "broker_order_id", "filled_qty", "filled_avg_price", "commission", "reason"):
        a, b = new.get(key), old.get(key)
        if _missing(a) and _missing(b):
            continue
        if _missing(a) != _missing(b) or a != b:
            return True
    return False


def migrate_orders_key(lake: Lake) -> str | None:
    """Bring an ``exec_orders`` table written with the old key (the client order id alone) to the key
    (account, broker, client order id), once; returns the one-line message, or None when nothing was to do.

    Under the old key a second account trading the same strategy on the same day overwrote the first
    account's rows (same client order id).  Those rows are still in the table's history: the migration reads
    every version and keeps, per (account, broker, client order id), the row of the latest version that has
    it, then rewrites the table in one commit with the new key.  The earlier versions stay readable."""
    root = lake.uri
    if root in _KEY_CHECKED or not lake.exists(EXEC_ORDERS.name):
        return None
    stored = json.loads(lake.delta(EXEC_ORDERS.name).metadata().description or "{}").get("keys")
    if stored is None or tuple(stored) == EXEC_ORDERS.keys:
        _KEY_CHECKED.add(root)
        return None
    latest = lake.version(EXEC_ORDERS.name)
    frames = []
    for version in range(latest + 1):
        try:
            frame = lake.delta(EXEC_ORDERS.name, version).to_pandas()
        except Exception:  # a vacuumed version: what is left still counts
            continue
        frames.append(frame.assign(__version=version))
    every = pd.concat(frames, ignore_index=True)
    keys = list(EXEC_ORDERS.keys)
    newest = every.sort_values("__version", kind="mergesort").groupby(keys, dropna=False).tail(1)
    current = newest["__version"] == latest
    restored = int((~current).sum())
    rows = newest.drop(columns="__version").sort_values(keys, kind="mergesort").to_dict("records")
    lake.replace(EXEC_ORDERS.name, _arrow(rows, EXEC_ORDERS), EXEC_ORDERS,
                 note="execution: exec_orders keyed by (account, broker, client_order_id)")  # fmt: skip
    # an overwrite keeps the table's stored description: record the new key in a second commit (after the
    # rows, so a process killed in between migrates again, idempotently, instead of losing restored rows)
    stored_info = json.loads(lake.delta(EXEC_ORDERS.name).metadata().description or "{}")
    lake.delta(EXEC_ORDERS.name).alter.set_table_description(json.dumps({**stored_info, "keys": keys}))
    _KEY_CHECKED.add(root)
    message = (
        f"exec_orders migrated to the key (account, broker, client_order_id): {len(rows)} order(s), restored "
        f"{restored} that another account had overwritten (history kept, version {latest} and earlier)"
    )
    log.warning(message)
    return message


def record_orders(lake: Lake, rows: Iterable[Mapping[str, Any]], note: str = "") -> CommitResult | None:
    """Merge order rows into ``exec_orders`` (one atomic commit; none when nothing changed)."""
    migrate_orders_key(lake)
    table = _arrow(rows, EXEC_ORDERS)
    if table.num_rows == 0:
        return None
    return lake.merge(EXEC_ORDERS.name, table, EXEC_ORDERS, note=note or "execution: orders")


def orders(
    lake: Lake,
    broker: str | None = None,
    account: str | None = None,
    strategy: str | None = None,
    trade_date: dt.date | None = None,
    open_only: bool = False,
) -> pd.DataFrame:
    """Rows of ``exec_orders`` (``open_only``: status not final, i.e. the broker may still act on them)."""
    migrate_orders_key(lake)
    clauses: list[str] = []
    params: list[Any] = []
    for col, val in (("broker", broker), ("account", account), ("strategy", strategy), ("trade_date", trade_date)):
        if val is not None:
            clauses.append(f"{col} = ?")
            params.append(val)
    if open_only:
        clauses.append("status NOT IN (" + ", ".join("?" for _ in FINAL_STATUSES) + ")")
        params += sorted(FINAL_STATUSES)
    return _read(lake, EXEC_ORDERS, " AND ".join(clauses) or None, params)


# -------------------------------------------------------------------------------------------- fills
def record_fills(lake: Lake, broker: str, account: str, fills: Iterable[BrokerFill]) -> CommitResult | None:
    rows = [
        {
            "broker": broker,
            "fill_id": f.fill_id,
            "account": account,
            "client_order_id": f.client_order_id,
            "symbol": f.symbol,
            "side": f.side,
            "qty": float(f.qty),
            "price": float(f.price),
            "commission": float(f.commission),
            "filled_at": f.filled_at,
            "multiplier": float(f.multiplier),
            "kind": f.kind,
            "source": f.source,
        }
        for f in fills
    ]
    if not rows:
        return None
    return lake.merge(EXEC_FILLS.name, _arrow(rows, EXEC_FILLS), EXEC_FILLS, note="execution: fills")


def fills(lake: Lake, broker: str | None = None, account: str | None = None) -> pd.DataFrame:
    clauses: list[str] = []
    params: list[Any] = []
    for col, val in (("broker", broker), ("account", account)):
        if val is not None:
            clauses.append(f"{col} = ?")
            params.append(val)
    return _read(lake, EXEC_FILLS, " AND ".join(clauses) or None, params)


def expected_positions(
    lake: Lake, broker: str, account: str, extra_fills: Iterable[BrokerFill] = ()
) -> dict[str, float]:
    """Signed shares per symbol according to the recorded fills of this broker account, plus
    ``extra_fills`` not recorded yet (a fill id already recorded is replaced: cumulative fills grow)."""
    f = fills(lake, broker, account)
    extra = pd.DataFrame(
        [{"fill_id": x.fill_id, "symbol": x.symbol, "side": x.side, "qty": x.qty} for x in extra_fills],
        columns=["fill_id", "symbol", "side", "qty"],
    )
    if not extra.empty:
        f = pd.concat([f[~f["fill_id"].isin(extra["fill_id"])][extra.columns], extra], ignore_index=True)
    if f.empty:
        return {}
    signed = f["qty"].astype(float).where(f["side"] == "buy", -f["qty"].astype(float))
    totals = signed.groupby(f["symbol"]).sum()
    return {str(s): float(q) for s, q in totals.items() if abs(q) > 1e-9}


def reconcile(broker_positions: Mapping[str, float], expected: Mapping[str, float]) -> list[dict[str, Any]]:
    """Differences between the broker's positions and the audit trail's: one entry per symbol that
    differs, ``{"symbol", "broker", "audit", "difference"}`` (broker - audit)."""
    out = []
    for symbol in sorted(set(broker_positions) | set(expected)):
        b, a = float(broker_positions.get(symbol, 0.0)), float(expected.get(symbol, 0.0))
        if abs(b - a) > 1e-6:
            out.append({"symbol": symbol, "broker": b, "audit": a, "difference": b - a})
    return out


# ------------------------------------------------------------------------------------------ account
def record_account(
    lake: Lake,
    broker: str,
    account: str,
    strategy: str,
    trade_date: dt.date,
    equity: float,
    cash: float,
    peak_equity: float,
    positions: Mapping[str, float],
    reconciliation: Sequence[Mapping[str, Any]],
    kill_switch: bool,
    lake_versions: Mapping[str, int] | None = None,
) -> CommitResult:
    row = {
        "broker": broker,
        "account": account,
        "strategy": strategy,
        "trade_date": trade_date,
        "equity": float(equity),
        "cash": float(cash),
        "peak_equity": float(peak_equity),
        "drawdown": 1.0 - float(equity) / float(peak_equity) if peak_equity > 0 else 0.0,
        "positions": json.dumps({k: float(v) for k, v in sorted(positions.items())}),
        "reconciliation": json.dumps(list(reconciliation)),
        "kill_switch": bool(kill_switch),
        "lake_versions": json.dumps(dict(sorted(lake_versions.items()))) if lake_versions else None,
    }
    return lake.merge(EXEC_ACCOUNT.name, _arrow([row], EXEC_ACCOUNT), EXEC_ACCOUNT, note="execution: account snapshot")


def account_history(
    lake: Lake, broker: str, account: str, strategy: str | None = None, until: dt.date | None = None
) -> pd.DataFrame:
    """Snapshots of one broker account (all strategies unless given), oldest first."""
    clauses = ["broker = ?", "account = ?"]
    params: list[Any] = [broker, account]
    if strategy is not None:
        clauses.append("strategy = ?")
        params.append(strategy)
    if until is not None:
        clauses.append("trade_date <= ?")
        params.append(until)
    frame = _read(lake, EXEC_ACCOUNT, " AND ".join(clauses), params)
    return frame.sort_values(["trade_date", "strategy"], kind="mergesort").reset_index(drop=True)


def peak_equity(lake: Lake, broker: str, account: str, until: dt.date | None = None) -> float | None:
    """The highest equity (or recorded peak) of this broker account in snapshots up to ``until``."""
    h = account_history(lake, broker, account, until=until)
    if h.empty:
        return None
    return float(max(h["equity"].max(), h["peak_equity"].max()))


# ------------------------------------------------------------------------------------------ reading out
def export_for_risk(lake: Lake, broker: str, account: str, out: Path) -> tuple[Path, Path]:
    """Write ``equity.parquet`` (``date, equity``: the last snapshot of each trading date) and
    ``positions.json`` (:class:`risk.book.Position` fields, marked at the latest close on or before the last
    snapshot) for ``quantlake risk report --returns ... --positions ...``."""
    from quantlake.errors import UserInputError

    history = account_history(lake, broker, account)
    if history.empty:
        raise UserInputError(f"no account snapshots for {broker}/{account} yet: run `quantlake trade` first")
    last_per_day = history.sort_values(["trade_date", "recorded_at"], kind="mergesort").groupby("trade_date").tail(1)
    equity = pd.DataFrame({"date": pd.to_datetime(last_per_day["trade_date"]), "equity": last_per_day["equity"]})
    positions = json.loads(last_per_day["positions"].iloc[-1] or "{}")
    day = pd.Timestamp(last_per_day["trade_date"].iloc[-1]).date()
    held = sorted(s for s, q in positions.items() if q)
    marks: dict[str, float] = {}
    if held:
        got = lake.query(
            "SELECT symbol, close FROM equity_bars WHERE close IS NOT NULL AND date <= ? AND symbol IN ("
            + ", ".join("?" for _ in held)
            + ") QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY date DESC) = 1",
            [day, *held],
        )
        marks = {str(r.symbol): float(r.close) for r in got.itertuples(index=False)}
    out.mkdir(parents=True, exist_ok=True)
    equity_path, positions_path = out / "equity.parquet", out / "positions.json"
    equity.to_parquet(equity_path, index=False)
    items = [{"symbol": s, "qty": positions[s], "price": marks[s]} for s in held if s in marks]
    positions_path.write_text(json.dumps(items, indent=2))
    return equity_path, positions_path


def _day(value: Any) -> str:
    return str(pd.Timestamp(value).date())


def print_status(broker: str, account: str, limit: int = 20, lake: Lake | None = None) -> None:
    """One account's audit trail in the terminal (fitted to its width): latest orders, snapshots, kill
    switch."""
    from rich.text import Text

    from execution.account_state import kill_switch
    from quantlake.display import Col, console, print_table

    lake = lake or Lake()
    out = console()
    o = orders(lake, broker, account)
    latest = o.sort_values(["trade_date", "created_at"], ascending=False).head(limit)
    print_table(latest, [
        Col("trade_date", "trade date", "date"), Col("symbol"), Col("side"), Col("qty", kind="float"),
        Col("status"), Col("filled_qty", "filled", "float"), Col("filled_avg_price", "avg price", "float"),
        Col("strategy", optional=True), Col("leg", optional=True),
    ], title=f"latest orders of {broker}/{account} ({len(o):,} in the audit trail)", out=out)
    h = account_history(lake, broker, account).tail(limit).copy()
    h["kill"] = ["ON" if k else "off" for k in h["kill_switch"]] if len(h) else []
    print_table(h, [
        Col("trade_date", "trade date", "date"), Col("equity", kind="float"), Col("cash", kind="float"),
        Col("drawdown", kind="pct"), Col("positions"), Col("kill", "kill switch"),
        Col("strategy", optional=True),
    ], title="account snapshots", out=out)
    ks = kill_switch(broker, account)
    out.print(Text(f"kill switch: {'ON — ' + str(ks.get('reason')) if ks else 'off'}"), soft_wrap=True)
