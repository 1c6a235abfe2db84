"""The lake's table contracts (DESIGN §4): name, key, Arrow schema, the date column used for ranges.

Core tables are declared here.  Feature tables are declared by the code that builds them
(:func:`register`), and their key is also stored in the Delta table's description so that a lake opened
without that code still knows how to merge into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from quantlake.errors import InvalidSymbolError, TableNotFoundError

SYMBOL_RE = re.compile(r"^[A-Z0-9.^=\-]{1,15}$")
# exchange-qualified crypto pairs as stored in the lake: EXCHANGE:BASE/QUOTE (BINANCE:BTC/USDT).  Letters and
# digits only around the ':' and '/', so such a symbol can never carry a quote, a path step ('..') or SQL.
CRYPTO_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}:[A-Z0-9]{1,15}/[A-Z0-9]{1,15}$")
# either form: what a column of the bar tables may hold
ANY_SYMBOL_RE = re.compile(f"(?:{SYMBOL_RE.pattern})|(?:{CRYPTO_SYMBOL_RE.pattern})")
TABLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def validate_symbol(symbol: str) -> str:
    """Normalise (strip, upper-case) and validate a ticker before it touches a path or a query.

    Tickers (``AAPL``, ``BRK-B``, ``^VIX``) and exchange-qualified crypto pairs (``BINANCE:BTC/USDT``)."""
    s = symbol.strip().upper()
    if not (SYMBOL_RE.fullmatch(s) or CRYPTO_SYMBOL_RE.fullmatch(s)):
        raise InvalidSymbolError(
            f"invalid symbol {symbol!r}: use 1-15 characters from A-Z, 0-9 and . ^ = - (e.g. AAPL, BRK-B, ^VIX), "
            "or EXCHANGE:BASE/QUOTE for a crypto pair (e.g. BINANCE:BTC/USDT)"
        )
    return s


@dataclass(frozen=True)
class TableSpec:
    name: str
    keys: tuple[str, ...]
    schema: pa.Schema
    date_column: str | None = None
    # columns that change on every ingest and must not count as a change of the row (e.g. ingested_at)
    volatile: tuple[str, ...] = ()
    description: str = ""
    nullable_keys: tuple[str, ...] = field(default=())

    @property
    def value_columns(self) -> list[str]:
        return [c for c in self.schema.names if c not in self.keys and c not in self.volatile]


_TS = pa.timestamp("us", tz="UTC")

EQUITY_BARS = TableSpec(
    name="equity_bars",
    keys=("symbol", "date"),
    schema=pa.schema(
        [
            ("symbol", pa.string()),
            ("date", pa.date32()),
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("adj_close", pa.float64()),
            ("volume", pa.float64()),
            ("source", pa.string()),
            ("ingested_at", _TS),
            # added by the interval upgrade (quantlake.migrations): always "1d" here, and the session's open
            # instant in UTC; rows of lakes written before it are filled in by the one-time upgrade
            ("interval", pa.string()),
            ("ts", _TS),
        ]
    ),
    date_column="date",
    volatile=("ingested_at",),
    description="Daily bars. OHLC split-adjusted as the vendor gives them; adj_close also dividend-adjusted. "
    "open/high/low/volume may be null for close-only series (indices, some vendors).",
)

BARS = TableSpec(
    name="bars",
    keys=("symbol", "interval", "ts"),
    schema=pa.schema(
        [
            ("symbol", pa.string()),
            ("interval", pa.string()),  # 1m, 5m, 15m, 1h, 4h, 1d (crypto), ... (quantlake.calendars)
            ("ts", _TS),  # the bar's OPEN instant in UTC
            ("date", pa.date32()),  # exchange-local date of ts (the session date; UTC date for 24/7)
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("adj_close", pa.float64()),
            ("volume", pa.float64()),
            ("source", pa.string()),
            ("ingested_at", _TS),
        ]
    ),
    date_column="date",
    volatile=("ingested_at",),
    description="Bars at any interval that are not daily equity bars (those stay in equity_bars): intraday "
    "equities and crypto at every interval.  ts is the bar's open in UTC; a bar covers [ts, ts + interval).",
)

INSTRUMENTS = TableSpec(
    name="instruments",
    keys=("symbol",),
    schema=pa.schema(
        [
            ("symbol", pa.string()),
            ("asset_class", pa.string()),  # equity | crypto
            ("exchange", pa.string()),  # BINANCE, XNYS, ...
            ("calendar", pa.string()),  # XNYS | 24/7 (quantlake.calendars)
            ("timezone", pa.string()),  # IANA zone of the exchange's local dates
            ("base", pa.string()),
            ("quote", pa.string()),
            ("source", pa.string()),
            ("ingested_at", _TS),
        ]
    ),
    volatile=("ingested_at",),
    description="Per symbol: exchange, trading calendar and time zone. Symbols without a row default to NYSE "
    "(EXCHANGE:BASE/QUOTE pairs to 24/7 UTC).",
)

CORPORATE_ACTIONS = TableSpec(
    name="corporate_actions",
    keys=("symbol", "date", "kind"),
    schema=pa.schema(
        [
            ("symbol", pa.string()),
            ("date", pa.date32()),
            ("kind", pa.string()),  # "split" (value = new/old shares) or "dividend" (value = cash per share)
            ("value", pa.float64()),
            ("source", pa.string()),
            ("ingested_at", _TS),
        ]
    ),
    date_column="date",
    volatile=("ingested_at",),
)

OPTION_QUOTES = TableSpec(
    name="option_quotes",
    # the OCC root is part of the key: SPX (AM-settled) and SPXW (PM-settled) share expiry, strike and
    # right on standard monthly expiries and are different contracts
    keys=("quote_date", "underlying", "root", "expiry", "strike", "right"),
    schema=pa.schema(
        [
            ("quote_date", pa.date32()),
            ("underlying", pa.string()),
            ("root", pa.string()),  # OCC root (SPX, SPXW, AAPL, AAPL1 ...); the underlying when unknown
            ("expiry", pa.date32()),
            ("strike", pa.float64()),
            ("right", pa.string()),  # "C" or "P"
            ("settlement", pa.string()),  # "AM" or "PM" (from the root); NULL when not known
            ("bid", pa.float64()),
            ("ask", pa.float64()),
            ("bid_size", pa.float64()),  # contracts
            ("ask_size", pa.float64()),
            ("last", pa.float64()),
            ("volume", pa.float64()),
            ("open_interest", pa.float64()),
            ("vendor_iv", pa.float64()),  # decimal (0.2359), not percent
            # the vendor's Greeks in DESIGN §5 units (raw: vega per 1.00 of vol, theta per year)
            ("vendor_delta", pa.float64()),
            ("vendor_gamma", pa.float64()),
            ("vendor_theta", pa.float64()),
            ("vendor_vega", pa.float64()),
            ("underlying_price", pa.float64()),
            ("no_market", pa.bool_()),  # bid and ask both 0: nobody quotes it (kept, never filled)
            ("contract", pa.string()),
            ("source", pa.string()),
            ("ingested_at", _TS),
        ]
    ),
    date_column="quote_date",
    volatile=("ingested_at",),
    description="Option quotes, one row per contract (OCC root, expiry, strike, right) and quote date.",
)

MACRO_SERIES = TableSpec(
    name="macro_series",
    keys=("series_id", "date", "realtime_start"),
    schema=pa.schema(
        [
            ("series_id", pa.string()),
            ("date", pa.date32()),
            ("realtime_start", pa.date32()),  # first day this value was known (ALFRED vintage)
            ("value", pa.float64()),
            ("source", pa.string()),
            ("ingested_at", _TS),
        ]
    ),
    date_column="date",
    volatile=("ingested_at",),
)

COT_POSITIONS = TableSpec(
    name="cot_positions",
    keys=("report_date", "market_code", "report_type"),
    schema=pa.schema(
        [
            ("report_date", pa.date32()),
            ("market_code", pa.string()),
            ("report_type", pa.string()),  # "disaggregated" or "financial" (traders in financial futures)
            ("market_name", pa.string()),
            ("open_interest", pa.float64()),
            # disaggregated categories
            ("prod_merc_long", pa.float64()),
            ("prod_merc_short", pa.float64()),
            ("swap_long", pa.float64()),
            ("swap_short", pa.float64()),
            ("managed_money_long", pa.float64()),
            ("managed_money_short", pa.float64()),
            # traders in financial futures categories
            ("dealer_long", pa.float64()),
            ("dealer_short", pa.float64()),
            ("asset_mgr_long", pa.float64()),
            ("asset_mgr_short", pa.float64()),
            ("lev_money_long", pa.float64()),
            ("lev_money_short", pa.float64()),
            # both
            ("other_rept_long", pa.float64()),
            ("other_rept_short", pa.float64()),
            ("nonrept_long", pa.float64()),
            ("nonrept_short", pa.float64()),
            ("source", pa.string()),
            ("ingested_at", _TS),
        ]
    ),
    date_column="report_date",
    volatile=("ingested_at",),
)

REJECTED_ROWS = TableSpec(
    name="rejected_rows",
    keys=("table", "batch_id", "row_no"),
    schema=pa.schema(
        [
            ("table", pa.string()),
            ("batch_id", pa.string()),  # stable hash of the batch's origin, so re-ingesting never duplicates
            ("row_no", pa.int64()),  # row number in the origin (1 = first data row of a file)
            ("origin", pa.string()),  # file path, URL or source:symbol
            ("reason", pa.string()),
            ("raw", pa.string()),  # the raw row as JSON
            ("rejected_at", _TS),
        ]
    ),
    date_column=None,
    volatile=("rejected_at",),
)

SOURCE_QUOTA = TableSpec(
    name="source_quota",
    keys=("source", "day"),
    schema=pa.schema(
        [
            ("source", pa.string()),
            ("day", pa.date32()),  # UTC day the requests were made
            ("requests", pa.int64()),  # requests made that day (by every run)
            ("quota", pa.int64()),  # the daily quota in force when they were counted
            ("updated_at", _TS),
        ]
    ),
    date_column="day",
    volatile=("updated_at",),
    description="Requests made to each network source per UTC day, against its daily quota.",
)

SOURCE_DISAGREEMENTS = TableSpec(
    name="source_disagreements",
    keys=("table", "symbol", "date", "source", "other_source"),
    schema=pa.schema(
        [
            ("table", pa.string()),
            ("symbol", pa.string()),
            ("date", pa.date32()),
            ("source", pa.string()),  # the source whose row was stored
            ("other_source", pa.string()),  # the source it was checked against
            ("column", pa.string()),  # close
            ("value", pa.float64()),
            ("other_value", pa.float64()),
            ("rel_diff", pa.float64()),  # |value / other_value - 1|
            ("tolerance", pa.float64()),
            ("checked_at", _TS),
        ]
    ),
    date_column="date",
    volatile=("checked_at",),
    description="Rows where two sources of a chain disagree by more than the tolerance, with both values.",
)

CORE_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        EQUITY_BARS, CORPORATE_ACTIONS, OPTION_QUOTES, MACRO_SERIES, COT_POSITIONS, REJECTED_ROWS, BARS, INSTRUMENTS,
        SOURCE_QUOTA, SOURCE_DISAGREEMENTS,
    )
}

_REGISTRY: dict[str, TableSpec] = dict(CORE_TABLES)


def register(spec: TableSpec) -> TableSpec:
    """Declare a (feature) table so the lake knows its key and schema."""
    if not TABLE_NAME_RE.fullmatch(spec.name):
        raise ValueError(f"invalid table name {spec.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> TableSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TableNotFoundError(f"unknown table {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def known_specs() -> dict[str, TableSpec]:
    return dict(_REGISTRY)
