"""One trading run: from ``models:/NAME@champion`` and the lake's latest features to orders at a broker.

:func:`run_trade` does, in order (every step recorded in the audit tables of :mod:`execution.audit`):

1. **Lock** the broker account (a second run on the same account fails at once instead of racing).
2. **Sync** the broker to the trading date (paper: fill orders at the next bar's open).
3. **Reconcile orders**: every audited order the broker may still act on is refreshed from the broker
   (status, fills); an intent recorded before a crash that never reached the broker is superseded.
4. **Cancel** our orders still open after ``order_timeout_hours``.
5. **Reconcile positions**: the broker's positions against the audited fills (differences recorded;
   ``strict_reconcile`` fails the run).  Sizing always starts from the broker's positions.
6. **Drawdown**: equity against the account's peak; at ``alert_drawdown`` an alert, at ``kill_drawdown`` the
   **kill switch** trips (persisted; only ``quantlake trade --reset-kill-switch`` clears it): no new orders,
   our open orders are cancelled.
7. **Targets**: the model's signals at the trading date's close → target shares
   (:func:`execution.orders.target_quantities`, sized with :mod:`risk.sizing`, halved in a drawdown by
   :func:`risk.limits.drawdown_multiplier`).
8. **Orders**: target − (held + working orders), with idempotent client order ids; each checked by
   :func:`risk.limits.validate` against the book including the orders approved before it.
9. **Write-ahead**: every decided order is recorded (``pending_submit``) *before* anything is sent.
10. **Submit** through the :class:`~execution.brokers.guard.CircuitBreaker`; an id the broker already has
    is adopted, never sent twice.  A broker failure leaves the order ``pending_submit`` (outcome unknown,
    settled by the next run's step 3) or ``not_sent``; nothing is lost.
11. **Record** broker statuses, fills and an account snapshot; raise a clear error if the broker failed or
    the kill switch is on (after recording), so a flow run shows as Failed.

Dry runs (``dry_run=True``) do steps 5-8 read-only (no sync, no cancels, nothing recorded or sent).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from execution import audit
from execution.account_state import (
    TradeInProgressError,
    account_lock,
    circuit_breaker,
    kill_switch,
    reset_kill_switch,
    trip_kill_switch,
)
from execution.brokers import make_broker
from execution.brokers.base import (
    FINAL_STATUSES,
    NOT_SENT,
    OPEN_STATUSES,
    PENDING_SUBMIT,
    PLANNED,
    REJECTED,
    RISK_REJECTED,
    Broker,
    BrokerFill,
    BrokerOrder,
    OrderRequest,
)
from execution.brokers.guard import GuardedBroker
from execution.errors import (
    CircuitOpenError,
    DuplicateOrderError,
    KillSwitchError,
    NoFeaturesError,
    ReconciliationError,
)
from execution.market_data import closes, latest_trading_date, marks, symbol_fractions
from execution.orders import PlannedOrder, check_order, default_limits, plan_orders, target_quantities
from execution.settings import TradeConfig
from execution.signal_source import SignalSource, feature_frame, in_process_model, load_champion
from quantlake.errors import BrokerError, QuantlakeError
from quantlake.lake import Lake
from risk.book import Account
from risk.limits import Limits, drawdown_multiplier

log = logging.getLogger(__name__)
MARKET_TABLES = ("equity_bars", "features_technical", "features_regime", "macro_series", "corporate_actions")
REBALANCE_BAND = 0.10  # leave a position alone while within 10 % of its target (see plan_orders)
Hook = Callable[[str, Any], None]


# ----------------------------------------------------------------------------------------- result
@dataclass
class TradeResult:
    """What one trading run did.  ``orders`` has this run's decided orders with their final statuses."""

    as_of: dt.date
    broker: str
    account: str
    strategy: str
    model: str
    dry_run: bool
    orders: pd.DataFrame
    fills: list[BrokerFill]
    positions: dict[str, float]
    equity: float
    cash: float
    peak_equity: float
    reconciliation: list[dict[str, Any]]
    cancelled: list[str]
    adopted: list[str]
    kill_switch: bool
    alerts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    signals: pd.DataFrame | None = None
    decision_equity: float | None = None  # equity the run sized and checked the drawdown with

    @property
    def drawdown(self) -> float:
        return 1.0 - self.equity / self.peak_equity if self.peak_equity > 0 else 0.0

    @property
    def decision_drawdown(self) -> float:
        equity = self.equity if self.decision_equity is None else self.decision_equity
        return 1.0 - equity / self.peak_equity if self.peak_equity > 0 else 0.0

    @property
    def rejected(self) -> pd.DataFrame:
        """Orders the broker refused (not the risk gate's refusals, which are decisions, not failures)."""
        return self.orders[self.orders["status"] == REJECTED] if not self.orders.empty else self.orders

    def summary(self) -> dict[str, Any]:
        counts = self.orders["status"].value_counts().to_dict() if not self.orders.empty else {}
        return {
            "as_of": self.as_of.isoformat(),
            "broker": self.broker,
            "account": self.account,
            "strategy": self.strategy,
            "model": self.model,
            "dry_run": self.dry_run,
            "orders": {str(k): int(v) for k, v in counts.items()},
            "fills": len(self.fills),
            "positions": self.positions,
            "equity": round(self.equity, 2),
            "cash": round(self.cash, 2),
            "drawdown": round(self.drawdown, 6),
            "reconciliation": self.reconciliation,
            "cancelled": self.cancelled,
            "kill_switch": self.kill_switch,
            "alerts": self.alerts,
            "errors": self.errors,
        }


