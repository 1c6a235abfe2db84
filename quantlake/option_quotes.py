"""The ``option_quotes`` contract beyond its schema: OCC roots, settlement, the one-time upgrade of older
lakes, and the underlying level a chain carries.

* **Roots.** The key holds the OCC root (``SPX``, ``SPXW``, ``AAPL``, ``AAPL1`` for an adjusted series):
  SPX and SPXW share expiry, strike and right on standard monthly expiries and are different contracts.
  :func:`parse_occ` reads OCC symbols (``SPXW  190426C02050000``, with or without the padding, an ``O:``
  prefix or a leading dot).  Layouts without a root (OptionsDX, ORATS) get :func:`infer_roots`: the
  underlying, except that an index whose standard contract is AM-settled (SPX, NDX, RUT) lists its
  non-standard expiries under the PM weekly root (SPXW, NDXP, RUTW).
* **Settlement** follows the root (:func:`settlement_of`): ``AM`` for the roots in
  :data:`AM_SETTLED_ROOTS` (settled on the special opening quotation of the expiry day), ``PM`` for every
  other OCC-style root (equity and ETF options, PM weeklies), NULL for roots that are not OCC roots (the DAX
  sample's ``^GDAXI``: Eurex settles on an intraday auction, neither US convention).
* **No market**: a quote whose bid and ask are both 0 is kept with ``no_market = true`` (nobody quotes it;
  a backtest must never fill against it).
* **Underlying level** (:func:`underlying_levels`): vendor chains carry the underlying's level at the
  snapshot.  Where the lake has no ``equity_bars`` for an underlying (SPX from a chain file: the index is
  not a traded symbol), that level is the only mark and settlement source the lake has.
* **Upgrade** (:func:`upgrade_option_quotes`): a lake written before the root joined the key is rewritten
  once (root from the contract symbol, else the underlying; settlement from the root; ``no_market`` from
  bid/ask), in one atomic commit, with one line saying so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantlake.calendars import is_trading_day
from quantlake.lake import Lake, symbol_date_filter
from quantlake.tables import OPTION_QUOTES

# roots whose options settle on the opening print of the expiry day (Cboe/Nasdaq index options; VIX on its
# special opening quotation).  Everything else listed in the US is PM-settled.
AM_SETTLED_ROOTS = frozenset({"SPX", "NDX", "RUT", "DJX", "VIX", "VIXW"})
# the PM-settled root an AM-settled index lists its weekly / end-of-month / daily expiries under
WEEKLY_ROOT = {"SPX": "SPXW", "NDX": "NDXP", "RUT": "RUTW"}
ROOT_RE = re.compile(r"^[A-Z0-9]{1,6}$")
# OCC option symbol: root (1-6, padded with spaces to 6 in the official form), yymmdd, C/P, strike x 1000
OCC_PATTERN = r"^(?:O:)?\.?(?P<root>[A-Z0-9]{1,6}) *(?P<ymd>\d{6})(?P<right>[CP])(?P<strike>\d{8})$"


def settlement_of(root: str | None) -> str | None:
    """``AM`` / ``PM`` for an OCC root, None for anything else."""
    if root is None or not ROOT_RE.fullmatch(root):
        return None
    return "AM" if root in AM_SETTLED_ROOTS else "PM"


def settlements(roots: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`settlement_of` over an array (computed once per distinct root)."""
    roots = roots.combine_chunks() if isinstance(roots, pa.ChunkedArray) else roots
    uniq = pc.unique(roots)
    mapped = pa.array([settlement_of(r) for r in uniq.to_pylist()], type=pa.string())
    return pc.take(mapped, pc.index_in(roots, value_set=uniq))


