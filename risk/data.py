"""Price and return history for risk figures, read from the lake's ``equity_bars`` (parameterized SQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from quantlake.errors import TableNotFoundError
from quantlake.lake import Lake, symbol_date_filter
from quantlake.tables import validate_symbol


def load_closes(
    lake: Lake,
    symbols: Sequence[str],
    start: dt.date | None = None,
    end: dt.date | None = None,
    adjusted: bool = True,
) -> pd.DataFrame:
    """Daily closes, one column per symbol, date index: ``adj_close`` where present, else ``close`` (for
    returns); with ``adjusted=False`` the traded ``close`` (to value shares as a broker does).

    Symbols without rows are absent from the columns; a lake without ``equity_bars`` gives an empty frame.
    """
    syms = sorted({validate_symbol(s) for s in symbols})
    if not syms:
        return pd.DataFrame()
    where, params = symbol_date_filter(syms, start, end)
    try:
        rows = lake.read(
            "equity_bars", columns=["symbol", "date", "close", "adj_close"], where=where, params=params
        )
    except TableNotFoundError:
        return pd.DataFrame()
    if rows.empty:
        return pd.DataFrame()
    rows["px"] = (
        rows["adj_close"].where(rows["adj_close"].notna(), rows["close"]) if adjusted else rows["close"]
    )
    wide = rows.pivot(index="date", columns="symbol", values="px").sort_index()
    wide.index = pd.DatetimeIndex(wide.index, name="date")
    wide.columns.name = None
    return wide


def load_returns(
    lake: Lake, symbols: Sequence[str], start: dt.date | None = None, end: dt.date | None = None
) -> pd.DataFrame:
    """Daily simple returns from :func:`load_closes` (first row dropped; gaps stay NaN)."""
    closes = load_closes(lake, symbols, start, end)
    return closes.pct_change(fill_method=None).iloc[1:]