# ----------------------------------------------------------------------------------------- helpers
def _orders_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=audit.ORDER_COLUMNS)


def _wait_for_fills(broker: Broker, cids: list[str], seconds: float, poll: float = 1.0) -> None:
    """Poll until every order is final or ``seconds`` passed (live brokers; paper fills at the next sync)."""
    deadline = time.monotonic() + seconds
    pending = set(cids)
    while pending and time.monotonic() < deadline:
        for cid in list(pending):
            state = broker.get_order(cid)
            if state is None or state.status in FINAL_STATUSES:
                pending.discard(cid)
        if pending:
            time.sleep(min(poll, max(deadline - time.monotonic(), 0.0)))


# ----------------------------------------------------------------------------------------- the run
def run_trade(
    cfg: TradeConfig,
    lake: Lake | None = None,
    *,
    broker: Broker | None = None,
    model: SignalSource | None = None,
    limits: Limits | None = None,
    dry_run: bool = False,
    flow_run_id: str | None = None,
    hook: Hook | None = None,
    broker_options: Mapping[str, Any] | None = None,
    rebalance_band: float = REBALANCE_BAND,
) -> TradeResult:
    """Run one trading day for ``cfg`` (see the module docstring).  ``broker`` overrides the adapter
    ``cfg.broker`` names (tests); ``model`` overrides ``models:/<cfg.model>@champion``; ``limits``
    overrides :func:`execution.orders.default_limits`; ``rebalance_band`` see
    :func:`execution.orders.plan_orders`; ``hook(point, payload)`` is called at ``after_intents`` and
    ``after_submit`` (crash tests)."""
    lake = lake or Lake()
    with trading_session(cfg, lake, broker, broker_options) as guarded:
        return _run(cfg, lake, guarded, model, limits, dry_run, flow_run_id, hook or (lambda *_: None), rebalance_band)