def parse_occ(symbols: pa.Array | pa.ChunkedArray) -> pa.StructArray:
    """OCC symbols -> struct of ``root``, ``expiry`` (date32), ``right``, ``strike``; null where not OCC."""
    arr = symbols.combine_chunks() if isinstance(symbols, pa.ChunkedArray) else symbols
    arr = pc.utf8_upper(pc.utf8_trim_whitespace(arr.cast(pa.string())))
    m = pc.extract_regex(arr, OCC_PATTERN)
    ok = pc.is_valid(m)
    ymd = pc.struct_field(m, "ymd")
    expiry = pc.cast(pc.strptime(ymd, format="%y%m%d", unit="s", error_is_null=True), pa.date32())
    strike = pc.divide(pc.cast(pc.struct_field(m, "strike"), pa.float64()), 1000.0)
    ok = pc.and_(ok, pc.is_valid(expiry))
    return pa.StructArray.from_arrays(
        [
            pc.if_else(ok, pc.struct_field(m, "root"), pa.scalar(None, pa.string())),
            pc.if_else(ok, expiry, pa.scalar(None, pa.date32())),
            pc.if_else(ok, pc.struct_field(m, "right"), pa.scalar(None, pa.string())),
            pc.if_else(ok, strike, pa.scalar(None, pa.float64())),
        ],
        names=["root", "expiry", "right", "strike"],
        mask=pc.invert(ok),
    )


@lru_cache(maxsize=4096)
def is_standard_expiry(day: dt.date) -> bool:
    """The standard monthly expiry of its month: the third Friday, the Thursday before it when that Friday
    is an exchange holiday (Good Friday), or the Saturday after it (the listing convention before 2015)."""
    first = day.replace(day=1)
    third_friday = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
    return day in (third_friday, third_friday - dt.timedelta(days=1), third_friday + dt.timedelta(days=1)) and (
        day != third_friday - dt.timedelta(days=1) or not is_trading_day(third_friday)
    )


def infer_roots(underlyings: pa.Array, expiries: pa.Array) -> pa.Array:
    """Roots for layouts that carry none: the underlying (without an index's ``^``), or its PM weekly root
    for an AM-settled index on a non-standard expiry (see the module docstring)."""
    base = pc.utf8_upper(pc.replace_substring_regex(underlyings.cast(pa.string()), r"^\^", ""))
    pairs = pa.table({"u": base, "e": expiries}).group_by(["u", "e"]).aggregate([])
    mapping: dict[tuple[str | None, dt.date | None], str | None] = {}
    for u, e in zip(pairs.column("u").to_pylist(), pairs.column("e").to_pylist(), strict=True):
        weekly = WEEKLY_ROOT.get(u or "")
        mapping[(u, e)] = weekly if weekly and e is not None and not is_standard_expiry(e) else u
    if len(mapping) == 1:
        (root,) = mapping.values()
        return pa.array(np.full(len(base), root, dtype=object), type=pa.string())
    keys = pd.MultiIndex.from_arrays([base.to_pandas(), expiries.to_pandas()])
    return pa.array([mapping[k] for k in keys], type=pa.string())


def occ_symbols(roots: pa.Array, expiries: pa.Array, rights: pa.Array, strikes: np.ndarray) -> pa.Array:
    """Compact OCC symbols (``SPXW190426C02050000``) from their parts; null where a part is missing or the
    strike does not fit the symbol's eight digits (x 1000)."""
    k = np.round(np.asarray(strikes, dtype=np.float64) * 1000.0)
    fits = np.isfinite(k) & (k >= 0) & (k < 1e8)
    kk = pa.array(np.where(fits, k, 0).astype(np.int64)).cast(pa.string())
    strike_txt = pc.if_else(pa.array(fits), pc.utf8_lpad(kk, 8, "0"), pa.scalar(None, pa.string()))
    ymd = pc.strftime(pc.cast(expiries, pa.timestamp("s")), format="%y%m%d")
    return pc.binary_join_element_wise(roots, ymd, rights, strike_txt, "")


