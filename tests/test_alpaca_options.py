"""Option orders on Alpaca at the HTTP boundary: a local server that answers like Alpaca's trading API for
options (single legs by OCC symbol, ``mleg`` orders with 2-4 legs and one net price, per-leg fills,
``OPASN``/``OPEXP`` account activities) — including a partial fill, a refusal and an outage in the middle
of an order (the POST reaches Alpaca, the answer never comes back) — and an option strategy traded on it
for several days by the option trader."""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from werkzeug import Request, Response

from execution.brokers.base import ACCEPTED, PARTIALLY_FILLED, REJECTED, OrderRequest
from execution.errors import DuplicateOrderError
from execution.option_orders import OptionLeg, parse_occ
from quantlake.lake import Lake
from quantlake.tables import EQUITY_BARS
from tests.test_alpaca_broker import KEY, OPEN, SECRET, FakeAlpaca, _now

EXP = dt.date(2024, 3, 15)
CONDOR = (OptionLeg("SPY", EXP, 460.0, "P", 1), OptionLeg("SPY", EXP, 470.0, "P", -1),
          OptionLeg("SPY", EXP, 510.0, "C", -1), OptionLeg("SPY", EXP, 520.0, "C", 1))  # fmt: skip


class FakeAlpacaOptions(FakeAlpaca):
    """Adds Alpaca's option order shapes: a ``simple`` order on an OCC symbol (``asset_class`` us_option) and
    an ``mleg`` order whose top level has no symbol or side and whose ``legs`` are orders of their own
    (symbol, side, ``ratio_qty``, ``position_intent``, their own fills); account activities."""

    def __init__(self) -> None:
        super().__init__(cash=1_000_000.0)
        self.bodies: list[dict[str, Any]] = []
        self.activities: list[dict[str, Any]] = []
        self.hang_next_post = 0.0  # seconds the next POST waits before answering (an outage mid-order)
        self.refuse_symbols: set[str] = set()
        self.patches: list[dict[str, Any]] = []

    def post_order(self, request: Request) -> Response:
        body = request.get_json()
        if body.get("order_class") != "mleg" and parse_occ(body.get("symbol", "")) is None:
            return super().post_order(request)
        if (denied := self._auth(request)) is not None:
            return denied
        cid = body["client_order_id"]
        self.posts.append(cid)
        self.bodies.append(body)
        if self.by_client(cid) is not None:
            return self._json({"code": 40010001, "message": "client_order_id must be unique"}, 422)
        symbols = [leg["symbol"] for leg in body.get("legs", [])] or [body["symbol"]]
        if self.refuse_symbols & set(symbols):
            return self._json({"code": 40310000, "message": "insufficient options buying power"}, 403)
        now = _now()
        common = {"created_at": now, "updated_at": now, "submitted_at": now, "filled_at": None, "expired_at": None,
                  "canceled_at": None, "time_in_force": body["time_in_force"], "extended_hours": False,
                  "status": "accepted", "filled_qty": "0", "filled_avg_price": None}  # fmt: skip
        order: dict[str, Any] = {"id": str(uuid.uuid4()), "client_order_id": cid, "qty": str(body["qty"]),
                                 "type": body["type"], "order_type": body["type"],
                                 "limit_price": body.get("limit_price"), **common}  # fmt: skip
        if body.get("order_class") == "mleg":
            order.update(order_class="mleg", symbol="", asset_class="", side="", legs=[
                {"id": str(uuid.uuid4()), "client_order_id": str(uuid.uuid4()), "symbol": leg["symbol"],
                 "asset_class": "us_option", "side": leg["side"], "position_intent": leg["position_intent"],
                 "ratio_qty": str(leg["ratio_qty"]), "qty": str(float(leg["ratio_qty"]) * float(body["qty"])),
                 "order_class": "mleg", **common} for leg in body["legs"]])  # fmt: skip
        else:
            order.update(order_class="simple", symbol=body["symbol"], asset_class="us_option", side=body["side"],
                         position_intent=body.get("position_intent"), legs=None)  # fmt: skip
        self.orders[order["id"]] = order
        if self.hang_next_post:
            wait, self.hang_next_post = self.hang_next_post, 0.0
            time.sleep(wait)  # the order is placed; the client gives up before the answer
        return self._json(order)

    def fill_option(self, cid: str, prices: dict[str, float], units: float | None = None) -> None:
        """Fill ``units`` (default: the rest) of an option order at per-leg ``prices`` (OCC → price)."""
        o = self.by_client(cid)
        assert o is not None
        done = float(o["filled_qty"])
        n = float(o["qty"]) - done if units is None else units
        total = done + n
        legs = o["legs"] or [dict(o, ratio_qty="1")]
        for leg in legs:
            q = float(leg["ratio_qty"]) * n
            prev_q = float(leg["filled_qty"])
            price = prices[leg["symbol"]]
            avg = (prev_q * float(leg["filled_avg_price"] or 0.0) + q * price) / (prev_q + q)
            leg.update(filled_qty=str(prev_q + q), filled_avg_price=str(avg), filled_at=_now(),
                       status="filled" if total >= float(o["qty"]) else "partially_filled")  # fmt: skip
            sign = 1 if leg["side"] == "buy" else -1
            self.positions[leg["symbol"]] = self.positions.get(leg["symbol"], 0.0) + sign * q
            self.cash -= sign * q * price * 100
        net = sum((1 if g["side"] == "buy" else -1) * float(g["ratio_qty"]) * float(g["filled_avg_price"]) for g in legs)
        o.update(filled_qty=str(total), filled_avg_price=str(net), filled_at=_now(), updated_at=_now(),
                 status="filled" if total >= float(o["qty"]) else "partially_filled")  # fmt: skip

    def expire(self, cid: str) -> None:
        o = self.by_client(cid)
        assert o is not None
        o.update(status="expired", expired_at=_now(), updated_at=_now())

    def list_positions(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return self._json([
            {"asset_id": str(uuid.uuid4()), "symbol": s, "exchange": "", "qty": str(abs(q)),
             "asset_class": "us_option" if parse_occ(s) else "us_equity", "side": "long" if q > 0 else "short",
             "avg_entry_price": "1", "cost_basis": "1"} for s, q in self.positions.items() if q
        ])  # fmt: skip

    def get_activities(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        wanted = set(request.args.get("activity_types", "").split(","))
        return self._json([a for a in self.activities if a["activity_type"] in wanted])

    def patch_order(self, request: Request) -> Response:
        """Alpaca's replace: a new order (new id, the body's client id and limit) replaces the old one."""
        if (denied := self._auth(request)) is not None:
            return denied
        old = self.orders.get(request.path.rsplit("/", 1)[-1])
        if old is None or old["status"] not in OPEN:
            return self._json({"code": 42210000, "message": "order is not open"}, 422)
        body = request.get_json()
        self.patches.append(body)
        new = {**old, "id": str(uuid.uuid4()), "client_order_id": body.get("client_order_id") or str(uuid.uuid4()),
               "limit_price": str(body["limit_price"]), "replaces": old["id"], "status": "accepted",
               "created_at": _now(), "updated_at": _now()}  # fmt: skip
        old.update(status="replaced", replaced_by=new["id"], replaced_at=_now(), updated_at=_now())
        self.orders[new["id"]] = new
        return self._json(new)

    def install(self, server: Any) -> None:
        import re

        server.expect_request("/v2/account/activities", method="GET").respond_with_handler(self.get_activities)
        server.expect_request(re.compile(r"^/v2/orders/[^/:]+$"), method="PATCH").respond_with_handler(self.patch_order)
        super().install(server)


@pytest.fixture()
def fake(httpserver: Any, monkeypatch: pytest.MonkeyPatch) -> FakeAlpacaOptions:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    monkeypatch.setenv("ALPACA_BASE_URL", httpserver.url_for("").rstrip("/"))
    f = FakeAlpacaOptions()
    f.install(httpserver)
    return f


def condor_request(cid: str, units: float = 3, limit: float | None = -2.35, intent: str = "open") -> OrderRequest:
    return OrderRequest(cid, "SPY", "sell", units, dt.date(2024, 2, 1), -2.4, order_type="limit" if limit else "market",
                        legs=CONDOR, limit_price=limit, intent=intent)  # type: ignore[arg-type]  # fmt: skip


def test_multi_leg_order_partial_fill_duplicate_and_refusal(fake: FakeAlpacaOptions) -> None:
    from execution.brokers.alpaca import AlpacaBroker

    b = AlpacaBroker()
    placed = b.submit(condor_request("ic-1"))
    body = fake.bodies[-1]
    assert body["order_class"] == "mleg" and body["qty"] in (3, 3.0, "3") and body["type"] == "limit"
    assert float(body["limit_price"]) == -2.35 and body["time_in_force"] == "day" and "symbol" not in body
    assert [(g["symbol"], float(g["ratio_qty"]), g["side"], g["position_intent"]) for g in body["legs"]] == [
        ("SPY240315P00460000", 1.0, "buy", "buy_to_open"), ("SPY240315P00470000", 1.0, "sell", "sell_to_open"),
        ("SPY240315C00510000", 1.0, "sell", "sell_to_open"), ("SPY240315C00520000", 1.0, "buy", "buy_to_open")]
    assert placed.status == ACCEPTED and placed.symbol == "SPY" and placed.legs == tuple(
        OptionLeg(g.underlying, g.expiry, g.strike, g.right, g.ratio, "SPY") for g in CONDOR)

    prices = {"SPY240315P00460000": 1.10, "SPY240315P00470000": 2.05, "SPY240315C00510000": 1.95,
              "SPY240315C00520000": 0.50}  # fmt: skip
    fake.fill_option("ic-1", prices, units=1)
    got = b.get_order("ic-1")
    assert got is not None and got.status == PARTIALLY_FILLED and got.filled_qty == 1.0
    assert got.filled_avg_price == pytest.approx(1.10 - 2.05 - 1.95 + 0.50)
    fills = {f.symbol: f for f in b.fills("ic-1")}
    assert {s: (f.side, f.qty, f.price, f.multiplier) for s, f in fills.items()} == {
        s: ("buy" if s.endswith(("P00460000", "C00520000")) else "sell", 1.0, p, 100.0) for s, p in prices.items()}
    assert b.positions()["SPY240315P00470000"] == -1.0

    with pytest.raises(DuplicateOrderError):
        b.submit(condor_request("ic-1"))
    fake.refuse_symbols = {"SPY240315C00520000"}
    refused = b.submit(condor_request("ic-2"))
    assert refused.status == REJECTED and "insufficient options buying power" in (refused.reason or "")

    single = b.submit(OrderRequest("p-1", "SPY", "sell", 2, dt.date(2024, 2, 1), -2.0, legs=(CONDOR[1],),
                                   intent="close"))  # type: ignore[arg-type]  # fmt: skip
    body = fake.bodies[-1]
    assert (body["symbol"], float(body["qty"]), body["side"], body["position_intent"], body["type"]) == (
        "SPY240315P00470000", 2.0, "sell", "sell_to_close", "market")
    assert single.legs == (OptionLeg("SPY", EXP, 470.0, "P", -1, "SPY"),) and single.symbol == "SPY"


def test_expiry_events_from_account_activities(fake: FakeAlpacaOptions) -> None:
    from execution.brokers.alpaca import AlpacaBroker

    fake.activities = [
        {"id": "a1", "activity_type": "OPASN", "date": "2024-03-15", "net_amount": "0", "symbol": "SPY240315P00470000",
         "qty": "1", "status": "executed"},
        {"id": "a2", "activity_type": "OPTRD", "date": "2024-03-15", "net_amount": "-47000", "symbol": "SPY",
         "qty": "100", "price": "470", "status": "executed"},
        {"id": "a3", "activity_type": "OPEXP", "date": "2024-03-15", "net_amount": "0", "symbol": "SPY240315P00460000",
         "qty": "-1", "status": "executed"},
    ]  # fmt: skip
    events = AlpacaBroker().events(dt.date(2024, 3, 1))
    assert [(e.kind, e.symbol, e.side, e.qty, e.price, e.multiplier) for e in events] == [
        ("assign", "SPY240315P00470000", "buy", 1.0, 0.0, 100.0), ("option_trade", "SPY", "buy", 100.0, 470.0, 1.0),
        ("expire", "SPY240315P00460000", "sell", 1.0, 0.0, 100.0)]


# ------------------------------------------------------------------------------------------ trading runs
DAYS = pd.bdate_range("2024-01-02", periods=30).date


@pytest.fixture()
def spy_lake(ql_home: Path) -> Lake:
    closes = 480 * (1 + 0.01 * np.sin(np.arange(len(DAYS)) / 3))
    rows = [{"symbol": "SPY", "date": d, "open": c, "high": c, "low": c, "close": c, "adj_close": c, "volume": 1e6,
             "source": "t"} for d, c in zip(DAYS, closes, strict=True)]  # fmt: skip
    lake = Lake(ql_home / "lake")
    lake.merge("equity_bars", pd.DataFrame(rows), EQUITY_BARS)
    return lake


def spy_condor() -> Any:
    from backtests.options.config import parse_config

    return parse_config({
        "name": "spy_condor", "underlying": "SPY", "start": DAYS[0], "end": DAYS[-1], "initial_cash": 100000,
        "strategy": {"kind": "iron_condor", "width": {"points": 10}, "dte": {"min": 20, "max": 80, "target": 45},
                     "exits": {"exit_regimes": [], "profit_target": 0.5, "stop_loss": 2.0},
                     "sizing": {"method": "fixed", "contracts": 2}},
        "market": {"rate": {"constant": 0.0}}, "commissions": {"per_contract": 0.0},
    })  # fmt: skip


def test_option_strategy_on_alpaca_partial_fill_outage_mid_order_and_no_double_send(
    fake: FakeAlpacaOptions, spy_lake: Lake
) -> None:
    from backtests.options.synthetic import BlackScholesChains
    from execution import audit
    from execution.option_trader import run_option_trade
    from execution.settings import TradeConfig

    closes = spy_lake.read("equity_bars").set_index("date")["close"]
    chains = BlackScholesChains(pd.Series(closes.to_numpy(), index=pd.to_datetime(closes.index)), vol=0.2,
                                step=1.0, width=0.2, spread_pct=0.02, min_half_spread=0.01, months=4)  # fmt: skip
    cfg = TradeConfig(model="spy_condor", instrument="options", broker="alpaca", account="alp")

    def day(i: int, **kw: Any) -> Any:
        return run_option_trade(cfg.model_copy(update={"as_of": DAYS[i]}), spy_lake, strategy_config=spy_condor(),
                                chains=chains, **kw)  # fmt: skip

    # day 0: the condor goes out as one mleg order of 2 units; Alpaca fills 1 unit, the rest expires unfilled
    r0 = day(0)
    assert len(fake.posts) == 1 and r0.orders.iloc[0]["status"] == ACCEPTED and r0.orders.iloc[0]["qty"] == 2
    cid = fake.posts[0]
    o = fake.by_client(cid)
    assert o is not None and o["order_class"] == "mleg" and len(o["legs"]) == 4
    chain = chains.chain("SPY", DAYS[1])
    mid = {OptionLeg("SPY", r.expiry, float(r.strike), r.right, 1).occ: (r.bid + r.ask) / 2
           for r in chain.itertuples(index=False)}  # fmt: skip
    prices = {leg["symbol"]: round(mid[leg["symbol"]], 2) for leg in o["legs"]}  # Alpaca fills at the mid
    fake.fill_option(cid, prices, units=1)
    r1 = day(1)  # still working (partially filled): nothing booked, nothing sent again
    assert r1.booked == [] and len(fake.posts) == 1
    fake.expire(cid)
    r2 = day(2)  # the filled unit is booked at Alpaca's prices; the book and Alpaca agree
    assert [b["units"] for b in r2.booked] == [1.0] and r2.reconciliation == []
    assert any("after filling 1 of 2" in a for a in r2.alerts)
    leg_fills = audit.fills(spy_lake, "alpaca", "alp")
    assert sorted(leg_fills["price"]) == sorted(prices.values()) and set(leg_fills["multiplier"]) == {100.0}
    (pos,) = r2.positions
    assert pos["units"] == 1 and pos["entry_net"] == pytest.approx(
        sum((1 if g["side"] == "buy" else -1) * prices[g["symbol"]] for g in o["legs"]))

    # an outage mid-order: a stop-loss close reaches Alpaca but the answer times out; the next run adopts it
    chains.vol = 0.9  # implied vol jumps: the condor's marks blow through the stop (2 x the credit)
    before = len(fake.posts)
    fake.hang_next_post = 2.0
    r3 = day(3, broker_options={"timeout": 0.5})
    assert len(fake.posts) == before + 1
    (row,) = r3.orders.to_dict("records")
    assert row["leg"] == "close" and row["status"] == "pending_submit" and "outcome unknown" in row["reason"]
    close_cid = row["client_order_id"]
    assert fake.posts[-1] == close_cid and r3.errors
    r4 = day(4)
    assert fake.posts.count(close_cid) == 1 and r4.orders.empty  # adopted, never sent twice, nothing new
    assert audit.orders(spy_lake, "alpaca", "alp").set_index("client_order_id").loc[close_cid, "status"] == ACCEPTED
    fake.fill_option(close_cid, {leg["symbol"]: round(mid[leg["symbol"]] * 3, 2) for leg in o["legs"]})
    r5 = day(5)
    assert r5.positions == [] and r5.reconciliation == [] and [b["units"] for b in r5.booked] == [1.0]


def test_option_limits_refuse_an_opening_package_before_it_is_sent(spy_lake: Lake) -> None:
    from backtests.options.synthetic import BlackScholesChains
    from execution import audit
    from execution.option_trader import run_option_trade
    from execution.settings import TradeConfig

    closes = spy_lake.read("equity_bars").set_index("date")["close"]
    chains = BlackScholesChains(pd.Series(closes.to_numpy(), index=pd.to_datetime(closes.index)), vol=0.2, step=1.0,
                                width=0.2, spread_pct=0.02, min_half_spread=0.01, months=4)  # fmt: skip
    cfg = TradeConfig(model="spy_condor", instrument="options", account="lim", as_of=DAYS[0],
                      option_limits={"max_risk_per_trade": 0.001})  # 2 condors risk ~1.5 % of 100,000
    r = run_option_trade(cfg, spy_lake, strategy_config=spy_condor(), chains=chains)
    (row,) = r.orders.to_dict("records")
    assert row["status"] == "risk_rejected" and "exceeds 0.001" in row["risk_check"] and "trade risk" in row["risk_check"]
    assert r.positions == [] and audit.orders(spy_lake, "paper", "lim").iloc[0]["broker_order_id"] is None
    with pytest.raises(Exception, match="max_delta"):
        run_option_trade(cfg.model_copy(update={"as_of": DAYS[1], "option_limits": {"max_delta": "lots"}}), spy_lake,
                         strategy_config=spy_condor(), chains=chains)  # fmt: skip


def test_working_limit_is_walked_to_the_market_by_cancel_replace(fake: FakeAlpacaOptions, spy_lake: Lake) -> None:
    from backtests.options.synthetic import BlackScholesChains
    from execution import audit
    from execution.option_trader import run_option_trade
    from execution.settings import TradeConfig

    closes = spy_lake.read("equity_bars").set_index("date")["close"]
    chains = BlackScholesChains(pd.Series(closes.to_numpy(), index=pd.to_datetime(closes.index)), vol=0.2, step=1.0,
                                width=0.2, spread_pct=0.04, min_half_spread=0.02, months=4)  # fmt: skip
    strat = spy_condor().model_copy(update={"execution": spy_condor().execution.model_copy(update={
        "fill": spy_condor().execution.fill.model_copy(update={"mode": "limit", "limit_offset": 0.0, "limit_ttl_bars": 3})})})  # fmt: skip
    cfg = TradeConfig(model="spy_condor", instrument="options", broker="alpaca", account="walk", as_of=DAYS[0],
                      option_replace_minutes=0.0002, option_replace_steps=2, option_replace_fraction=0.5)  # fmt: skip
    r0 = run_option_trade(cfg, spy_lake, strategy_config=strat, chains=chains)
    body = fake.bodies[0]
    assert body["type"] == "limit" and len(fake.patches) == 2
    chain = chains.chain("SPY", DAYS[0]).assign(occ=lambda f: [OptionLeg("SPY", e, float(k), r, 1).occ
                                                                for e, k, r in zip(f.expiry, f.strike, f.right, strict=True)])  # fmt: skip
    q = chain.set_index("occ")
    natural = sum(q.loc[g["symbol"], "ask"] if g["side"] == "buy" else -q.loc[g["symbol"], "bid"] for g in body["legs"])
    limits = [float(body["limit_price"]), *[float(p["limit_price"]) for p in fake.patches]]
    for before, after in itertools.pairwise(limits):  # each step half-way to the natural price
        assert after == pytest.approx(before + 0.5 * (natural - before), abs=0.011)
    rows = audit.orders(spy_lake, "alpaca", "walk").set_index("client_order_id")
    first = body["client_order_id"]
    assert rows.loc[first, "status"] == "cancelled" and rows.loc[first, "reason"] == f"replaced by {first}-r1"
    assert rows.loc[f"{first}-r1", "reason"] == f"replaced by {first}-r2"
    assert rows.loc[f"{first}-r2", "status"] == ACCEPTED and rows.loc[f"{first}-r2", "limit_price"] == limits[-1]
    assert len(fake.posts) == 1 and len(r0.orders) == 3
    # the next day the replacement fills: the book holds the condor at Alpaca's prices
    o = fake.by_client(f"{first}-r2")
    assert o is not None
    fake.fill_option(o["client_order_id"], {g["symbol"]: float(q.loc[g["symbol"], "bid" if g["side"] == "sell" else "ask"])
                                            for g in o["legs"]})  # fmt: skip
    r1 = run_option_trade(cfg.model_copy(update={"as_of": DAYS[1], "option_replace_minutes": 0.0}), spy_lake,
                          strategy_config=strat, chains=chains)  # fmt: skip
    assert [b["client_order_id"] for b in r1.booked] == [f"{first}-r2"] and len(r1.positions) == 1


def test_paper_broker_replace_swaps_the_working_limit(spy_lake: Lake) -> None:
    from backtests.options.synthetic import BlackScholesChains
    from execution.brokers.paper import PaperBroker

    closes = spy_lake.read("equity_bars").set_index("date")["close"]
    chains = BlackScholesChains(pd.Series(closes.to_numpy(), index=pd.to_datetime(closes.index)), vol=0.2, step=1.0,
                                width=0.2, months=4)  # fmt: skip
    expiry = chains.chain("SPY", DAYS[0])["expiry"].iloc[-1]
    leg = OptionLeg("SPY", expiry, 480.0, "C", 1)
    b = PaperBroker(spy_lake, chains=chains)
    b.submit(OrderRequest("p-lim", "SPY", "buy", 1, DAYS[0], 5.0, order_type="limit", legs=(leg,), limit_price=0.01,
                          time_in_force="gtc"))  # fmt: skip
    new = b.replace("p-lim", "p-lim-r1", 0.02)
    old = b.get_order("p-lim")
    assert old is not None and old.status == "cancelled" and old.reason == "replaced by p-lim-r1"
    assert new.status == ACCEPTED and new.limit_price == 0.02 and new.legs == (leg,)
    assert [o.client_order_id for o in b.open_orders()] == ["p-lim-r1"]
    b.sync(DAYS[1])  # a limit of 0.02 on an at-the-money call does not fill; the gtc order keeps working
    assert b.get_order("p-lim-r1").status == ACCEPTED  # type: ignore[union-attr]
    b.close()


def test_risk_report_of_a_paper_account_with_options_says_why_not(spy_lake: Lake, ql_home: Path) -> None:
    from execution.brokers.paper import PaperBroker
    from quantlake.errors import UserInputError
    from risk.accounts import PaperLedger

    b = PaperBroker(spy_lake, account="opt")
    with b._tx() as db:
        db.execute("INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, fill_date, "
                   "filled_at, multiplier) VALUES ('f1', 'c1', 'SPY240315P00470000', 'sell', 1, 2.0, 0.65, ?, ?, 100)",
                   (DAYS[1].isoformat(), DAYS[1].isoformat()))  # fmt: skip
    b.close()
    with pytest.raises(UserInputError, match="holds option contracts"):
        PaperLedger.for_account("opt", spy_lake)
