"""Backtest-vs-paper reconciliation: per day, the orders and fills a paper account got against what a
backtest of the same champion model over the same days and the same lake versions produces.

The backtest replays the trader's own rules (:func:`execution.trader.run_trade`, dry run: the model's
signals, sizing, risk gate and orders) day by day against a private paper ledger with the account's costs —
the paper broker's fill model (next open ± slippage, commissions) — with the lake pinned at the versions
the account's run of that day recorded (``exec_account.lake_versions``).  Then, per day:

* **orders** — missing (the backtest sent it, the account did not), extra (the account sent it, the backtest
  did not) and quantity differences, matched on (decision date, symbol, leg, side);
* **fills** — the account's fill price against the backtest's (slippage against the model, in price and
  bps), matched on (fill date, symbol, side);
* **P&L** — each side's P&L per symbol (fills and closes: realized cash flows + position × close), and the
  drift = account − backtest, cumulative and per symbol.

An alert (:mod:`execution.alerts`) goes out when the absolute cumulative drift passes ``threshold`` × the
starting equity.  Each reconciliation is one MLflow run (experiment ``reconciliation``, tag
``quantlake.account``) with the tables as Parquet and CSV, a chart (cumulative P&L of both and the drift) and
metrics; ``quantlake risk report --paper ACCOUNT`` prints a link to the latest one (looked up by that tag).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from execution import audit
from execution.brokers.base import NOT_SENT, PLANNED, RISK_REJECTED, OrderRequest
from execution.settings import TradeConfig
from quantlake.errors import UserInputError
from quantlake.lake import Lake

EXPERIMENT = "reconciliation"
ACCOUNT_TAG = "quantlake.account"
KEY = ["trade_date", "symbol", "leg", "side"]
# Every frame here has explicit column dtypes, empty or not: pandas 3 keeps an empty ``pd.DataFrame(columns=...)``
# as object columns through merges and ``fillna`` (no silent downcasting any more), and object columns make
# the P&L arithmetic fail (``cumsum is not supported for object dtype``) on a window where one side traded.
FILL_DTYPES = {"date": "object", "symbol": "str", "side": "str", "qty": "float64", "price": "float64",
               "commission": "float64"}  # fmt: skip


def _typed(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """``frame`` with ``dtypes`` applied (missing columns added empty): the one place dtypes are made explicit."""
    out = frame.copy()
    for col, dtype in dtypes.items():
        out[col] = out[col].astype(dtype) if col in out.columns else pd.Series(index=out.index, dtype=dtype)
    return out


def _sum_by(frame: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    """``frame`` summed by ``keys``. An empty frame is returned as is: pandas 3.1 gives a multi-key groupby of
    an empty frame Arrow string keys with no chunks, which a later merge cannot factorize (ArrowInvalid)."""
    if frame.empty:
        return frame[[*keys, *cols]].reset_index(drop=True)
    return frame.groupby(keys, as_index=False)[cols].sum()


@dataclass
class Reconciliation:
    account: str
    broker: str
    days: list[dt.date]
    orders: pd.DataFrame  # one row per (decision date, symbol, leg, side): qty of each side, status
    fills: pd.DataFrame  # one row per (fill date, symbol, side): price of each side, difference
    pnl: pd.DataFrame  # per (date, symbol): P&L of each side, drift, cumulative drift
    daily: pd.DataFrame  # per date: cumulative P&L of each side and drift
    threshold: float
    start_equity: float
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None

    @property
    def drift(self) -> float:
        return float(self.daily["drift"].iloc[-1]) if len(self.daily) else 0.0

    @property
    def max_abs_drift(self) -> float:
        return float(self.daily["drift"].abs().max()) if len(self.daily) else 0.0

    @property
    def breached(self) -> bool:
        return self.max_abs_drift > self.threshold * self.start_equity + 1e-9

    def metrics(self) -> dict[str, float]:
        status = self.orders["status"].value_counts() if len(self.orders) else pd.Series(dtype=int)
        slip = self.fills["price_diff_bps"].abs() if len(self.fills) else pd.Series(dtype=float)
        return {"days": float(len(self.days)), "orders_matched": float(status.get("matched", 0)),
                "orders_missing": float(status.get("missing", 0)), "orders_extra": float(status.get("extra", 0)),
                "orders_qty_diff": float(status.get("qty_differs", 0)),
                "fill_price_diff_bps_max": float(slip.max()) if len(slip) else 0.0,
                "drift": self.drift, "max_abs_drift": self.max_abs_drift,
                "drift_pct_of_equity": self.max_abs_drift / self.start_equity if self.start_equity else 0.0}  # fmt: skip


# ----------------------------------------------------------------------------------------- P&L
def pnl_by_symbol(fills: pd.DataFrame, closes: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    """P&L per (date, symbol) from fills (``date, symbol, side, qty, price, commission``) and closes
    (``date, symbol, close``): cash flows of the day's fills + change in position value at the closes."""
    if fills.empty:
        empty = pd.DataFrame({"date": pd.to_datetime(pd.Series([], dtype="object"))})
        return _typed(empty, {"symbol": "str", "pnl": "float64"})
    f = fills.copy()
    f["signed"] = np.where(f["side"] == "buy", 1.0, -1.0) * f["qty"].astype(float)
    f["flow"] = -f["signed"] * f["price"].astype(float) - f["commission"].astype(float)
    symbols = sorted(f["symbol"].unique())
    grid = pd.MultiIndex.from_product([pd.to_datetime(days), symbols], names=["date", "symbol"])
    f["date"] = pd.to_datetime(f["date"])
    by = f.groupby(["date", "symbol"])[["signed", "flow"]].sum().reindex(grid, fill_value=0.0)
    c = closes.copy()
    c["date"] = pd.to_datetime(c["date"])
    px = c.set_index(["date", "symbol"])["close"].reindex(grid).groupby(level="symbol").ffill()
    pos = by["signed"].groupby(level="symbol").cumsum()
    value = (pos * px).fillna(0.0)
    prev = value.groupby(level="symbol").shift(1).fillna(0.0)
    pnl = by["flow"] + value - prev
    return pnl.rename("pnl").reset_index()


