"""The option engine: what happens to the account on each bar that backtrader feeds it.

Per bar, in this order (all at the bar's end-of-day prices — an EOD chain has no intraday quotes):

1. interest on the cash balance since the previous bar, at the previous bar's rate, and the dividend yield
   on shares held (``market.dividend_yield``, continuous, the same yield the option prices assume);
2. marks: every open leg is priced from the chain (observed, else modeled; see :mod:`quotes`);
3. orders decided on the previous bar fill (``delay: next_bar``, the DESIGN §5 default);
4. legs whose expiry settles today (the expiry date, or the trading day before it when it is a holiday; a
   trading day the bars lack, e.g. a chain file missing, settles on the next bar at the reference index's
   official level of the expiry day when the market data has one, see ``market.settlement_symbol``):
   index options settle in cash at intrinsic value, equity options in the money by at least 0.01 are
   exercised/assigned into or out of shares at the strike, everything else expires worthless.  The
   settlement price is the bar's close, or its open with ``market.settlement_price: open`` (AM-settled
   index options such as the SPX monthlies);
5. managed exits (profit target, stop, time, DTE, regime shift) become close orders;
6. the strategy decides; its orders fill now (``delay: same_bar``) or on the next bar;
7. the day is recorded: equity, cash, margin requirement and excess, portfolio Greeks, leg-days priced
   from observed vs modeled quotes.

Opening orders that would leave the account with negative excess buying power (see :mod:`margin`) are
rejected and recorded, unless they raise it (a covered call written while the account is in a deficit);
closing orders are never blocked.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from backtests.options import fills as fx
from backtests.options import margin as mg
from backtests.options.account import Account, Leg, Position
from backtests.options.config import (
    ExitRules,
)
from backtests.options.context import Bar, Context, EngineSettings, Strategy
from backtests.options.contracts import MULTIPLIER, Contract, monthly_expiries, settlement_dates
from backtests.options.errors import ChainError, OrderError
from backtests.options.orders import CloseOrder, OptionOrder, Order, ShareOrder
from backtests.options.quotes import ChainSnapshot, ChainSource, LegQuotes, Market
from risk.position_sizing import SizingSpec

EXERCISE_THRESHOLD = 0.01  # OCC exercise by exception: in the money by at least one cent


class Engine:
    # trading days the bars lack -> the reference index's (open, close) (set by the runner; see
    # backtests.options.market.reference_levels); a class default so engines pickled before it load
    settlement_levels: Mapping[dt.date, tuple[float, float]] = MappingProxyType({})

    def __init__(self, settings: EngineSettings, chains: ChainSource, strategy: Strategy, initial_cash: float,
                 calendar: Sequence[dt.date]) -> None:
        self.settings = settings
        self.chains = chains
        self.strategy = strategy
        self.account = Account(initial_cash)
        self.initial_cash = float(initial_cash)
        self.calendar = np.asarray([np.datetime64(d, "D") for d in calendar], dtype="datetime64[D]")
        self.calendar.sort()
        if self.calendar.size:
            first, last = self.calendar[0].astype(dt.date), self.calendar[-1].astype(dt.date)
            months = monthly_expiries(first, last)
            self.monthly_settlements = {d for d in settlement_dates(months, self.calendar) if d is not None}
        else:
            self.monthly_settlements = set()
        self._settle_cache: dict[dt.date, dt.date | None] = {}
        self.pending: list[Order] = []
        self.skips: list[dict[str, Any]] = []
        self.daily: list[dict[str, Any]] = []
        self.leg_days = {"observed": 0, "modeled": 0}
        self.bars_seen = 0
        self.bar = Bar(date=dt.date.min, close=float("nan"))
        self._prev: Bar | None = None
        self._snap: ChainSnapshot | None = None
        self._snap_loaded = False
        self._quote_cache: dict[Contract, tuple[float, ...]] = {}
        self.ctx = Context(self)
        self.sizing_inputs: dict[dt.date, dict[str, float]] = {}  # see sizing_inputs()

    # ------------------------------------------------------------------ persistence (live trading)
    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the chain source and the bar's caches (a live trader keeps its engine between
        runs and gives it the chain source again with :meth:`attach`)."""
        state = dict(self.__dict__)
        state.update(chains=None, _snap=None, _snap_loaded=False, _quote_cache={})
        return state

    def attach(self, chains: ChainSource) -> None:
        self.chains = chains

    # ------------------------------------------------------------------ market access
    def market(self) -> Market:
        return Market(self.bar.date, self.bar.close, self.bar.rate, self.settings.dividend_yield)

    def snapshot(self) -> ChainSnapshot | None:
        if not self._snap_loaded:
            self._snap_loaded = True
            shared = getattr(self.chains, "snapshot", None)  # a SnapshotSource shares one per day and market
            if shared is not None:
                snap = shared(self.settings.underlying, self.bar.date, self.settings.chain_source, self.market())
                self._snap = snap if snap is not None and len(snap) else None
                return self._snap
            frame = self.chains.chain(self.settings.underlying, self.bar.date, self.settings.chain_source)
            if frame is not None and len(frame):
                self._snap = ChainSnapshot(frame, self.market(), self.settings.underlying)
        return self._snap

    def quotes(self, contracts: Sequence[Contract], last_iv: Sequence[float] | None = None,
               settling_ok: bool = False) -> LegQuotes:
        """Quotes of ``contracts`` today (cached per bar).  With ``chain.source: observed`` a contract the day's
        chain does not quote is an error (``settling_ok``: except one that settles today)."""
        q = self._quotes(contracts, last_iv)
        if self.settings.chain_source == "observed" and q.fallback.any():
            for c, missing in zip(contracts, q.fallback, strict=True):
                if missing and not (settling_ok and self.settle_date(c.expiry) == self.bar.date):
                    raise ChainError(
                        f"chain.source observed: no quote for {c.label()} on {self.bar.date} in option_quotes "
                        "(use chain.source: auto to price gaps with the model)")
        return q

    def _quotes(self, contracts: Sequence[Contract], last_iv: Sequence[float] | None = None) -> LegQuotes:
        missing = [c for c in contracts if c not in self._quote_cache]
        if missing:
            ivs = None
            if last_iv is not None:
                by = dict(zip(contracts, last_iv, strict=True))
                ivs = [by[c] for c in missing]
            snap = self.snapshot()
            if snap is None:
                snap = ChainSnapshot(pd.DataFrame(columns=["expiry", "strike", "right", "bid", "ask"]),
                                     self.market(), self.settings.underlying)
            q = snap.quotes(missing, ivs)
            for i, c in enumerate(missing):
                self._quote_cache[c] = (q.bid[i], q.ask[i], q.mid[i], q.iv[i], q.delta[i], q.gamma[i], q.vega[i],
                                        q.theta[i], float(q.modeled[i]), float(q.fallback[i]))
        rows = np.array([self._quote_cache[c] for c in contracts], dtype=float).reshape(len(contracts), 10)
        return LegQuotes(bid=rows[:, 0], ask=rows[:, 1], mid=rows[:, 2], iv=rows[:, 3], delta=rows[:, 4],
                         gamma=rows[:, 5], vega=rows[:, 6], theta=rows[:, 7], modeled=rows[:, 8] > 0,
                         fallback=rows[:, 9] > 0)

    def use_settlement_levels(self, levels: Mapping[dt.date, tuple[float, float]]) -> None:
        """Settle legs expiring on days the bars lack at these reference levels (see :meth:`settle_date`); the
        monthly rolls follow (a strategy rolling on the monthly settlement rolls on the bar it settles on)."""
        self.settlement_levels = MappingProxyType(dict(levels))
        self._settle_cache = {}
        if self.calendar.size:
            first, last = self.calendar[0].astype(dt.date), self.calendar[-1].astype(dt.date)
            days = (self.settle_date(m) for m in monthly_expiries(first, last))
            self.monthly_settlements = {d for d in days if d is not None}

    def settle_date(self, expiry: dt.date) -> dt.date | None:
        """The bar a leg expiring on ``expiry`` settles on: the expiry's, else the last before it (a holiday
        expiry), except for a trading day the bars lack that has a reference level: the first bar after it."""
        if expiry not in self._settle_cache:
            day = settlement_dates([expiry], self.calendar)[0]
            if day is not None and day < expiry and expiry in self.settlement_levels:
                i = int(np.searchsorted(self.calendar, np.datetime64(expiry, "D"), side="right"))
                if i < self.calendar.size:
                    day = self.calendar[i].astype(dt.date)
            self._settle_cache[expiry] = day
        return self._settle_cache[expiry]

    def closing_ids(self) -> set[int]:
        return {o.position_id for o in self.pending if isinstance(o, CloseOrder)}

    # ------------------------------------------------------------------ the bar
    def on_bar(self, bar: Bar) -> None:
        """One bar of a backtest: the phases below in order.  A live trader calls the same phases but books
        the broker's fills (:meth:`apply_fill`) instead of :meth:`execute_pending`."""
        self.begin_bar(bar)
        self.execute_pending()
        self.settle_expiries()
        self.decide()
        self.end_bar()

    def begin_bar(self, bar: Bar) -> None:
        """Steps 1-2: the new bar, interest and dividends since the previous one, marks of every leg."""
        self.bar = bar
        self.bars_seen += 1
        self._snap, self._snap_loaded, self._quote_cache = None, False, {}
        self._accrue_interest()
        self._mark()

    def execute_pending(self) -> None:
        """Step 3: orders decided on an earlier bar fill (simulated against this bar's quotes)."""
        pending, self.pending = self.pending, []
        for order in pending:
            self._execute(order)

    def settle_expiries(self) -> None:
        """Step 4: legs whose expiry settles today."""
        self._settle_expiries()

    def decide(self) -> list[Order]:
        """Steps 5-6: the managed exits (profit target, stop, time, DTE, regime shift), then the strategy's
        orders, each routed (pending for the next bar, or filled now with ``delay: same_bar``); returns them."""
        exits = self._managed_exits()
        self._route(exits)
        orders = self.strategy.on_bar(self.ctx)
        self._route(orders)
        return [*exits, *orders]

    def end_bar(self) -> None:
        """Step 7: the day's record."""
        self._record()
        self._prev = self.bar

    def _route(self, orders: Sequence[Order]) -> None:
        for order in orders:
            order.created = self.bar.date
            if isinstance(order, OptionOrder | CloseOrder) and self.settings.fill.mode == "limit":
                order.bars_left = self.settings.fill.limit_ttl_bars
                order.limit = self._limit_for(order)
            if self.settings.delay == "same_bar":
                self._execute(order)
            else:
                self.pending.append(order)

    # ------------------------------------------------------------------ interest and marks
    def _accrue_interest(self) -> None:
        prev = self._prev
        if prev is None:
            return
        days = (self.bar.date - prev.date).days
        cash, shares = self.account.cash, self.account.shares
        rate = prev.rate if cash >= 0 else prev.rate + self.settings.interest.borrow_spread
        if self.settings.interest.on_cash and days > 0 and cash != 0 and math.isfinite(rate):
            self.account.accrue(cash * math.expm1(rate * days / 365.0))
        q = self.settings.dividend_yield
        if days > 0 and shares != 0 and q != 0:  # a short position pays them
            self.account.receive_dividends(shares * prev.close * math.expm1(q * days / 365.0))

    def _mark(self) -> None:
        # a leg past its expiry (settled on this bar at the expiry day's reference level, see settle_date)
        # keeps its last mark: no chain quotes an expired contract
        legs = [leg for p in self.account.positions.values() for leg in p.legs if leg.contract.expiry >= self.bar.date]
        if not legs:
            return
        q = self.quotes([leg.contract for leg in legs], [leg.iv if math.isfinite(leg.iv) else leg.entry_iv
                                                          for leg in legs], settling_ok=True)
        for i, leg in enumerate(legs):
            leg.mark, leg.iv, leg.delta = float(q.mid[i]), float(q.iv[i]), float(q.delta[i])
            leg.gamma, leg.vega, leg.theta, leg.modeled = float(q.gamma[i]), float(q.vega[i]), float(q.theta[i]), \
                bool(q.modeled[i])

    # ------------------------------------------------------------------ execution
    def order_legs(self, order: OptionOrder | CloseOrder) -> tuple[list[Contract], np.ndarray, list[float]]:
        """Contracts, signed contracts to trade, last IVs (for the fallback model)."""
        if isinstance(order, OptionOrder):
            contracts = [leg.contract for leg in order.legs]
            ratio = np.array([leg.ratio * order.units for leg in order.legs], dtype=float)
            return contracts, ratio, [float("nan")] * len(contracts)
        pos = self.account.positions[order.position_id]
        return ([leg.contract for leg in pos.legs], np.array([-leg.qty for leg in pos.legs], dtype=float),
                [leg.iv for leg in pos.legs])

    def _limit_for(self, order: OptionOrder | CloseOrder) -> float | None:
        if isinstance(order, CloseOrder) and order.position_id not in self.account.positions:
            return None
        contracts, ratio, ivs = self.order_legs(order)
        q = self.quotes(contracts, ivs)
        return fx.limit_price(q.bid, q.ask, ratio, self.settings.fill.limit_offset, q.mid)

    def _execute(self, order: Order) -> None:
        if isinstance(order, ShareOrder):
            self._execute_shares(order)
            return
        if isinstance(order, CloseOrder) and order.position_id not in self.account.positions:
            return  # settled or closed meanwhile
        contracts, ratio, ivs = self.order_legs(order)
        if any((s := self.settle_date(c.expiry)) is not None and s < self.bar.date for c in contracts) or any(
                c.expiry < self.bar.date for c in contracts):
            self.account.reject(self.bar.date, self._tag(order), "contract expired before the order could fill")
            return
        q = self.quotes(contracts, ivs)
        prices = fx.package_prices(q.bid, q.ask, ratio, self.settings.fill, order.limit, q.mid)
        if prices is None:  # a limit the market did not reach
            self.limit_not_filled(order)
            return
        fees = fx.option_commission(float(np.abs(ratio).sum()), self.settings.commissions)
        self._apply(order, contracts, ratio, prices, fees, q)

    def limit_not_filled(self, order: OptionOrder | CloseOrder) -> None:
        """One more bar without a fill: the order waits, or is cancelled after ``limit_ttl_bars``."""
        order.bars_left -= 1
        if order.bars_left > 0:
            self.pending.append(order)
        else:
            limit = order.limit if order.limit is not None else float("nan")
            self.account.reject(self.bar.date, self._tag(order), "limit not filled", limit=limit)

    def _apply(self, order: OptionOrder | CloseOrder, contracts: list[Contract], ratio: np.ndarray,
               prices: np.ndarray, fees: float, q: LegQuotes, check_margin: bool = True) -> None:
        if isinstance(order, CloseOrder):
            self._close(self.account.positions[order.position_id], prices, fees, q, order.reason)
        else:
            self._open(order, contracts, ratio, prices, fees, q, check_margin)

    def apply_fill(self, order: OptionOrder | CloseOrder, prices: Sequence[float], fees: float) -> None:
        """Book a fill a broker reported for ``order`` (live trading): the same account changes as a simulated
        fill, at the broker's prices and fees; the broker already accepted it, so no margin check."""
        if isinstance(order, CloseOrder) and order.position_id not in self.account.positions:
            return
        contracts, ratio, ivs = self.order_legs(order)
        q = self.quotes(contracts, ivs)
        self._apply(order, contracts, ratio, np.asarray(prices, dtype=float), float(fees), q, check_margin=False)

    @staticmethod
    def _tag(order: Order) -> str:
        return order.tag if isinstance(order, OptionOrder) else "close" if isinstance(order, CloseOrder) else "shares"

    def _open(self, order: OptionOrder, contracts: list[Contract], qty: np.ndarray, prices: np.ndarray,
              fees: float, q: LegQuotes, check_margin: bool = True) -> None:
        per_unit = qty / order.units
        # a broker's fill (check_margin False) was accepted by the broker: the book takes it as it is
        why = self._open_refusal(order, contracts, qty, prices, fees, q) if check_margin else None
        units = order.units
        if why is not None and order.fit and order.units > 1:
            lo, hi = 0, order.units - 1  # the largest number of units that fits (the checks are monotone in it)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                n = per_unit * mid
                ok = self._open_refusal(order, contracts, n, prices, self._option_fees(n), q) is None
                lo, hi = (mid, hi) if ok else (lo, mid - 1)
            if lo > 0:
                units, why = lo, None
        if why is not None:
            reason, details = why
            self.account.reject(self.bar.date, order.tag, reason, **details)
            return
        qty = per_unit * units
        fees = self._option_fees(qty)
        legs = self._legs(contracts, qty, prices, fees, q)
        entry_net = float(np.sum(qty * prices)) / units
        sources = ["modeled" if m else "observed" for m in q.modeled]
        reason = order.reason if units == order.units else f"{order.reason} (fitted: {units} of {order.units})"
        self.account.open_position(self.bar.date, order.tag, legs, units, entry_net, self.bar.regime,
                                   order.exits, order.meta, fees, self.bar.close, reason, sources)

    def _option_fees(self, qty: np.ndarray) -> float:
        return fx.option_commission(float(np.abs(qty).sum()), self.settings.commissions)

    def _legs(self, contracts: list[Contract], qty: np.ndarray, prices: np.ndarray, fees: float,
              q: LegQuotes) -> list[Leg]:
        spot, total = self.bar.close, float(np.abs(qty).sum())
        return [
            Leg(c, int(qty[i]), self.bar.date, float(prices[i]), fees * abs(qty[i]) / total,
                float(q.iv[i]), float(q.delta[i]), spot, mark=float(q.mid[i]), iv=float(q.iv[i]),
                delta=float(q.delta[i]), gamma=float(q.gamma[i]), vega=float(q.vega[i]), theta=float(q.theta[i]),
                modeled=bool(q.modeled[i]))
            for i, c in enumerate(contracts)
        ]

    def _open_refusal(self, order: OptionOrder, contracts: list[Contract], qty: np.ndarray, prices: np.ndarray,
                      fees: float, q: LegQuotes) -> tuple[str, dict[str, float]] | None:
        """Why an opening of ``qty`` contracts per leg cannot fill now (reason, details), or ``None``."""
        new = Position(-1, order.tag, self._legs(contracts, qty, prices, fees, q), self.bar.date, 1, 0.0,
                       self.bar.regime)
        if order.covered:
            need = 0.0
            for pos in [*self.account.positions.values(), new]:
                pos_qty, _, phi, _ = pos.arrays()
                need += mg.short_calls_to_cover(pos_qty, phi)
            held = max(self.account.shares, 0.0)
            if need > held + 1e-9:
                return "short calls not covered by shares held", {"shares_needed": need, "shares_held": held}
        cash_after = self.account.cash - float(np.sum(qty * MULTIPLIER * prices)) - fees
        excess, req = self.excess(extra=new, cash=cash_after)
        if self.settings.margin.enabled and excess < -1e-6 and excess < self.excess()[0] - 1e-9:
            return "insufficient buying power", {"requirement": req, "excess_after": excess,
                                                 "equity": self.account.equity(self.bar.close)}
        from backtests.options.limits import refusal  # opt-in pre-trade risk limits (None when not set)

        return refusal(self, contracts, qty, prices, q, order.tag)

    def _close(self, pos: Position, prices: np.ndarray, fees: float, q: LegQuotes, reason: str) -> None:
        total = float(np.abs([leg.qty for leg in pos.legs]).sum())
        for i, leg in enumerate(list(pos.legs)):
            self.account.close_leg(self.bar.date, pos, leg, float(prices[i]), fees * abs(leg.qty) / total,
                                   float(q.iv[i]), float(q.delta[i]), self.bar.close, "close", reason,
                                   "modeled" if q.modeled[i] else "observed")

    def _execute_shares(self, order: ShareOrder) -> None:
        side = 1.0 if order.shares > 0 else -1.0
        price = self.bar.close + side * self.settings.fill.share_slippage
        reducing = self.account.shares != 0 and np.sign(self.account.shares) != side
        shares = order.shares
        if not reducing and self.settings.margin.enabled:
            acc = self.account

            def excess_after(n: int) -> tuple[float, float]:
                fees = fx.share_commission(n, self.settings.commissions)
                return self.excess(cash=acc.cash - n * price - fees, shares=acc.shares + n)

            floor = order.reserve if order.fit_lot else 0.0
            excess, req = excess_after(shares)
            if excess < floor - 1e-6 and order.fit_lot > 0 and side > 0:
                lots = shares // order.fit_lot
                while lots > 0 and excess_after(lots * order.fit_lot)[0] < floor - 1e-6:
                    lots -= 1
                if lots > 0:
                    shares = lots * order.fit_lot
                    excess, req = excess_after(shares)
            if excess < floor - 1e-6:
                acc.reject(self.bar.date, "shares", "insufficient buying power", requirement=req, excess_after=excess,
                           equity=acc.equity(self.bar.close))
                return
        fees = fx.share_commission(shares, self.settings.commissions)
        reason = order.reason if shares == order.shares else f"{order.reason} (fitted: {shares} of {order.shares})"
        self.account.trade_shares(self.bar.date, float(shares), price, fees, reason)

    # ------------------------------------------------------------------ margin
    def excess(self, extra: Position | None = None, cash: float | None = None,
               shares: float | None = None) -> tuple[float, float]:
        """(excess buying power, total requirement) of the account, optionally with a hypothetical position,
        cash balance and share count."""
        acc, spot, cfg = self.account, self.bar.close, self.settings.margin
        cash = acc.cash if cash is None else cash
        shares = acc.shares if shares is None else shares
        positions = [*acc.positions.values(), *([extra] if extra is not None else [])]
        cover_left = max(shares, 0.0)
        req = mg.stock_requirement(shares, spot, cfg)
        value = 0.0
        for pos in positions:
            qty, strike, phi, mark = pos.arrays()
            need = mg.short_calls_to_cover(qty, phi)
            cover = min(need, cover_left)
            cover_left -= cover
            req += mg.position_requirement(qty, strike, phi, mark, spot, cfg, cover)
            value += float(np.sum(qty * MULTIPLIER * mark))
        equity = cash + shares * spot + value
        return equity - req, req

    # ------------------------------------------------------------------ expiry
    def _settle_expiries(self) -> None:
        today, spot = self.bar.date, self.bar.close
        if self.settings.settlement_price == "open" and math.isfinite(self.bar.open):
            spot = self.bar.open
        for pos in list(self.account.positions.values()):
            for leg in list(pos.legs):
                expiry = leg.contract.expiry
                settle = self.settle_date(expiry)
                if settle is None or settle > today:
                    continue
                level = spot
                if settle > expiry and expiry in self.settlement_levels:  # the expiry's own official level
                    ref_open, ref_close = self.settlement_levels[expiry]
                    level = ref_open if self.settings.settlement_price == "open" else ref_close
                self._settle_leg(pos, leg, level)
                if pos.id not in self.account.positions:
                    break

    def _settle_leg(self, pos: Position, leg: Leg, spot: float) -> None:
        c, day = leg.contract, self.bar.date
        out = settle(c, leg.qty, spot, self.settings.settlement, self.settings.commissions.exercise_fee)
        src = "modeled" if leg.modeled else "observed"
        delta = 0.0 if out.action == "expire" else c.phi
        self.account.close_leg(day, pos, leg, out.price, out.fee, leg.iv, delta, spot, out.action, "expiry", src)
        if out.shares:
            self.account.trade_shares(day, out.shares, spot, 0.0, f"{out.action} {c.label()}")

    # ------------------------------------------------------------------ managed exits
    def _managed_exits(self) -> list[Order]:
        out: list[Order] = []
        closing = self.closing_ids()
        bar = self.bar
        for pos in self.account.positions.values():
            rules = pos.exits
            if rules is None or pos.id in closing or pos.opened >= bar.date:
                continue
            reason = exit_reason(pos, bar, rules)
            if reason:
                out.append(CloseOrder(pos.id, reason))
        return out

    # ------------------------------------------------------------------ records
    def _record(self) -> None:
        acc, bar = self.account, self.bar
        delta = acc.shares
        gamma = vega = theta = 0.0
        legs = 0
        short_calls = long_puts = calls_to_cover = 0.0
        for pos in acc.positions.values():
            qty, _, phi, _ = pos.arrays()
            short_calls += float(-qty[(phi > 0) & (qty < 0)].sum())
            long_puts += float(qty[(phi < 0) & (qty > 0)].sum())
            calls_to_cover += mg.short_calls_to_cover(qty, phi)
            for leg in pos.legs:
                n = leg.qty * MULTIPLIER
                delta += n * leg.delta
                gamma += n * leg.gamma
                vega += n * leg.vega
                theta += n * leg.theta
                self.leg_days["modeled" if leg.modeled else "observed"] += 1
                legs += 1
        excess, req = self.excess()
        equity = acc.equity(bar.close)
        self.daily.append({
            "date": bar.date, "underlying": bar.close, "cash": acc.cash, "shares": acc.shares,
            "shares_value": acc.shares * bar.close, "options_value": acc.options_value(), "equity": equity,
            "requirement": req, "excess": excess, "delta": delta, "gamma": gamma, "vega": vega, "theta": theta,
            "open_positions": len(acc.positions), "open_legs": legs, "fees_cum": acc.fees,
            "interest_cum": acc.interest, "dividends_cum": acc.dividends, "rate": bar.rate, "regime": bar.regime,
            "iv_rank": bar.iv_rank, "short_calls": short_calls, "long_puts": long_puts,
            "uncovered_calls": max(0.0, calls_to_cover - max(acc.shares, 0.0)) / MULTIPLIER,
            "protected_shares": min(max(acc.shares, 0.0), long_puts * MULTIPLIER),
        })


