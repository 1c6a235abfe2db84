"""The open book of a tracked options backtest (or option sweep) run on any date, as :class:`risk.book.Position`
legs, so ``quantlake risk report --run ID [--date D]`` stresses what the strategy actually held.

From the run's artifacts: ``fills.parquet`` (every fill, settlement and delivery with its signed quantity)
gives the contracts held at the close of a date (cumulative quantity per position and contract), and
``daily.parquet`` the date's underlying close, share position, equity and rate.  Each leg is marked, and its
implied volatility taken, from the day's chain (``features.chains.ChainProvider`` over the lake pinned to
the versions the run read: the observed quote, else the modeled chain the backtest priced it with); a
contract the chain lacks keeps the last price and IV it traded at, and the note says so.

Default dates: the trough of the run's deepest drawdown and its last day.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantlake.errors import MalformedFileError, UserInputError
from quantlake.lake import Lake
from risk import metrics
from risk.book import Position


@dataclass
class RunArtifacts:
    run_id: str
    underlying: str
    daily: pd.DataFrame  # date index
    fills: pd.DataFrame
    dividend_yield: float
    pins: dict[str, int]


@dataclass
class RunBook:
    date: dt.date
    label: str
    positions: list[Position]
    equity: float
    spot: float
    rate: float
    notes: list[str] = field(default_factory=list)


def option_run(run_id: str) -> RunArtifacts | None:
    """The daily book and fills of an options backtest/sweep run, or ``None`` for other runs."""
    from tracking.reproduce import get_run
    from tracking.run_context import client
    from tracking.runs import artifact_files
    from tracking.tags import lake_versions

    c = client()
    run = get_run(c, run_id)
    files = artifact_files(c, run_id)
    underlying = run.data.tags.get("options.underlying")
    if not underlying or "daily.parquet" not in files or "fills.parquet" not in files:
        return None
    with tempfile.TemporaryDirectory(prefix="ql-risk-run-") as tmp:
        frames = {}
        for name in ("daily", "fills"):
            local = c.download_artifacts(run_id, f"{name}.parquet", tmp)
            try:
                frames[name] = pd.read_parquet(local)
            except Exception as exc:
                raise MalformedFileError(f"run {run_id}: cannot read {name}.parquet: {exc}") from None
    daily = frames["daily"]
    if "date" in daily.columns:
        daily = daily.set_index("date")
    daily.index = pd.DatetimeIndex(daily.index)
    q = run.data.params.get("market.dividend_yield")
    return RunArtifacts(run_id, underlying, daily.sort_index(), frames["fills"], float(q) if q else 0.0,
                        lake_versions(run.data.tags))


def default_dates(daily: pd.DataFrame) -> list[tuple[dt.date, str]]:
    """The trough of the deepest drawdown and the last date (one entry if they coincide)."""
    last = daily.index[-1].date()
    dd = metrics.drawdown_table(daily["equity"].astype(float), top=1)
    out = []
    if not dd.empty:
        out.append((pd.Timestamp(dd.iloc[0]["trough"]).date(), "worst drawdown"))
    if not out or out[0][0] != last:
        out.append((last, "last day"))
    return out


def _chain_quotes(lake: Lake, underlying: str, day: dt.date) -> pd.DataFrame:
    from features.chains import ChainProvider

    frame = ChainProvider(lake).chain(underlying, day, "auto")
    if frame.empty:
        return frame
    out = frame[["expiry", "strike", "right", "mid", "iv"]].copy()
    out["expiry"] = pd.to_datetime(out["expiry"]).dt.date
    return out


def book_on(art: RunArtifacts, day: dt.date, lake: Lake | None, label: str = "") -> RunBook:
    """The legs (and shares) held at the close of ``day`` (the last run date on or before it)."""
    daily = art.daily
    upto = daily.index[daily.index <= pd.Timestamp(day)]
    if upto.empty:
        raise UserInputError(f"run {art.run_id} starts on {daily.index[0].date()}: nothing was held on {day}")
    on = upto[-1]
    notes = [] if on.date() == day else [f"{day} is not a trading day of the run: the book of {on.date()}"]
    row = daily.loc[on]
    spot, rate, equity = float(row["underlying"]), float(row.get("rate", 0.0)), float(row["equity"])
    f = art.fills.copy()
    f["date"] = pd.to_datetime(f["date"])
    opts = f[(f["date"] <= on) & f["expiry"].notna() & (f["contract"] != "shares")]
    positions: list[Position] = []
    if not opts.empty:
        opts = opts.assign(expiry=pd.to_datetime(opts["expiry"]).dt.date)
        keys = ["position_id", "expiry", "strike", "right"]
        held = opts.groupby(keys, dropna=False).agg(qty=("qty", "sum"), price=("price", "last"),
                                                    iv=("iv", "last")).reset_index()
        held = held[held["qty"].abs() > 1e-9]
        quotes = _chain_quotes(lake, art.underlying, on.date()) if lake is not None and len(held) else None
        missing = []
        for leg in held.itertuples(index=False):
            mark, iv = float(leg.price), float(leg.iv)
            if quotes is not None and not quotes.empty:
                hit = quotes[(quotes["expiry"] == leg.expiry) & (quotes["right"] == leg.right)
                             & (np.abs(quotes["strike"] - float(leg.strike)) < 1e-6)]
                if len(hit):
                    mark, iv = float(hit["mid"].iloc[0]), float(hit["iv"].iloc[0])
                else:
                    missing.append(f"{leg.expiry} {leg.strike:g}{leg.right}")
            positions.append(Position.model_validate(dict(
                symbol=art.underlying, right=str(leg.right), strike=float(leg.strike), expiry=leg.expiry,
                qty=float(leg.qty), price=max(mark, 0.0), underlying_price=spot,
                iv=iv if np.isfinite(iv) and iv > 0 else None, group=str(leg.position_id),
            )))
        if missing:
            notes.append(f"not on the {on.date()} chain, marked at their last trade: {', '.join(missing)}")
    shares = float(row.get("shares", 0.0) or 0.0)
    if abs(shares) > 1e-9:
        positions.append(Position(symbol=art.underlying, qty=shares, price=spot))
    return RunBook(on.date(), label, positions, equity, spot, rate, notes)


def equity_until(art: RunArtifacts, day: dt.date) -> pd.Series:
    """The run's equity curve up to ``day`` (the whole curve when that leaves fewer than 4 values)."""
    eq = art.daily["equity"].astype(float)
    cut = eq[eq.index <= pd.Timestamp(day)]
    return cut if len(cut) >= 4 else eq


__all__ = ["RunArtifacts", "RunBook", "book_on", "default_dates", "equity_until", "option_run"]