def no_market(bid: pa.Array | pa.ChunkedArray, ask: pa.Array | pa.ChunkedArray) -> pa.Array:
    """True where both bid and ask are 0 (false where either is missing or positive)."""
    both = pc.and_(pc.equal(bid, 0.0), pc.equal(ask, 0.0))
    out = pc.fill_null(both, False)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def conform(table: pa.Table) -> pa.Table:
    """Add the columns an ``option_quotes`` table written before the root-keyed contract lacks: ``root``
    (from the OCC contract symbol, else the underlying), ``settlement`` (from the root), ``no_market``."""
    names = set(table.column_names)
    if "root" not in names:
        under = table.column("underlying").combine_chunks()
        if "contract" in names:
            occ = parse_occ(table.column("contract").fill_null(""))
            roots = pc.coalesce(pc.struct_field(occ, "root"), under)
        else:
            roots = under
        table = table.append_column("root", roots)
    if "settlement" not in names:
        table = table.append_column("settlement", settlements(table.column("root")))
    if "no_market" not in names and {"bid", "ask"} <= names:
        table = table.append_column("no_market", no_market(table.column("bid"), table.column("ask")))
    for f in OPTION_QUOTES.schema:  # columns the old contract did not have at all (sizes, vendor Greeks)
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


def conform_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`conform` for a pandas frame (readers of versions written before the upgrade)."""
    if all(c in frame.columns for c in OPTION_QUOTES.schema.names):
        return frame
    out = conform(pa.Table.from_pandas(frame, preserve_index=False)).to_pandas()
    out.index = frame.index
    return out


def needs_upgrade(lake: Lake) -> bool:
    if not lake.exists("option_quotes"):
        return False
    names = pa.schema(lake.delta("option_quotes", version=lake.version("option_quotes")).schema()).names
    return "root" not in names


def upgrade_option_quotes(lake: Lake) -> str | None:
    """Rewrite an ``option_quotes`` table of the old contract (no root in the key) once; the message, or None.

    One atomic commit (the old rows stay readable as of the previous version).  Two processes upgrading at
    once write the same rows; the second finds nothing left to do or overwrites with identical data.
    """
    if not needs_upgrade(lake):
        return None
    before = lake.version("option_quotes")
    old = lake.arrow("option_quotes", version=before)
    new = conform(old)
    res = lake.replace("option_quotes", new, OPTION_QUOTES, note="upgrade: OCC root joins the key")
    msg = (
        f"option_quotes: upgraded {new.num_rows:,} rows to the root-keyed contract (root from the contract "
        f"symbol, else the underlying; settlement from the root) as version {res.version}; "
        f"version {before} keeps the old layout"
    )
    return msg


def underlying_levels(
    lake: Lake, underlying: str, start: dt.date | None = None, end: dt.date | None = None
) -> pd.Series:
    """The underlying's level on each quote date as the chains carry it (median over the day's quotes).

    Indexed by ``quote_date`` (``datetime.date``), sorted, named ``underlying_level``; empty when the lake has
    no quotes of ``underlying``.  For an underlying without ``equity_bars`` (SPX from a chain file) this is
    the mark and settlement source: the vendor's snapshot level, not necessarily the official close.
    """
    empty = pd.Series(dtype=float, name="underlying_level", index=pd.Index([], name="quote_date"))
    if not lake.exists("option_quotes"):
        return empty
    where, params = symbol_date_filter([underlying], start, end, "underlying_price IS NOT NULL",
                                       "isfinite(underlying_price)")  # fmt: skip
    df = lake.query(
        "WITH q AS (SELECT underlying AS symbol, quote_date AS date, underlying_price FROM option_quotes) "
        f"SELECT date AS quote_date, median(underlying_price) AS underlying_level FROM q WHERE {where} "
        "GROUP BY date ORDER BY date",
        params,
    )
    if df.empty:
        return empty
    idx = pd.Index(pd.to_datetime(df["quote_date"]).dt.date, name="quote_date")
    return pd.Series(df["underlying_level"].to_numpy(dtype=float), index=idx, name="underlying_level")


def underlyings_without_bars(lake: Lake, underlyings: Iterable[str]) -> list[str]:
    """Those of ``underlyings`` with no row in ``equity_bars`` (their chains are their own mark source)."""
    unds = sorted(set(underlyings))
    if not unds:
        return []
    if not lake.exists("equity_bars"):
        return unds
    df = lake.query(
        "SELECT DISTINCT symbol FROM equity_bars WHERE symbol IN (" + ", ".join("?" for _ in unds) + ")", unds
    )
    have = set(df["symbol"])
    return [u for u in unds if u not in have]
