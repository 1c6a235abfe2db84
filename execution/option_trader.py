"""One trading day of an option strategy: the backtest's engine and strategy object (the *book*, see
:mod:`execution.option_book`) driven by a broker's fills instead of simulated ones.

Per run (the backtest does the same steps on each bar, :meth:`backtests.options.engine.Engine.on_bar`):

1. **Lock** the account; **sync** the broker to the day (paper: working orders fill at the day's quotes,
   expiries settle).
2. **Begin the bar** in the book: interest since the last bar, legs marked at the day's chain.
3. **Book the broker's fills** of the orders sent on earlier days (:meth:`Engine.apply_fill` at the broker's
   prices and fees); a limit still working counts one bar (cancelled at the broker after
   ``limit_ttl_bars``, as the backtest cancels it); a refusal is recorded as the backtest records one.
4. **Settle expiries** with the backtest's rule; the broker's expiry events (assignment, exercise, cash
   settlement) are recorded in ``exec_fills`` and the book's option positions are reconciled with the
   broker's (differences alert).
5. **Decide**: managed exits (profit target, stop, time, DTE, regime shift), rolls and new entries from the
   strategy object — :meth:`Engine.decide`, the backtest's own code.
6. **Check** each opening package with :func:`risk.limits.validate` (a :class:`risk.book.ComboOrder` of its
   legs with their Greeks, against the book's option positions); closing orders are never blocked; the kill
   switch stops opening orders.
7. **Write ahead** every order to ``exec_orders`` (legs, net limit, time in force), then **submit** through
   the circuit breaker with idempotent client order ids per leg-set; an id the broker already has is adopted.
8. **Record** fills, an account snapshot (the book's equity) and save the book.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from backtests.options.config import OptionsBacktestConfig
from backtests.options.orders import CloseOrder, OptionOrder, Order, ShareOrder
from execution import audit
from execution.brokers.base import (
    FILLED,
    NOT_SENT,
    OPEN_STATUSES,
    PENDING_SUBMIT,
    REJECTED,
    RISK_REJECTED,
    Broker,
    BrokerFill,
    OrderRequest,
)
from execution.brokers.guard import GuardedBroker
from execution.errors import CircuitOpenError, DuplicateOrderError
from execution.option_book import (
    adopt_config,
    bar_of,
    book_path,
    check_live,
    load_book,
    load_option_strategy,
    market_until,
    new_book,
    prepare_engine,
    save_book,
)
from execution.option_orders import (
    MULTIPLIER,
    OptionLeg,
    legs_from_contracts,
    option_client_order_id,
    reduce_ratios,
)
from execution.settings import TradeConfig
from quantlake.errors import BrokerError
from quantlake.lake import Lake

log = logging.getLogger(__name__)
Hook = Callable[[str, Any], None]


@dataclass
class OptionTradeResult:
    as_of: dt.date
    broker: str
    account: str
    strategy: str
    model: str
    dry_run: bool
    orders: pd.DataFrame  # this run's decided orders (exec_orders rows)
    booked: list[dict[str, Any]]  # fills booked into the strategy's book this run
    events: list[BrokerFill]
    positions: list[dict[str, Any]]  # the book's open positions after the run
    equity: float
    cash: float
    reconciliation: list[dict[str, Any]]
    alerts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    kill_switch: bool = False
    peak_equity: float = 0.0
    decision_equity: float | None = None

    @property
    def rejected(self) -> pd.DataFrame:
        return self.orders[self.orders["status"] == REJECTED] if not self.orders.empty else self.orders

    def summary(self) -> dict[str, Any]:
        counts = self.orders["status"].value_counts().to_dict() if not self.orders.empty else {}
        return {"as_of": self.as_of.isoformat(), "broker": self.broker, "account": self.account,
                "strategy": self.strategy, "model": self.model, "dry_run": self.dry_run,
                "orders": {str(k): int(v) for k, v in counts.items()}, "booked": len(self.booked),
                "events": len(self.events), "positions": len(self.positions), "equity": round(self.equity, 2),
                "cash": round(self.cash, 2), "reconciliation": self.reconciliation, "alerts": self.alerts,
                "errors": self.errors, "kill_switch": self.kill_switch}  # fmt: skip


# ----------------------------------------------------------------------------------------- requests
def package_of(engine: Any, order: OptionOrder | CloseOrder) -> tuple[tuple[OptionLeg, ...], int, str]:
    """Per-unit legs, units and intent of an engine order (a close order: the position's legs reversed)."""
    contracts, ratio, _ = engine.order_legs(order)
    per_unit, units = reduce_ratios([int(r) for r in ratio])
    intent = "close" if isinstance(order, CloseOrder) else "open"
    return legs_from_contracts(contracts, per_unit), units, intent


def request_of(engine: Any, order: OptionOrder | CloseOrder, day: dt.date, cfg: TradeConfig,
               strategy: str) -> OrderRequest:
    """The broker order of an engine order: one package, market or limit (the engine's net limit: mid +
    ``limit_offset`` × (natural − mid)), ``gtc`` limits cancelled by the trader after ``limit_ttl_bars``."""
    legs, units, intent = package_of(engine, order)
    contracts, ratio, ivs = engine.order_legs(order)
    q = engine.quotes(contracts, ivs)
    mid_net = float(np.sum(ratio * q.mid)) / units
    limit = None if order.limit is None else float(order.limit) / units  # the engine's limit is for all units
    cid = option_client_order_id(day, strategy, engine.settings.underlying, legs, intent, cfg.account)
    return OrderRequest(cid, engine.settings.underlying, "buy" if mid_net > 0 else "sell", float(units), day, mid_net,
                        order_type="limit" if limit is not None else "market", legs=legs, limit_price=limit,
                        time_in_force="gtc" if limit is not None else "day", intent=intent)  # type: ignore[arg-type]  # fmt: skip


def order_row(req: OrderRequest, cfg: TradeConfig, strategy: str, status: str, reason: str | None,
              risk_check: str | None, flow_run_id: str | None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    legs = [{"occ": g.occ, "underlying": g.underlying, "expiry": g.expiry.isoformat(), "strike": g.strike,
             "right": g.right, "ratio": g.ratio} for g in req.legs]  # fmt: skip
    return {"client_order_id": req.client_order_id, "trade_date": req.trade_date, "strategy": strategy,
            "broker": cfg.broker, "account": cfg.account, "symbol": req.symbol, "leg": req.intent, "side": req.side,
            "qty": float(req.qty), "order_type": req.order_type, "ref_price": float(req.ref_price),
            "target_qty": float("nan"), "position_before": float("nan"), "status": status, "broker_order_id": None,
            "filled_qty": 0.0, "filled_avg_price": None, "commission": 0.0, "reason": reason,
            "risk_check": risk_check, "flow_run_id": flow_run_id, "created_at": now, "updated_at": now,
            "legs": json.dumps(legs), "limit_price": req.limit_price, "time_in_force": req.time_in_force}  # fmt: skip


# ----------------------------------------------------------------------------------------- risk
def combo_of(engine: Any, order: OptionOrder, spot: float) -> Any:
    """The package as a :class:`risk.book.ComboOrder` (legs priced at mid, with their Greeks)."""
    from risk.book import ComboOrder, Greeks
    from risk.book import Order as RiskOrder

    contracts, ratio, ivs = engine.order_legs(order)
    q = engine.quotes(contracts, ivs)
    legs = tuple(RiskOrder(symbol=c.underlying, price=max(float(q.mid[i]), 0.0), qty=abs(float(ratio[i])),
                           side="buy" if ratio[i] > 0 else "sell", right=c.right, strike=c.strike, expiry=c.expiry,
                           underlying_price=spot, iv=float(q.iv[i]) if q.iv[i] > 0 else None,
                           greeks=Greeks(delta=float(q.delta[i]), gamma=float(q.gamma[i]), vega=float(q.vega[i]),
                                         theta=float(q.theta[i])))
                 for i, c in enumerate(contracts))  # fmt: skip
    max_loss = order.meta.get("max_loss")
    return ComboOrder(legs=legs, tag=order.tag,
                      max_loss=None if max_loss is None else float(max_loss) * MULTIPLIER * order.units)  # fmt: skip


def book_positions(engine: Any, spot: float) -> list[Any]:
    """The book's option legs as :class:`risk.book.Position` objects (marks and Greeks of the day)."""
    from risk.book import Greeks, Position

    out = []
    for pos in engine.account.positions.values():
        for leg in pos.legs:
            c = leg.contract
            mark = leg.mark if np.isfinite(leg.mark) else 0.0
            out.append(Position(symbol=c.underlying, price=max(float(mark), 0.0), qty=float(leg.qty), right=c.right,
                                strike=c.strike, expiry=c.expiry, underlying_price=spot,
                                greeks=Greeks(delta=leg.delta, gamma=leg.gamma, vega=leg.vega, theta=leg.theta)))  # fmt: skip
    if engine.account.shares:
        out.append(Position(symbol=engine.settings.underlying, price=spot, qty=float(engine.account.shares)))
    return out


# ----------------------------------------------------------------------------------------- the run
def run_option_trade(
    cfg: TradeConfig,
    lake: Lake | None = None,
    *,
    broker: Broker | None = None,
    strategy_config: OptionsBacktestConfig | None = None,
    chains: Any | None = None,
    limits: Any | None = None,
    dry_run: bool = False,
    flow_run_id: str | None = None,
    hook: Hook | None = None,
    broker_options: dict[str, Any] | None = None,
) -> OptionTradeResult:
    """Trade one day of the option strategy ``cfg.model`` (the registry's champion, or ``strategy_config``).
    ``broker``/``chains``/``limits`` override the defaults (tests)."""
    from execution.brokers.paper_options import OptionRules
    from execution.market_data import latest_trading_date
    from execution.trader import trading_session

    lake = lake or Lake()
    if strategy_config is not None:
        opt_cfg, label = strategy_config, f"{strategy_config.name} (config)"
    else:
        opt_cfg, label = load_option_strategy(cfg.model)
    check_live(opt_cfg)
    as_of = cfg.as_of or latest_trading_date(lake, [opt_cfg.underlying])
    options = dict(broker_options or {})
    if broker is None and cfg.broker == "paper":  # the paper broker fills with the strategy's own rules
        from backtests.options.engine import EngineSettings

        rules = {opt_cfg.underlying: OptionRules(EngineSettings.from_config(opt_cfg, "next_bar"), opt_cfg.market.rate)}
        options.update(option_rules=rules, chains=chains)
    with trading_session(cfg, lake, broker, options) as guarded:
        return _run(cfg, lake, guarded, opt_cfg, label, as_of, chains, limits, dry_run, flow_run_id,
                    hook or (lambda *_: None))  # fmt: skip


def _run(cfg: TradeConfig, lake: Lake, broker: GuardedBroker, opt_cfg: OptionsBacktestConfig, label: str,
         day: dt.date, chains: Any, limits: Any, dry_run: bool, flow_run_id: str | None, hook: Hook) -> OptionTradeResult:
    from backtests.options.runner import default_chain_source
    from execution.account_state import kill_switch

    strategy = cfg.strategy_name
    alerts: list[str] = []
    errors: list[str] = []
    path = book_path(cfg.broker, cfg.account, strategy)
    book = load_book(path) or new_book(opt_cfg, label, opt_cfg.initial_cash)  # the strategy's capital
    adopt_config(book, opt_cfg, label)
    if book.last_day is not None and day <= book.last_day:
        raise BrokerError(f"the book of {strategy} on {cfg.broker}/{cfg.account} already traded {book.last_day}; "
                          f"a run for {day} would repeat or rewrite history (the next trading day trades next)")  # fmt: skip
    engine = book.engine
    engine.attach(chains or default_chain_source(lake, getattr(engine.strategy, "horizon_days", None)))
    market = market_until(opt_cfg, lake, day, engine.strategy)
    missed = [d for d in market.trading_dates if book.last_day is not None and book.last_day < d < day]
    if missed:
        alerts.append(f"{len(missed)} trading day(s) without a run since {book.last_day}: their exits were not "
                      f"checked ({missed[0]} … {missed[-1]})")  # fmt: skip
    prepare_engine(book, market, day)

    # 1-2: the broker's day, then the book's bar
    if not dry_run:
        broker.sync(day)
    engine.begin_bar(bar_of(market, day))

    # 3: fills of the orders sent earlier, in the engine's order (as the backtest executes its pending list)
    booked: list[dict[str, Any]] = []
    fills: list[BrokerFill] = []
    updates: list[dict[str, Any]] = []
    known = {r["client_order_id"]: r for r in audit.orders(lake, cfg.broker, cfg.account, strategy=strategy).to_dict("records")}
    pending, engine.pending = engine.pending, []
    for order in pending:
        cid = getattr(order, "client_order_id", None)
        state = broker.get_order(cid) if cid and not isinstance(order, ShareOrder) else None
        if state is None or cid is None or isinstance(order, ShareOrder):  # never reached the broker (an outage at the submit): dropped, as a rejection
            engine.account.reject(day, getattr(order, "tag", "close"), "never reached the broker")
            if cid in known and not dry_run:
                updates.append({**known[cid], "status": NOT_SENT, "updated_at": dt.datetime.now(dt.UTC),
                                "reason": "never reached the broker (outage at the submit); the strategy decides again"})  # fmt: skip
            continue
        got = broker.fills(cid) if state.filled_qty > 0 else []
        fills += got
        if cid in known:
            updates.append(audit.with_broker_state(known[cid], state, got))
        if state.status in OPEN_STATUSES and order.limit is not None:
            engine.limit_not_filled(order)  # waits another bar, or is dropped after limit_ttl_bars
            if order in engine.pending or dry_run:
                continue
            state = broker.cancel(cid)  # limit_ttl_bars passed: cancel, as the backtest drops the order
            got = broker.fills(cid) if state.filled_qty > 0 else []
            fills += got
            if cid in known:
                updates.append(audit.with_broker_state(known[cid], state.with_status(
                    state.status, f"cancelled: limit not filled in {engine.settings.fill.limit_ttl_bars} bar(s)"), got))  # fmt: skip
            if state.filled_qty <= 0:
                continue
        elif state.status in OPEN_STATUSES:  # a market order still working (a live broker's partial fill)
            engine.pending.append(order)
            continue
        if state.filled_qty > 0:  # filled, or the filled part of a cancelled/expired order
            part = order if state.filled_qty >= order_units(engine, order) else partial(order, int(state.filled_qty))
            prices, fees = leg_prices(engine, part, got)
            engine.apply_fill(part, prices, fees)
            booked.append({"client_order_id": cid, "units": state.filled_qty, "fees": fees,
                           "prices": [round(p, 6) for p in prices]})  # fmt: skip
            if state.status != FILLED:
                alerts.append(f"{cid}: {state.status} after filling {state.filled_qty:g} of "
                              f"{order_units(engine, order)} unit(s); the book holds the filled part")  # fmt: skip
        else:  # refused or expired unfilled: recorded as the backtest records a rejection
            engine.account.reject(day, getattr(order, "tag", "close"), f"broker: {state.status}: {state.reason or ''}")
            if state.status == REJECTED:
                alerts.append(f"broker rejected {cid}: {state.reason}")

    # 4: expiries (the backtest's rule), the broker's events, reconciliation of option positions
    engine.settle_expiries()
    events: list[BrokerFill] = []
    if hasattr(broker.inner, "events"):
        events = [e for e in broker.inner.events(book.last_day) if e.symbol.startswith(_root_prefix(opt_cfg))
                  or e.symbol == opt_cfg.underlying]  # fmt: skip
    recon = reconcile_book(engine, broker.positions(), opt_cfg.underlying)
    if recon:
        alerts.append("option positions differ between the book and the broker: " + ", ".join(
            f"{d['symbol']} book {d['book']:+g} broker {d['broker']:+g}" for d in recon))  # fmt: skip

    # 5-6: decide with the backtest's code, then the risk gate
    tripped = kill_switch(cfg.broker, cfg.account)
    decided = engine.decide()
    spot = engine.bar.close
    rows: list[dict[str, Any]] = []
    requests: list[tuple[Order, OrderRequest]] = []
    risk_positions = book_positions(engine, spot)
    for order in decided:
        if isinstance(order, ShareOrder):
            errors.append(f"{strategy}: share orders ({order.reason}) are not traded by the option trader yet")
            continue
        req = request_of(engine, order, day, cfg, strategy)
        status, check = (PENDING_SUBMIT if not dry_run else "planned"), None
        if isinstance(order, OptionOrder):
            if tripped is not None:
                status, check = NOT_SENT, "kill switch on"
            else:
                verdict = validate_option(engine, order, spot, risk_positions, limits or option_limits(cfg))
                check = verdict.summary()
                if not verdict.passed:
                    status = RISK_REJECTED
        rows.append(order_row(req, cfg, strategy, status, None, check, flow_run_id))
        if status == PENDING_SUBMIT:
            requests.append((order, req))
        elif status in (RISK_REJECTED, NOT_SENT):
            engine.pending.remove(order)
            engine.account.reject(day, getattr(order, "tag", "close"), f"risk: {check}")
    peak = _peak(lake, cfg, strategy)
    if dry_run:
        return _result(cfg, strategy, label, True, day, rows, booked, events, engine, recon, alerts, errors, tripped,
                       peak)  # fmt: skip

    audit.record_fills(lake, cfg.broker, cfg.account, [*fills, *events])
    audit.record_orders(lake, [*updates, *rows], note=f"execution: option intents {strategy} {day}")
    hook("after_intents", [r["client_order_id"] for r in rows])

    # 7: submit
    final: dict[str, dict[str, Any]] = {}
    by_cid = {r["client_order_id"]: r for r in rows}
    for order, req in requests:
        order.client_order_id = req.client_order_id  # type: ignore[union-attr]
        row = by_cid[req.client_order_id]
        try:
            try:
                state = broker.submit(req)
            except DuplicateOrderError:
                state = broker.get_order(req.client_order_id)  # sent by an interrupted run: adopt it
            hook("after_submit", req.client_order_id)
        except CircuitOpenError as exc:
            errors.append(str(exc))
            final[req.client_order_id] = {**row, "status": NOT_SENT, "reason": f"not sent: {exc}"}
            engine.pending.remove(order)
            engine.account.reject(day, getattr(order, "tag", "close"), "not sent: circuit breaker open")
            continue
        except BrokerError as exc:
            errors.append(f"{req.client_order_id}: {exc}")
            final[req.client_order_id] = {**row, "reason": f"outcome unknown, reconciled at the next run: {exc}"}
            continue
        if state is not None:
            final[req.client_order_id] = audit.with_broker_state(row, state)
            if state.status == REJECTED:
                alerts.append(f"broker rejected {req.client_order_id}: {state.reason}")
    if cfg.option_replace_minutes > 0 and broker.name != "paper":  # live: walk working limits to the market
        walk_limits(cfg, engine, broker, requests, final, by_cid, errors)
    audit.record_orders(lake, final.values(), note=f"execution: option orders {strategy} {day}")

    # 8: the day's record and the book
    engine.end_bar()
    book.last_day = day
    save_book(path, book)
    audit.record_account(lake, cfg.broker, cfg.account, strategy, day, engine.account.equity(spot),
                         engine.account.cash, max(engine.account.equity(spot), peak),
                         _book_positions_map(engine), recon, tripped is not None)  # fmt: skip
    out = [{**by_cid[c], **final.get(c, {})} for c in by_cid]
    return _result(cfg, strategy, label, False, day, out, booked, events, engine, recon, alerts, errors, tripped,
                   peak)  # fmt: skip


def walk_limits(cfg: TradeConfig, engine: Any, broker: GuardedBroker, requests: list[tuple[Order, OrderRequest]],
                final: dict[str, dict[str, Any]], by_cid: dict[str, dict[str, Any]], errors: list[str]) -> None:
    """Cancel/replace after N minutes (live brokers, within the run): every ``option_replace_minutes`` a limit
    order still working unfilled is replaced by one whose net limit moved ``option_replace_fraction`` of the way
    to the natural price (buying at the asks, selling at the bids of the day's chain), at most
    ``option_replace_steps`` times; each replacement is an order of its own (``<id>-r<step>``) in the audit,
    the one it replaced is recorded ``cancelled: replaced by ...``."""
    import time

    from backtests.options import fills as fx

    for step in range(1, cfg.option_replace_steps + 1):
        time.sleep(cfg.option_replace_minutes * 60.0)
        for order, req in requests:
            cid = getattr(order, "client_order_id", None)
            if isinstance(order, ShareOrder) or req.order_type != "limit" or order.limit is None or cid not in final:
                continue
            try:
                state = broker.get_order(cid)
                if state is None or not state.is_open or state.filled_qty > 0:
                    continue
                contracts, ratio, ivs = engine.order_legs(order)
                q = engine.quotes(contracts, ivs)
                units = order_units(engine, order)
                limit, natural = float(order.limit) / units, fx.natural_net(q.bid, q.ask, ratio) / units
                new_limit = round(limit + cfg.option_replace_fraction * (natural - limit), 2)
                new_cid = f"{req.client_order_id[:92]}-r{step}"
                placed = broker.replace(cid, new_cid, new_limit)
            except BrokerError as exc:
                errors.append(f"{cid}: replace failed: {exc}")
                continue
            final[cid] = {**final[cid], "status": "cancelled", "reason": f"replaced by {new_cid}",
                          "updated_at": dt.datetime.now(dt.UTC)}  # fmt: skip
            row = {**by_cid[req.client_order_id], "client_order_id": new_cid, "limit_price": new_limit,
                   "reason": f"replaces {cid} (limit {limit:+.2f} → {new_limit:+.2f})"}  # fmt: skip
            by_cid[new_cid] = row
            final[new_cid] = audit.with_broker_state(row, placed)
            order.client_order_id = new_cid  # type: ignore[union-attr]
            order.limit = new_limit * units


def order_units(engine: Any, order: OptionOrder | CloseOrder) -> int:
    return package_of(engine, order)[1]


def partial(order: OptionOrder | CloseOrder, units: int) -> OptionOrder | CloseOrder:
    """The filled part of a partly filled package (the engine books whole packages)."""
    if isinstance(order, OptionOrder):
        return replace(order, units=units)
    raise BrokerError("a close order filled in part: close the rest by hand (the book closes whole positions)")


def leg_prices(engine: Any, order: OptionOrder | CloseOrder, got: list[BrokerFill]) -> tuple[list[float], float]:
    """Per-leg average fill prices in the engine's leg order, and the commission, from the broker's fills."""
    contracts, ratio, _ = engine.order_legs(order)
    legs = legs_from_contracts(contracts, [int(r) for r in ratio])
    by_symbol: dict[str, list[BrokerFill]] = {}
    for f in got:
        by_symbol.setdefault(f.symbol, []).append(f)
    prices = []
    for leg in legs:
        fs = by_symbol.get(leg.occ, [])
        qty = sum(f.qty for f in fs)
        if qty <= 0:
            raise BrokerError(f"the broker reported no fill of leg {leg.occ} of a filled package")
        prices.append(sum(f.qty * f.price for f in fs) / qty)
    return prices, float(sum(f.commission for f in got))


def validate_option(engine: Any, order: OptionOrder, spot: float, positions: list[Any], limits: Any) -> Any:
    """The pre-trade check of one option package: :func:`risk.limits.validate` with the package as a
    :class:`~risk.book.ComboOrder` against the book's positions and the strategy's equity."""
    from risk.book import Account
    from risk.limits import Limits, validate

    equity = engine.account.equity(spot)
    acct = Account(equity=max(equity, 1e-9), cash=engine.account.cash)
    lim = limits if limits is not None else Limits(max_gross_exposure=None, max_net_exposure=None, max_portfolio_risk=1.0)
    return validate(combo_of(engine, order, spot), acct, positions, lim)


def option_limits(cfg: TradeConfig) -> Any:
    """The limits of ``cfg.option_limits`` over the option trader's defaults (a bad field names itself)."""
    from risk.limits import Limits

    defaults: dict[str, Any] = {"max_gross_exposure": None, "max_net_exposure": None, "max_portfolio_risk": 1.0}
    return Limits(**{**defaults, **cfg.option_limits})


def reconcile_book(engine: Any, broker_positions: dict[str, float], underlying: str) -> list[dict[str, Any]]:
    """Option contracts of ``underlying`` where the book and the broker differ (signed contracts)."""
    from execution.option_orders import option_root

    book: dict[str, float] = {}
    for pos in engine.account.positions.values():
        for leg in pos.legs:
            occ = legs_from_contracts([leg.contract], [1])[0].occ
            book[occ] = book.get(occ, 0.0) + float(leg.qty)
    root = option_root(underlying)
    theirs = {s: q for s, q in broker_positions.items() if s.startswith(root) and s != underlying and len(s) > 15}
    out = []
    for sym in sorted(set(book) | set(theirs)):
        b, t = book.get(sym, 0.0), theirs.get(sym, 0.0)
        if abs(b - t) > 1e-9:
            out.append({"symbol": sym, "book": b, "broker": t})
    return out


def _root_prefix(cfg: OptionsBacktestConfig) -> str:
    from execution.option_orders import option_root

    return option_root(cfg.underlying)


def _book_positions_map(engine: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for pos in engine.account.positions.values():
        for leg in pos.legs:
            occ = legs_from_contracts([leg.contract], [1])[0].occ
            out[occ] = out.get(occ, 0.0) + float(leg.qty)
    if engine.account.shares:
        out[engine.settings.underlying] = float(engine.account.shares)
    return out


def _peak(lake: Lake, cfg: TradeConfig, strategy: str) -> float:
    h = audit.account_history(lake, cfg.broker, cfg.account, strategy=strategy)
    return float(h["equity"].max()) if not h.empty else 0.0


def _result(cfg: TradeConfig, strategy: str, label: str, dry_run: bool, day: dt.date, rows: list[dict[str, Any]],
            booked: list[dict[str, Any]], events: list[BrokerFill], engine: Any, recon: list[dict[str, Any]],
            alerts: list[str], errors: list[str], tripped: Any, peak: float = 0.0) -> OptionTradeResult:
    spot = engine.bar.close
    positions = [{"position_id": p.id, "tag": p.tag, "opened": p.opened, "units": p.units, "entry_net": p.entry_net,
                  "mark_net": p.mark_net(),
                  "legs": [f"{leg.qty:+d} {legs_from_contracts([leg.contract], [1])[0].occ}" for leg in p.legs]}
                 for p in engine.account.positions.values()]  # fmt: skip
    frame = pd.DataFrame(rows, columns=audit.ORDER_COLUMNS)
    equity = engine.account.equity(spot)
    return OptionTradeResult(day, cfg.broker, cfg.account, strategy, label, dry_run, frame, booked, events, positions,
                             equity, engine.account.cash, recon, alerts, errors, tripped is not None,
                             peak_equity=max(equity, peak))  # fmt: skip


def render_option(result: OptionTradeResult, console: Any) -> None:
    """Rich tables: the run's orders (packages and their legs), the book's open positions and equity."""
    from rich.table import Table

    title = f"{'DRY RUN — ' if result.dry_run else ''}{result.strategy} on {result.broker}/{result.account}, {result.as_of}"
    console.print(f"[bold]{title}[/]  strategy: {result.model}")
    t = Table(title=f"option orders ({len(result.orders)})")
    for col in ("intent", "side", "units", "legs", "net", "status", "why"):
        t.add_column(col, justify="right" if col in ("units", "net") else "left")
    for r in result.orders.itertuples(index=False):
        legs = " ".join(f"{g['ratio']:+d}×{g['occ']}" for g in json.loads(r.legs or "[]"))
        net = r.limit_price if isinstance(r.limit_price, float) and r.limit_price == r.limit_price else r.ref_price
        why = r.reason if isinstance(r.reason, str) and r.reason else (r.risk_check or "")
        t.add_row(r.leg, r.side, f"{r.qty:g}", legs, f"{net:,.2f}", r.status, str(why)[:60])
    console.print(t)
    p = Table(title="open positions of the strategy's book")
    for col in ("id", "tag", "opened", "units", "entry net", "mark net", "legs"):
        p.add_column(col)
    for pos in result.positions:
        p.add_row(str(pos["position_id"]), pos["tag"], str(pos["opened"]), str(pos["units"]),
                  f"{pos['entry_net']:,.2f}", f"{pos['mark_net']:,.2f}", " ".join(pos["legs"]))  # fmt: skip
    if not result.positions:
        p.add_row("(none)", "", "", "", "", "", "")
    console.print(p)
    console.print(f"book equity {result.equity:,.2f}  cash {result.cash:,.2f}  fills booked {len(result.booked)}  "
                  f"expiry events {len(result.events)}")  # fmt: skip
    for text in result.alerts:
        console.print(f"[yellow]alert:[/] {text}")
    for text in result.errors:
        console.print(f"[red]error:[/] {text}")


__all__ = ["OptionTradeResult", "package_of", "render_option", "request_of", "run_option_trade"]
