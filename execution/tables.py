"""Contracts of the tables execution writes (registered with :mod:`quantlake.tables` on import).

* ``daily_signals`` — one row per scanner signal (date, symbol, signal), with its context, score and rank.
* ``exec_orders`` — the audit trail of every order a trading run decided, keyed by (account, broker,
  idempotent client order id) — lakes written with the older key (the id alone) are migrated by
  :func:`execution.audit.migrate_orders_key`: intent, risk verdict, what the broker said, fills so far.  Updated in place (merge by key);
  every change is a lake version, so the history of an order is the table's history.
* ``exec_fills`` — every fill the broker reported (paper: one per order and option leg; Alpaca/IBKR:
  cumulative), and option expiry events (settlement, exercise, assignment, worthless expiry).
* ``exec_account`` — one snapshot per run: equity, cash, peak, drawdown, positions and reconciliation.
"""

from __future__ import annotations

import pyarrow as pa

from quantlake.tables import TableSpec, register

_TS = pa.timestamp("us", tz="UTC")
F64 = pa.float64()
STR = pa.string()

DAILY_SIGNALS = register(
    TableSpec(
        name="daily_signals",
        keys=("date", "symbol", "signal"),
        schema=pa.schema(
            [
                ("date", pa.date32()),
                ("symbol", STR),
                ("signal", STR),  # ema_<fast>_<slow>
                ("direction", STR),  # bull | bear
                ("fast", pa.int32()),
                ("slow", pa.int32()),
                ("close", F64),
                ("volume", F64),
                ("avg_volume", F64),
                ("volume_ratio", F64),
                ("ema_fast", F64),
                ("ema_slow", F64),
                ("spread_pct", F64),  # (ema_fast - ema_slow) / close, in percent
                ("spread_change_pct", F64),  # change of spread_pct since the previous bar
                ("rsi", F64),
                ("rsi_event", STR),  # crossed_above_<upper> | crossed_below_<lower> | null
                ("rsi_event_date", pa.date32()),
                ("macd", F64),
                ("macd_signal", F64),
                ("macd_hist", F64),
                ("macd_confirms", pa.bool_()),
                ("score", F64),  # 0..100
                ("rank", pa.int32()),  # 1 = strongest of the day
                ("scanned_at", _TS),
            ]
        ),
        date_column="date",
        volatile=("scanned_at",),
        description="Daily scanner signals: EMA crosses with RSI context and MACD confirmation, scored and ranked.",
    )
)

EXEC_ORDERS = register(
    TableSpec(
        name="exec_orders",
        keys=("account", "broker", "client_order_id"),
        schema=pa.schema(
            [
                ("client_order_id", STR),
                ("trade_date", pa.date32()),
                ("strategy", STR),
                ("broker", STR),
                ("account", STR),
                ("symbol", STR),
                ("leg", STR),
                ("side", STR),
                ("qty", F64),
                ("order_type", STR),
                ("ref_price", F64),
                ("target_qty", F64),
                ("position_before", F64),
                ("status", STR),  # see execution.brokers.base.OrderStatus
                ("broker_order_id", STR),
                ("filled_qty", F64),
                ("filled_avg_price", F64),
                ("commission", F64),
                ("reason", STR),
                ("risk_check", STR),
                ("flow_run_id", STR),
                ("created_at", _TS),
                ("updated_at", _TS),
                ("legs", STR),  # option packages: JSON [{underlying, expiry, strike, right, ratio, occ}]
                ("limit_price", F64),  # net per unit (options: > 0 debit, < 0 credit)
                ("time_in_force", STR),
            ]
        ),
        date_column="trade_date",
        description="Audit trail of every order decided by a trading run (key: account, broker, idempotent client "
        "order id).",
    )
)

EXEC_FILLS = register(
    TableSpec(
        name="exec_fills",
        keys=("broker", "fill_id"),
        schema=pa.schema(
            [
                ("broker", STR),
                ("fill_id", STR),
                ("account", STR),
                ("client_order_id", STR),
                ("symbol", STR),
                ("side", STR),
                ("qty", F64),
                ("price", F64),
                ("commission", F64),
                ("filled_at", _TS),
                ("recorded_at", _TS),
                ("multiplier", F64),  # 100 for option contracts
                ("kind", STR),  # trade | expire | cash_settle | exercise | assign
                ("source", STR),  # option fills: the chain row was observed or modeled (paper broker)
            ]
        ),
        date_column=None,
        volatile=("recorded_at",),
        description="Fills reported by the broker for audited orders.",
    )
)

EXEC_ACCOUNT = register(
    TableSpec(
        name="exec_account",
        keys=("broker", "account", "strategy", "trade_date"),
        schema=pa.schema(
            [
                ("broker", STR),
                ("account", STR),
                ("strategy", STR),
                ("trade_date", pa.date32()),
                ("equity", F64),
                ("cash", F64),
                ("peak_equity", F64),
                ("drawdown", F64),
                ("positions", STR),  # JSON {symbol: qty}
                ("reconciliation", STR),  # JSON list of differences
                ("kill_switch", pa.bool_()),
                ("recorded_at", _TS),
                ("lake_versions", STR),  # JSON {table: version} of the market tables the run read
            ]
        ),
        date_column="trade_date",
        volatile=("recorded_at",),
        description="Account snapshot per trading run: equity, drawdown from the peak, positions, reconciliation.",
    )
)