@contextlib.contextmanager
def trading_session(
    cfg: TradeConfig, lake: Lake, broker: Broker | None, broker_options: Mapping[str, Any] | None = None
) -> Iterator[GuardedBroker]:
    """The account locked for the run, the broker (``broker``, else the adapter ``cfg.broker`` names with
    ``broker_options``) behind the account's circuit breaker, and closed afterwards if opened here."""
    with account_lock(cfg.broker, cfg.account):
        inner = broker or make_broker(cfg, lake, **dict(broker_options or {}))
        try:
            yield GuardedBroker(inner, circuit_breaker(cfg))
        finally:
            if broker is None:
                inner.close()


def _run(
    cfg: TradeConfig,
    lake: Lake,
    broker: GuardedBroker,
    model: SignalSource | None,
    limits: Limits | None,
    dry_run: bool,
    flow_run_id: str | None,
    hook: Hook,
    band: float,
) -> TradeResult:
    strategy = cfg.strategy_name
    as_of = cfg.as_of or latest_trading_date(lake, cfg.symbols)
    limits = limits or default_limits(cfg.max_position_fraction, cfg.alert_drawdown, cfg.kill_drawdown)
    alerts: list[str] = []
    errors: list[str] = []
    fills: list[BrokerFill] = []

    # 2-3: sync and settle what the broker did with earlier orders
    if not dry_run:
        broker.sync(as_of)
    known = audit.orders(lake, cfg.broker, cfg.account, open_only=True)
    updates: list[dict[str, Any]] = []
    row: dict[str, Any]
    for row in known.to_dict("records"):
        state_before = broker.get_order(row["client_order_id"])
        if state_before is None:
            if row["status"] == PENDING_SUBMIT and pd.Timestamp(row["trade_date"]).date() < as_of and not dry_run:
                updates.append({**row, "status": NOT_SENT, "updated_at": dt.datetime.now(dt.UTC),
                                "reason": "never reached the broker (run interrupted); superseded by a later run"})  # fmt: skip
            continue
        got = broker.fills(row["client_order_id"]) if state_before.filled_qty > 0 else []
        fills += got
        new = audit.with_broker_state(row, state_before, got)
        if audit.changed(new, row):
            updates.append(new)

    # 4: cancel our orders that stayed open too long
    cancelled: list[str] = []
    now = broker.now()
    open_at_broker = broker.open_orders()
    known_rows = {r["client_order_id"]: r for r in known.to_dict("records")}
    ours = set(known_rows)
    for o in open_at_broker:
        age_h = (now - o.submitted_at).total_seconds() / 3600 if o.submitted_at else 0.0
        if o.client_order_id in ours and age_h > cfg.order_timeout_hours and not dry_run:
            gone = broker.cancel(o.client_order_id)
            cancelled.append(o.client_order_id)
            row = known_rows[o.client_order_id]
            updates.append(audit.with_broker_state(row, gone.with_status(
                gone.status, f"cancelled: unfilled after {age_h:.0f} h (timeout {cfg.order_timeout_hours:g} h)")))  # fmt: skip
    # 5: positions against the audit trail (fills settled above count)
    held = broker.positions()
    expected = audit.expected_positions(lake, cfg.broker, cfg.account, extra_fills=fills)
    differences = audit.reconcile(held, expected)
    if differences:
        text = ", ".join(f"{d['symbol']} broker {d['broker']:g} vs audit {d['audit']:g}" for d in differences)
        if cfg.strict_reconcile:
            raise ReconciliationError(f"{cfg.broker} account {cfg.account!r} positions differ from the audit trail: {text}")
        alerts.append(f"reconciliation: positions differ from the audit trail: {text}")

    # 6: drawdown and the kill switch
    state = broker.account()
    peak = max(audit.peak_equity(lake, cfg.broker, cfg.account, until=as_of) or state.equity, state.equity)
    drawdown = 1.0 - state.equity / peak if peak > 0 else 0.0
    tripped = kill_switch(cfg.broker, cfg.account)
    if drawdown >= cfg.kill_drawdown - 1e-12 and tripped is None and not dry_run:
        tripped = trip_kill_switch(cfg.broker, cfg.account, f"drawdown {drawdown:.1%} reached kill_drawdown "
                                   f"{cfg.kill_drawdown:.0%}", trade_date=as_of, equity=state.equity, peak=peak)  # fmt: skip
    working = [o for o in broker.open_orders() if o.is_open and o.client_order_id not in cancelled]
    if tripped is not None:
        alerts.append(f"kill switch ON ({tripped.get('reason')}): no new orders until `quantlake trade "
                      f"--reset-kill-switch --broker {cfg.broker} --account {cfg.account}`")  # fmt: skip
        if not dry_run:
            for o in working:
                if o.client_order_id in ours:
                    after_cancel = broker.cancel(o.client_order_id)
                    cancelled.append(o.client_order_id)
                    row = known_rows[o.client_order_id]
                    updates.append(audit.with_broker_state(row, after_cancel.with_status(
                        after_cancel.status, "cancelled: kill switch on")))  # fmt: skip
            working = [o for o in working if o.client_order_id not in cancelled]
    elif drawdown >= cfg.alert_drawdown - 1e-12:
        alerts.append(f"drawdown {drawdown:.1%} from the peak {peak:,.2f} is past alert_drawdown {cfg.alert_drawdown:.0%}")
    if not dry_run:
        audit.record_fills(lake, cfg.broker, cfg.account, fills)
        audit.record_orders(lake, _dedupe(updates), note=f"execution: reconcile {as_of}")

    # 7: targets from the model
    source = model or load_champion(cfg.model)
    prices = closes(lake, as_of, cfg.symbols)
    tradable = sorted(s for s in prices.index if not s.startswith("^"))
    if not tradable:
        raise NoFeaturesError(f"no tradable symbol has a bar on {as_of}")
    frame = feature_frame(lake, source.columns, as_of, tradable, cfg.feature_table, source.tables_read)
    signals = source.predict(frame)
    sig = signals.set_index("symbol")["signal"].astype(float).reindex(tradable).fillna(0.0)
    current: dict[str, float] = dict(held)  # held + working orders
    for o in working:
        current[o.symbol] = current.get(o.symbol, 0.0) + o.remaining_signed
    risk_account = Account(equity=state.equity, cash=state.cash, peak_equity=peak)
    size_mult = drawdown_multiplier(risk_account, limits)
    if cfg.sizing is not None:  # the config's sizing per symbol, at most max_position_fraction each
        sig = sig * (symbol_fractions(lake, cfg, as_of, tradable) / cfg.max_position_fraction).reindex(sig.index)
    targets = target_quantities(
        sig, prices, state.equity, cfg.max_position_fraction, cfg.allow_short, size_mult if size_mult > 0 else 1.0
    )
    if size_mult == 0:  # new risk halted: keep what the model still wants, exit what it no longer wants
        held_now = pd.Series(current, dtype=float).reindex(targets.index).fillna(0.0)
        targets = held_now.where((targets * held_now) > 0, 0.0)

    # 8: orders and the risk gate
    planned = plan_orders(as_of, strategy, targets.to_dict(), current, prices.to_dict(), band, cfg.account)
    book = {s: q for s, q in current.items() if abs(q) > 1e-9}
    book_prices = {**marks(lake, as_of, sorted(book)), **prices.to_dict()}
    buying_power = state.buying_power
    decided: list[PlannedOrder] = []
    for order in planned:
        if tripped is not None:
            decided.append(order.with_(status=NOT_SENT, reason="kill switch on"))
            continue
        if order.side == "buy":
            need = order.qty * cfg.costs.fill_price(order.ref_price, "buy") + cfg.costs.commission(order.qty, order.ref_price)
            if need > buying_power:
                decided.append(order.with_(status=RISK_REJECTED, risk_check=f"needs {need:,.2f}, buying power {buying_power:,.2f}"))  # fmt: skip
                continue
        verdict = check_order(order, risk_account, book, book_prices, limits, cfg.max_order_value_fraction)
        if isinstance(verdict, str) or not verdict.passed:
            text = verdict if isinstance(verdict, str) else verdict.summary()
            decided.append(order.with_(status=RISK_REJECTED, risk_check=text))
            continue
        book[order.symbol] = book.get(order.symbol, 0.0) + order.signed_qty
        if order.side == "buy":  # a sale frees cash only when it fills (next open): not counted
            buying_power -= order.notional
        decided.append(order.with_(status=PLANNED if dry_run else PENDING_SUBMIT, risk_check=verdict.summary()))

    if dry_run:
        return TradeResult(as_of, cfg.broker, cfg.account, strategy, source.label, True,
                           _orders_frame([audit.order_row(d, cfg.broker, cfg.account, flow_run_id) for d in decided]),
                           [], held, state.equity, state.cash, peak, differences, [], [], tripped is not None,
                           alerts, errors, signals, state.equity)  # fmt: skip

    # 9: write-ahead: intents before anything is sent; stale intents of this date are superseded
    previous = audit.orders(lake, cfg.broker, cfg.account, strategy=strategy, trade_date=as_of)
    prev_rows = {r["client_order_id"]: r for r in previous.to_dict("records")}
    rows: dict[str, dict[str, Any]] = {}
    for po in decided:
        before = prev_rows.get(po.client_order_id)
        if before is not None and (before["status"] not in (PENDING_SUBMIT, NOT_SENT, RISK_REJECTED)):
            rows[po.client_order_id] = before  # the broker already has it: keep its row
            continue
        created = before["created_at"] if before is not None else None
        rows[po.client_order_id] = audit.order_row(po, cfg.broker, cfg.account, flow_run_id, created)
    decided_ids = {po.client_order_id for po in decided}
    for cid, before in prev_rows.items():
        if cid not in decided_ids and before["status"] == PENDING_SUBMIT and broker.get_order(cid) is None:
            rows[cid] = {**before, "status": NOT_SENT, "updated_at": dt.datetime.now(dt.UTC),
                         "reason": "superseded: a rerun of this date no longer wants it"}  # fmt: skip
    audit.record_orders(lake, rows.values(), note=f"execution: intents {strategy} {as_of}")
    hook("after_intents", list(rows))

    # 10: submit (an id the broker already has is adopted, never resent)
    adopted: list[str] = []
    sent: list[str] = []
    final_rows: dict[str, dict[str, Any]] = {}
    for po in decided:
        row = rows[po.client_order_id]
        if row["status"] != PENDING_SUBMIT:
            continue
        try:
            state_o: BrokerOrder | None
            request = OrderRequest(po.client_order_id, po.symbol, po.side, po.qty, as_of, po.ref_price)
            try:
                state_o = broker.submit(request)
                sent.append(po.client_order_id)
            except DuplicateOrderError:  # sent by an interrupted run: adopt it, never send it again
                state_o = broker.get_order(po.client_order_id)
                adopted.append(po.client_order_id)
            hook("after_submit", po.client_order_id)
        except CircuitOpenError as exc:
            errors.append(str(exc))
            final_rows[po.client_order_id] = {**row, "status": NOT_SENT, "reason": f"not sent: {exc}",
                                             "updated_at": dt.datetime.now(dt.UTC)}  # fmt: skip
            continue
        except BrokerError as exc:
            errors.append(f"{po.client_order_id}: {exc}")
            final_rows[po.client_order_id] = {**row, "reason": f"outcome unknown, reconciled at the next run: {exc}",
                                             "updated_at": dt.datetime.now(dt.UTC)}  # fmt: skip
            continue
        if state_o is not None:
            final_rows[po.client_order_id] = audit.with_broker_state(row, state_o)
            if state_o.status == REJECTED:
                alerts.append(f"broker rejected {po.side} {po.qty:g} {po.symbol} ({po.client_order_id}): {state_o.reason}")

    # 11: fills (live brokers may fill within fill_wait_seconds), audit, snapshot
    live = [cid for cid, r in final_rows.items() if r["status"] in OPEN_STATUSES]
    if live and cfg.fill_wait_seconds > 0:
        with contextlib.suppress(BrokerError):
            _wait_for_fills(broker, live, cfg.fill_wait_seconds)
    new_fills: list[BrokerFill] = []
    for cid, r in list(final_rows.items()):
        if r["status"] in OPEN_STATUSES or r["status"] in FINAL_STATUSES - {NOT_SENT, RISK_REJECTED}:
            try:
                st = broker.get_order(cid)
                got = broker.fills(cid) if st is not None and st.filled_qty > 0 else []
            except BrokerError as exc:
                errors.append(f"{cid}: status after submit unknown: {exc}")
                continue
            if st is not None:
                final_rows[cid] = audit.with_broker_state(r, st, got)
                new_fills += got
    audit.record_fills(lake, cfg.broker, cfg.account, new_fills)
    audit.record_orders(lake, final_rows.values(), note=f"execution: submitted {strategy} {as_of}")
    fills += new_fills

    try:
        after = broker.account()
        positions_after = broker.positions()
    except BrokerError as exc:
        errors.append(f"account snapshot: {exc}")
        after, positions_after = state, held
    peak = max(peak, after.equity)
    read = {t: v for t, v in lake.versions_read.items() if t in MARKET_TABLES}
    audit.record_account(lake, cfg.broker, cfg.account, strategy, as_of, after.equity, after.cash, peak,
                         positions_after, differences, tripped is not None, read)  # fmt: skip
    final = {**rows, **final_rows}
    result = TradeResult(
        as_of, cfg.broker, cfg.account, strategy, source.label, False,
        _orders_frame([final[d.client_order_id] for d in decided]), fills, positions_after, after.equity,
        after.cash, peak, differences, cancelled, adopted, tripped is not None, alerts, errors, signals,
        state.equity,
    )  # fmt: skip
    log.info("trading run %s %s/%s %s: %s", strategy, cfg.broker, cfg.account, as_of, result.summary()["orders"])
    return result


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Last row per client order id."""
    return list({r["client_order_id"]: r for r in rows}.values())


def alert(result: Any, cfg: TradeConfig, email: bool = True) -> QuantlakeError | None:
    """Send the alerts a run calls for (:mod:`execution.alerts`: log, Prefect event, alert file, e-mail) and
    return the error a scheduler must see, or None.  In order of severity: the kill switch, broker
    failures (outage, circuit open), broker rejections, and — a warning only — a drawdown past
    ``alert_drawdown`` or positions that differ from the audit trail.  ``result``: a :class:`TradeResult`
    or an :class:`execution.option_trader.OptionTradeResult`."""
    from execution import alerts

    ctx = {"broker": result.broker, "account": result.account, "strategy": result.strategy,
           "as_of": result.as_of.isoformat()}  # fmt: skip
    try:
        if not result.dry_run:
            equity = result.equity if result.decision_equity is None else result.decision_equity
            alerts.check_drawdown(equity, result.peak_equity, cfg.alert_drawdown, cfg.kill_drawdown,
                                  result.strategy, result.account, email=email)  # fmt: skip
        if result.kill_switch:
            text = next((a for a in result.alerts if a.startswith("kill switch")), "kill switch on")
            alerts.fail(KillSwitchError(text), "drawdown", f"{result.strategy}: kill switch on", **ctx)
        if result.errors:
            err = BrokerError(
                f"{result.broker} failed during the run ({len(result.errors)} error(s)); every order is recorded "
                f"and the next run reconciles it: {result.errors[0]}"
            )
            alerts.fail(err, "broker", f"{result.broker} failed during the {result.strategy} run", **ctx)
        rej = result.rejected
        alerts.broker_rejections(
            [(r.client_order_id, r.symbol, r.reason) for r in rej.itertuples(index=False)],
            result.broker,
            result.strategy,
        )
        if result.reconciliation:
            alerts.send(alerts.Alert("broker", "warning", f"{result.broker} positions differ from the audit trail",
                                     json.dumps(result.reconciliation), ctx), email=email)  # fmt: skip
    except QuantlakeError as exc:
        return exc
    return None


def config_mapping(path: Path | None, what: str = "TradeConfig") -> dict[str, Any]:
    """The mapping of a YAML/JSON trade config file (empty without a file); one-line errors."""
    if path is None:
        return {}
    import yaml

    from quantlake.errors import MalformedFileError

    if not path.is_file():
        raise MalformedFileError(f"trade config {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MalformedFileError(f"trade config {path} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise MalformedFileError(f"trade config {path} must be a mapping of {what} fields")
    return dict(loaded or {})


def load_trade_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> TradeConfig:
    """A :class:`TradeConfig` from a YAML/JSON file (optional) updated with ``overrides``."""
    data = config_mapping(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TradeConfig.model_validate(data)


def render(result: TradeResult, console: Any) -> None:
    """Rich tables: the run's orders, the fills it recorded, positions and the account."""
    from rich.table import Table

    title = f"{'DRY RUN — ' if result.dry_run else ''}{result.strategy} on {result.broker}/{result.account}, {result.as_of}"
    console.print(f"[bold]{title}[/]  model: {result.model}")
    t = Table(title=f"orders ({len(result.orders)})")
    for col in ("symbol", "leg", "side", "qty", "ref price", "target", "status", "why"):
        t.add_column(col, justify="right" if col in ("qty", "ref price", "target") else "left")
    for r in result.orders.itertuples(index=False):
        why = r.reason if isinstance(r.reason, str) and r.reason else (r.risk_check or "")
        colour = {"rejected": "red", "risk_rejected": "yellow", "not_sent": "yellow"}.get(r.status, "")
        status = f"[{colour}]{r.status}[/]" if colour else r.status
        t.add_row(r.symbol, r.leg, r.side, f"{r.qty:g}", f"{r.ref_price:,.2f}", f"{r.target_qty:g}", status, str(why)[:70])
    console.print(t)
    if result.fills:
        f = Table(title=f"fills recorded this run ({len(result.fills)})")
        for col in ("symbol", "side", "qty", "price", "commission", "filled at"):
            f.add_column(col, justify="left" if col in ("symbol", "side", "filled at") else "right")
        for x in result.fills:
            f.add_row(x.symbol, x.side, f"{x.qty:g}", f"{x.price:,.4f}", f"{x.commission:,.2f}",
                      x.filled_at.strftime("%Y-%m-%d %H:%M UTC"))  # fmt: skip
        console.print(f)
    p = Table(title="positions at the broker")
    p.add_column("symbol")
    p.add_column("shares", justify="right")
    for sym, qty in sorted(result.positions.items()):
        p.add_row(sym, f"{qty:g}")
    if not result.positions:
        p.add_row("(none)", "")
    console.print(p)
    console.print(
        f"equity {result.equity:,.2f}  cash {result.cash:,.2f}  peak {result.peak_equity:,.2f}  "
        f"drawdown {result.drawdown:.2%}  kill switch {'[red]ON[/]' if result.kill_switch else 'off'}"
    )
    for text in result.alerts:
        console.print(f"[yellow]alert:[/] {text}")
    for text in result.errors:
        console.print(f"[red]error:[/] {text}")


__all__ = [
    "SignalSource",
    "TradeInProgressError",
    "TradeResult",
    "alert",
    "feature_frame",
    "in_process_model",
    "kill_switch",
    "load_champion",
    "load_trade_config",
    "render",
    "reset_kill_switch",
    "run_trade",
]