def _fill_frame(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return _typed(pd.DataFrame(), FILL_DTYPES)
    when = pd.to_datetime(rows["filled_at"], utc=True).dt.tz_convert("America/New_York")
    return pd.DataFrame({"date": when.dt.date, "symbol": rows["symbol"], "side": rows["side"],
                         "qty": rows["qty"].astype(float), "price": rows["price"].astype(float),
                         "commission": rows["commission"].astype(float)})  # fmt: skip


# ----------------------------------------------------------------------------------------- the backtest
def _versions(lake: Lake, broker: str, account: str, days: list[dt.date]) -> dict[dt.date, dict[str, int]]:
    h = audit.account_history(lake, broker, account)
    out: dict[dt.date, dict[str, int]] = {}
    if "lake_versions" not in h.columns:
        return out
    for r in h.itertuples(index=False):
        text = getattr(r, "lake_versions", None)
        if isinstance(text, str) and text:
            out[pd.Timestamp(r.trade_date).date()] = {k: int(v) for k, v in json.loads(text).items()}
    return {d: v for d, v in out.items() if d in set(days)}


def replay(cfg: TradeConfig, lake: Lake, days: list[dt.date], model: Any, start_cash: float,
           start_positions: dict[str, float], versions: dict[dt.date, dict[str, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The backtest: the trader's rules day by day on a private paper ledger; returns (orders, fills)."""
    from execution.brokers.paper import PaperBroker
    from execution.trader import run_trade

    orders: list[dict[str, Any]] = []
    sim_account = f"{cfg.account}-reconcile"[:64]
    with tempfile.TemporaryDirectory(prefix="ql-reconcile-") as tmp:
        broker = PaperBroker(lake, ledger_dir=Path(tmp), account=sim_account, costs=cfg.costs,
                             initial_cash=start_cash, allow_short=cfg.allow_short)  # fmt: skip
        try:
            if start_positions:  # the account's holdings when the reconciliation starts
                with broker._tx() as db:
                    for i, (sym, qty) in enumerate(sorted(start_positions.items())):
                        db.execute("INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, "
                                   "fill_date, filled_at) VALUES (?, 'start', ?, ?, ?, 0, 0, '0001-01-01', ?)",
                                   (f"start-{i}", sym, "buy" if qty > 0 else "sell", abs(qty),
                                    dt.datetime(1, 1, 1, tzinfo=dt.UTC).isoformat()))  # fmt: skip
            for day in days:
                day_lake = Lake(lake.uri, pins=versions.get(day, {})) if versions.get(day) else lake
                broker.lake = day_lake
                broker.options.lake = day_lake
                broker.sync(day)
                sim_cfg = cfg.model_copy(update={"as_of": day, "account": sim_account})
                res = run_trade(sim_cfg, day_lake, broker=broker, model=model, dry_run=True)
                for o in res.orders.to_dict("records"):
                    orders.append({**o, "trade_date": day})
                    if o["status"] == PLANNED:
                        broker.submit(OrderRequest(o["client_order_id"], o["symbol"], o["side"], float(o["qty"]), day,
                                                   float(o["ref_price"])))  # fmt: skip
            broker.sync(days[-1])
            fills = pd.DataFrame([r for r in (dict(x) for x in broker.db.execute(
                "SELECT symbol, side, qty, price, commission, filled_at FROM fills WHERE client_order_id != 'start'"
            ).fetchall())], columns=["symbol", "side", "qty", "price", "commission", "filled_at"])  # fmt: skip
        finally:
            broker.close()
    return pd.DataFrame(orders), fills


# ----------------------------------------------------------------------------------------- compare
def compare_orders(paper: pd.DataFrame, sim: pd.DataFrame) -> pd.DataFrame:
    dtypes = {"trade_date": "object", "symbol": "str", "leg": "str", "side": "str", "qty": "float64"}

    def prep(df: pd.DataFrame) -> pd.DataFrame:
        if df.empty:
            return _typed(pd.DataFrame(), dtypes)
        d = _typed(df[~df["status"].isin([RISK_REJECTED, NOT_SENT])], {**dtypes, "trade_date": "datetime64[ns]"})
        d["trade_date"] = d["trade_date"].dt.date
        return _sum_by(d, KEY, ["qty"])

    a, b = prep(paper).rename(columns={"qty": "qty_paper"}), prep(sim).rename(columns={"qty": "qty_backtest"})
    out = _typed(a.merge(b, on=KEY, how="outer"), {"qty_paper": "float64", "qty_backtest": "float64"})
    out["status"] = np.select(
        [out["qty_backtest"].isna(), out["qty_paper"].isna(), (out["qty_paper"] - out["qty_backtest"]).abs() > 1e-9],
        ["extra", "missing", "qty_differs"], "matched")  # fmt: skip
    return out.sort_values(KEY, kind="mergesort").reset_index(drop=True)


def compare_fills(paper: pd.DataFrame, sim: pd.DataFrame) -> pd.DataFrame:
    keys = ["date", "symbol", "side"]

    def vwap(df: pd.DataFrame) -> pd.DataFrame:
        d = _typed(df, FILL_DTYPES)
        g = _sum_by(d.assign(value=d["qty"] * d["price"]), keys, ["qty", "value"])
        return g.assign(price=g["value"] / g["qty"]).drop(columns="value")

    a = vwap(paper).rename(columns={"qty": "qty_paper", "price": "price_paper"})
    b = vwap(sim).rename(columns={"qty": "qty_backtest", "price": "price_backtest"})
    out = _typed(a.merge(b, on=keys, how="outer"),
                 {c: "float64" for c in ("qty_paper", "price_paper", "qty_backtest", "price_backtest")})  # fmt: skip
    out["price_diff"] = out["price_paper"] - out["price_backtest"]
    sign = np.where(out["side"] == "buy", 1.0, -1.0)  # paying more on a buy / getting less on a sell costs
    out["price_diff_bps"] = sign * out["price_diff"] / out["price_backtest"] * 1e4
    return out.sort_values(keys, kind="mergesort").reset_index(drop=True)


def compare_pnl(paper: pd.DataFrame, backtest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (date, symbol) P&L of both sides (frames of :func:`pnl_by_symbol`), their drift and cumulative drift
    per symbol; and per date the cumulative P&L of each side and the cumulative drift."""
    pnl = paper.rename(columns={"pnl": "pnl_paper"}).merge(
        backtest.rename(columns={"pnl": "pnl_backtest"}), on=["date", "symbol"], how="outer")  # fmt: skip
    pnl = _typed(pnl, {"pnl_paper": "float64", "pnl_backtest": "float64"}).fillna({"pnl_paper": 0.0, "pnl_backtest": 0.0})
    pnl["drift"] = pnl["pnl_paper"] - pnl["pnl_backtest"]
    pnl = pnl.sort_values(["symbol", "date"]).reset_index(drop=True)
    pnl["cum_drift"] = pnl.groupby("symbol")["drift"].cumsum()
    daily = pnl.groupby("date")[["pnl_paper", "pnl_backtest", "drift"]].sum().cumsum().reset_index()
    return pnl, daily


# ----------------------------------------------------------------------------------------- the run
def reconcile(cfg: TradeConfig, lake: Lake | None = None, start: dt.date | None = None, end: dt.date | None = None,
              model: Any | None = None, threshold: float = 0.005, track: bool = True,
              alert: bool = True) -> Reconciliation:
    """Reconcile paper account ``cfg.account`` of ``cfg.broker`` over its trading days in [start, end]."""
    from execution.signal_source import load_champion

    lake = lake or Lake()
    history = audit.account_history(lake, cfg.broker, cfg.account, strategy=cfg.strategy_name)
    if history.empty:
        raise UserInputError(f"{cfg.broker} account {cfg.account!r} has no trading runs of {cfg.strategy_name} to "
                             "reconcile: run `quantlake trade` first")  # fmt: skip
    all_days = sorted({pd.Timestamp(d).date() for d in history["trade_date"]})
    days = [d for d in all_days if (start is None or d >= start) and (end is None or d <= end)]
    if not days:
        raise UserInputError(f"no trading runs of account {cfg.account!r} between {start} and {end} "
                             f"(runs from {all_days[0]} to {all_days[-1]})")  # fmt: skip
    source = model or load_champion(cfg.model)
    notes: list[str] = []
    paper_fills = _fill_frame(audit.fills(lake, cfg.broker, cfg.account))
    first = days[0]
    before = paper_fills[paper_fills["date"] < first]
    start_positions = {s: q for s, q in (before.assign(s=np.where(before["side"] == "buy", 1.0, -1.0) * before["qty"])
                                         .groupby("symbol")["s"].sum().items()) if abs(q) > 1e-9}  # fmt: skip
    earlier = history[pd.to_datetime(history["trade_date"]).dt.date < first]
    start_cash = float(earlier["cash"].iloc[-1]) if len(earlier) else float(cfg.initial_cash)
    versions = _versions(lake, cfg.broker, cfg.account, days)
    if len(versions) < len(days):
        notes.append(f"{len(days) - len(versions)} day(s) without recorded lake versions: replayed on the current lake")
    sim_orders, sim_fills = replay(cfg, lake, days, source, start_cash, start_positions, versions)

    paper_orders = audit.orders(lake, cfg.broker, cfg.account, strategy=cfg.strategy_name)
    paper_orders = paper_orders[pd.to_datetime(paper_orders["trade_date"]).dt.date.isin(days)]
    window = paper_fills[paper_fills["date"].isin(days)]
    sim_f = _fill_frame(sim_fills)
    sim_f = sim_f[sim_f["date"].isin(days)]
    symbols = sorted(set(window["symbol"]) | set(sim_f["symbol"]) | set(start_positions))
    closes = _typed(pd.DataFrame(), {"date": "object", "symbol": "str", "close": "float64"})
    if symbols:
        closes = lake.query(
            "SELECT date, symbol, close FROM equity_bars WHERE close IS NOT NULL AND date <= ? AND symbol IN ("
            + ", ".join("?" for _ in symbols) + ")", [days[-1], *symbols])  # fmt: skip
    start_fills = pd.DataFrame([{"date": first - dt.timedelta(days=1), "symbol": s, "side": "buy" if q > 0 else "sell",
                                 "qty": abs(q), "price": 0.0, "commission": 0.0} for s, q in start_positions.items()])  # fmt: skip
    grid_days = [first - dt.timedelta(days=1), *days] if start_positions else days

    def side_pnl(f: pd.DataFrame) -> pd.DataFrame:
        p = pnl_by_symbol(pd.concat([start_fills, f], ignore_index=True) if start_positions else f, closes, grid_days)
        return p[pd.to_datetime(p["date"]).dt.date.isin(days)] if len(p) else p

    pnl, daily = compare_pnl(side_pnl(window), side_pnl(sim_f))
    start_equity = float(history["equity"].iloc[0]) if not len(earlier) else float(earlier["equity"].iloc[-1])
    rec = Reconciliation(cfg.account, cfg.broker, days, compare_orders(paper_orders, sim_orders),
                         compare_fills(window, sim_f), pnl, daily, threshold, start_equity, notes)  # fmt: skip
    if track:
        rec.run_id = log_run(rec, cfg, lake)
    if alert and rec.breached:
        from execution import alerts

        alerts.send(alerts.Alert("reconciliation", "warning",
                                 f"{cfg.account}: paper P&L drifted {rec.max_abs_drift:,.2f} from the backtest "
                                 f"(threshold {threshold:.2%} of {start_equity:,.0f})",
                                 json.dumps(rec.metrics()), {"account": cfg.account, "run_id": rec.run_id}))  # fmt: skip
    return rec


def reconcile_recent(cfg: TradeConfig, lake: Lake, days: int) -> str | None:
    """The daily flow's step: reconcile the account's last ``days`` trading days; returns the MLflow run id."""
    history = audit.account_history(lake, cfg.broker, cfg.account, strategy=cfg.strategy_name)
    traded = sorted({pd.Timestamp(d).date() for d in history["trade_date"]})
    if not traded:
        return None
    return reconcile(cfg, lake, start=traded[-days:][0]).run_id


def log_run(rec: Reconciliation, cfg: TradeConfig, lake: Lake) -> str:
    """One MLflow run: metrics, the tables (Parquet and CSV) and the chart; lineage of the lake it read."""
    import plotly.graph_objects as go

    from tracking.run_context import tracked_run

    with tracked_run(EXPERIMENT, "execution.reconcile", cfg, lake, run_name=f"reconcile-{rec.account}-{rec.days[-1]}",
                     extra_tags={ACCOUNT_TAG: rec.account, "quantlake.broker": rec.broker}) as run, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        run.log_metrics(rec.metrics())
        for name, frame in (("orders", rec.orders), ("fills", rec.fills), ("pnl", rec.pnl), ("daily", rec.daily)):
            for ext in ("parquet", "csv"):
                path = Path(tmp) / f"{name}.{ext}"
                frame.to_parquet(path, index=False) if ext == "parquet" else frame.to_csv(path, index=False)
                run.log_artifact(path)
        fig = go.Figure()
        for col, label in (("pnl_paper", "paper"), ("pnl_backtest", "backtest"), ("drift", "drift")):
            fig.add_trace(go.Scatter(x=rec.daily["date"], y=rec.daily[col], name=label))
        fig.update_layout(title=f"{rec.account}: cumulative P&L, paper vs backtest", yaxis_title=cfg.strategy_name)
        chart = Path(tmp) / "reconciliation.html"
        fig.write_html(chart, include_plotlyjs="cdn")
        run.log_artifact(chart)
        return run.run_id


__all__ = ["EXPERIMENT", "Reconciliation", "compare_fills", "compare_orders", "compare_pnl", "pnl_by_symbol",
           "reconcile", "reconcile_recent"]  # fmt: skip