@dataclass(frozen=True)
class Settlement:
    """What happens to ``qty`` contracts at expiry: ``action`` (expire, cash_settle, exercise, assign), the
    option's closing ``price`` per share (intrinsic value or 0), the exercise ``fee`` and the ``shares``
    delivered (signed: + received)."""

    action: str
    price: float
    fee: float
    shares: float


def settle(contract: Contract, qty: float, spot: float, settlement: str, exercise_fee: float) -> Settlement:
    """The expiry rule of the backtester and of the paper broker: in the money by at least
    :data:`EXERCISE_THRESHOLD` (OCC exercise by exception) settles — in cash at intrinsic value (index
    options) or by delivery of the shares at the strike — everything else expires worthless."""
    intrinsic = contract.intrinsic(spot)
    if intrinsic < EXERCISE_THRESHOLD:
        return Settlement("expire", 0.0, 0.0, 0.0)
    if settlement == "cash":
        return Settlement("cash_settle", intrinsic, 0.0, 0.0)
    action = "exercise" if qty > 0 else "assign"
    # long call/short put receive shares, short call/long put deliver
    return Settlement(action, intrinsic, exercise_fee * abs(qty), qty * MULTIPLIER * contract.phi)


def sizing_inputs(spec: SizingSpec | None, bars: pd.DataFrame) -> dict[dt.date, dict[str, float]]:
    """Per date, what :func:`backtests.options.strategies.base.config_sized_contracts` reads, from the
    underlying's bars up to that date: ``vol_factor`` (target / realized volatility, capped) and ``atr``."""
    if spec is None or spec.method not in ("vol_target", "atr_risk") or bars.empty:
        return {}
    from backtests.equity.indicators import atr
    from risk.position_sizing import SizingSpec as _Spec
    from risk.position_sizing import equity_fractions

    close = bars["close"].to_numpy(dtype=float)
    if spec.method == "vol_target":
        factor = equity_fractions(_Spec(method="vol_target", target_vol=spec.target_vol,
                                        vol_window=spec.vol_window, cap=spec.cap), close)  # fmt: skip
        values = {"vol_factor": factor}
    else:
        high = bars["high"].to_numpy(dtype=float) if "high" in bars else close
        low = bars["low"].to_numpy(dtype=float) if "low" in bars else close
        values = {"atr": atr(high[:, None], low[:, None], close[:, None], spec.atr_period)[:, 0]}
    dates = [pd.Timestamp(d).date() for d in bars.index]
    return {d: {k: float(v[i]) for k, v in values.items()} for i, d in enumerate(dates)}


def exit_reason(pos: Position, bar: Bar, rules: ExitRules) -> str | None:
    """The first managed exit that fires for ``pos`` on ``bar`` (marks at mid), or ``None``."""
    entry = pos.entry_net
    basis = abs(entry)
    pnl = pos.mark_net() - entry  # per unit; for a credit (entry < 0) the liability shrinking is profit
    if basis > 0 and rules.stop_loss is not None and pnl <= -rules.stop_loss * basis:
        return "stop_loss"
    if basis > 0 and rules.profit_target is not None and pnl >= rules.profit_target * basis:
        return "profit_target"
    expiry = pos.first_expiry
    if rules.dte_exit is not None and (expiry - bar.date).days <= rules.dte_exit:
        return "dte_exit"
    life = (expiry - pos.opened).days
    if rules.time_exit is not None and life > 0 and (bar.date - pos.opened).days >= rules.time_exit * life:
        return "time_exit"
    if rules.exit_regimes and bar.regime in rules.exit_regimes and bar.regime != pos.regime:
        return "regime_shift"
    return None


__all__ = ["Bar", "Context", "Engine", "EngineSettings", "OrderError", "Strategy", "exit_reason"]
