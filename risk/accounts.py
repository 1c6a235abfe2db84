"""Accounts as risk-report inputs: the paper broker's ledger read as an equity curve and current positions.

The paper broker (``execution.brokers.paper``) keeps one SQLite ledger per account at
``$QUANTLAKE_HOME/paper/<account>.sqlite``.  :class:`PaperLedger` reads it **read-only** and directly (the
risk package must not import :mod:`execution`, which imports it), relying only on this part of the ledger's
format:

* ``meta(key, value)`` with ``initial_cash`` and, once the ledger has been synced, ``clock`` (ISO date of
  the last close it has seen);
* ``fills(symbol, side, qty, price, commission, fill_date)`` — one row per execution, ``side`` ``buy`` or
  ``sell``, ``qty`` positive shares, ``fill_date`` ISO date.

The equity curve is rebuilt the way the broker values its account: on each trading day from the day before
the first fill to the clock, cash = initial cash + sells − buys − commissions of the fills up to that day,
plus the positions (signed sum of fills) marked at the latest ``equity_bars`` close on or before that day.

Anything else with ``equity_curve()`` and ``positions()`` (:class:`risk.report.AccountSource`) can be
reported on the same way.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from quantlake.config import paths
from quantlake.errors import MalformedFileError, UserInputError
from quantlake.lake import Lake
from risk.book import Position
from risk.data import load_closes
from risk.errors import InsufficientDataError

ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_FILL_COLUMNS = ("symbol", "side", "qty", "price", "commission", "fill_date")
_OCC = re.compile(r"[A-Z0-9.]{1,6}\d{6}[CP]\d{8}")  # an option contract the paper broker booked (OCC symbol)


def ledger_path(account: str = "default", directory: Path | None = None) -> Path:
    """``<directory or $QUANTLAKE_HOME/paper>/<account>.sqlite`` (the account name validated first)."""
    if not ACCOUNT_RE.fullmatch(account or ""):
        raise UserInputError(f"invalid paper account name {account!r}: use A-Z a-z 0-9 _ . - (max 64)")
    return (directory or paths().paper) / f"{account}.sqlite"


class PaperLedger:
    """A paper account's ledger as an :class:`~risk.report.AccountSource` (see the module doc)."""

    def __init__(self, path: Path | str, lake: Lake) -> None:
        self.path = Path(path)
        self.lake = lake
        if not self.path.is_file():
            known = (
                sorted(p.stem for p in self.path.parent.glob("*.sqlite")) if self.path.parent.is_dir() else []
            )
            raise UserInputError(
                f"no paper ledger {self.path} (accounts there: {', '.join(known) or 'none'}; "
                "paper trading creates it)"
            )
        self.initial_cash, self.clock, self.fills = self._read()
        self._curve: pd.Series | None = None

    @classmethod
    def for_account(cls, account: str, lake: Lake, directory: Path | None = None) -> PaperLedger:
        return cls(ledger_path(account, directory), lake)

    def _read(self) -> tuple[float, dt.date | None, pd.DataFrame]:
        try:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise MalformedFileError(f"{self.path}: cannot open the paper ledger: {exc}") from None
        try:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            fills = pd.read_sql_query(
                f"SELECT {', '.join(_FILL_COLUMNS)} FROM fills ORDER BY fill_date, rowid", con
            )
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise MalformedFileError(
                f"{self.path}: not a paper ledger this version understands "
                f"(needs tables meta(key, value) and fills({', '.join(_FILL_COLUMNS)})): {exc}"
            ) from None
        finally:
            con.close()
        if "initial_cash" not in meta:
            raise MalformedFileError(f"{self.path}: the ledger records no initial_cash")
        bad_side = sorted(set(fills["side"]) - {"buy", "sell"})
        if bad_side:
            raise MalformedFileError(f"{self.path}: fills with unknown side(s) {bad_side}")
        options = sorted({s for s in fills["symbol"].astype(str) if _OCC.fullmatch(s)})
        if options:
            raise UserInputError(
                f"paper account {self.path.stem} holds option contracts ({options[0]}{' ...' if len(options) > 1 else ''}): "
                "risk report --paper rebuilds share accounts from closes only; the option strategy's equity is in "
                "exec_account (quantlake trade status) and its book (quantlake trade --instrument options --dry-run)"
            )
        fills["fill_date"] = pd.to_datetime(fills["fill_date"])
        clock = dt.date.fromisoformat(meta["clock"]) if meta.get("clock") else None
        return float(meta["initial_cash"]), clock, fills

    # ------------------------------------------------------------------------------- AccountSource
    def _holdings(self) -> tuple[pd.DataFrame, pd.Series]:
        """(date × symbol cumulative signed shares, date → cumulative cash) at each fill date."""
        f = self.fills
        signed = np.where(f["side"] == "buy", 1.0, -1.0) * f["qty"].to_numpy(dtype=float)
        flows = -signed * f["price"].to_numpy(dtype=float) - f["commission"].to_numpy(dtype=float)
        shares = (
            pd.DataFrame({"date": f["fill_date"], "symbol": f["symbol"], "q": signed})
            .pivot_table(index="date", columns="symbol", values="q", aggfunc="sum")
            .fillna(0.0)
            .cumsum()
        )
        cash = pd.Series(flows, index=f["fill_date"]).groupby(level=0).sum().cumsum() + self.initial_cash
        return shares, cash

    def equity_curve(self) -> pd.Series:
        """Daily equity (date index), starting with the initial cash on the trading day before the first fill."""
        if self._curve is not None:
            return self._curve
        if self.fills.empty:
            raise InsufficientDataError(f"paper account {self.path.stem} has no fills yet: no equity history")
        shares, cash = self._holdings()
        first = shares.index[0].date()
        end = max(self.clock or first, self.fills["fill_date"].max().date())
        closes = load_closes(
            self.lake, list(shares.columns), first - dt.timedelta(days=10), end, adjusted=False
        )
        missing = sorted(set(shares.columns) - set(closes.columns))
        if missing:
            raise InsufficientDataError(f"no equity_bars in the lake to mark {', '.join(missing)}")
        days = closes.index[(closes.index >= pd.Timestamp(first)) & (closes.index <= pd.Timestamp(end))]
        before = closes.index[closes.index < pd.Timestamp(first)]
        marks = closes.ffill()
        held = shares.reindex(shares.index.union(days)).ffill().reindex(days).fillna(0.0)
        cash_d = cash.reindex(cash.index.union(days)).ffill().reindex(days).fillna(self.initial_cash)
        value = (held * marks.reindex(days)[held.columns]).sum(axis=1, min_count=1).fillna(0.0)
        curve = cash_d + value
        if len(before):
            curve = pd.concat([pd.Series([self.initial_cash], index=before[-1:]), curve])
        curve.index = pd.DatetimeIndex(curve.index, name="date")
        self._curve = curve.rename("equity")
        return self._curve

    def positions(self) -> Sequence[Position]:
        """Open positions now (at the clock), marked at the latest close on or before it."""
        if self.fills.empty:
            return []
        shares, _ = self._holdings()
        last = shares.iloc[-1]
        held = last[last.abs() > 1e-9]
        if held.empty:
            return []
        end = max(self.clock or shares.index[-1].date(), shares.index[-1].date())
        closes = load_closes(self.lake, list(held.index), end - dt.timedelta(days=30), end, adjusted=False)
        out = []
        for sym, qty in held.items():
            if sym not in closes.columns or closes[sym].dropna().empty:
                raise InsufficientDataError(f"no close on or before {end} to mark {sym}")
            out.append(Position(symbol=str(sym), qty=float(qty), price=float(closes[sym].dropna().iloc[-1])))
        return out
