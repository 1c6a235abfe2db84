"""Option legs in the order model: contracts named by OCC symbol or by (underlying, expiry, strike, right),
multi-leg packages (spreads, condors, calendars: one order, one net price), idempotent client order ids per
leg-set, and the conversion from the option backtester's orders (:mod:`backtests.options.orders`).

OCC symbols are written the way Alpaca takes them, ``ROOT`` + ``YYMMDD`` + ``C|P`` + the strike × 1000 in 8
digits (``SPY240119C00450000``); :func:`occ_symbol` with ``padded=True`` gives the 21-character OCC form IBKR
shows as ``localSymbol`` (root padded to 6).  Index options trade under their own root: ``^GSPC`` → ``SPX``
(``SPXW`` for weeklies, given as ``root``), ``^RUT`` → ``RUT``, ``^NDX`` → ``NDX``, ``^VIX`` → ``VIX``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from quantlake.errors import UserInputError

if TYPE_CHECKING:
    from backtests.options.contracts import Contract

Right = Literal["C", "P"]
MULTIPLIER = 100.0
INDEX_ROOTS = {"^GSPC": "SPX", "^SPX": "SPX", "^RUT": "RUT", "^NDX": "NDX", "^VIX": "VIX", "^XSP": "XSP"}
ROOT_UNDERLYING = {"SPX": "^GSPC", "SPXW": "^GSPC", "RUT": "^RUT", "RUTW": "^RUT", "NDX": "^NDX", "NDXP": "^NDX",
                   "VIX": "^VIX", "VIXW": "^VIX", "XSP": "^XSP"}  # fmt: skip
_OCC = re.compile(r"^(?P<root>[A-Z0-9.]{1,6}?)\s*(?P<date>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")


class OccSymbolError(UserInputError):
    """A string that is not an OCC option symbol."""


def option_root(underlying: str) -> str:
    """The OCC root of an underlying (``^GSPC`` → ``SPX``; a stock: its symbol without punctuation)."""
    if underlying in INDEX_ROOTS:
        return INDEX_ROOTS[underlying]
    return re.sub(r"[^A-Z0-9]", "", underlying.upper())[:6]


def occ_symbol(root: str, expiry: dt.date, right: str, strike: float, padded: bool = False) -> str:
    """``SPY240119C00450000`` (``padded``: ``SPY   240119C00450000``)."""
    milli = round(float(strike) * 1000)
    if not 0 < milli < 100_000_000:
        raise OccSymbolError(f"strike {strike} does not fit an OCC symbol")
    return f"{root.ljust(6) if padded else root}{expiry:%y%m%d}{right}{milli:08d}"


@dataclass(frozen=True)
class OptionLeg:
    """One leg of an option order: ``ratio`` contracts per package unit (+ buy, - sell)."""

    underlying: str
    expiry: dt.date
    strike: float
    right: Right
    ratio: int
    root: str | None = None

    def __post_init__(self) -> None:
        if self.root is None:  # the default root, so equal contracts compare equal
            object.__setattr__(self, "root", option_root(self.underlying))
        if self.ratio == 0:
            raise UserInputError(f"{self.label}: a leg ratio of 0")
        if self.right not in ("C", "P"):
            raise UserInputError(f"option right must be C or P, got {self.right!r}")

    @property
    def occ(self) -> str:
        return occ_symbol(self.root or option_root(self.underlying), self.expiry, self.right, self.strike)

    @property
    def label(self) -> str:
        return f"{self.underlying} {self.expiry.isoformat()} {self.strike:g}{self.right}"

    @property
    def side(self) -> Literal["buy", "sell"]:
        return "buy" if self.ratio > 0 else "sell"

    @classmethod
    def from_occ(cls, symbol: str, ratio: int, underlying: str | None = None) -> OptionLeg:
        """Parse an OCC symbol (compact or padded); ``underlying`` defaults to the root's (``SPXW`` → ``^GSPC``)."""
        m = _OCC.match(symbol.strip().upper())
        if m is None:
            raise OccSymbolError(f"{symbol!r} is not an OCC option symbol (e.g. SPY240119C00450000)")
        root = m["root"].strip()
        expiry = dt.datetime.strptime(m["date"], "%y%m%d").date()
        right: Right = "C" if m["right"] == "C" else "P"
        return cls(underlying or ROOT_UNDERLYING.get(root, root), expiry, int(m["strike"]) / 1000.0, right, ratio,
                   root)  # fmt: skip

    def contract(self) -> Contract:
        from backtests.options.contracts import Contract

        return Contract(self.underlying, self.expiry, float(self.strike), self.right)

    def scaled(self, factor: int) -> OptionLeg:
        return OptionLeg(self.underlying, self.expiry, self.strike, self.right, self.ratio * factor, self.root)


def parse_occ(symbol: str) -> OptionLeg | None:
    """The contract an OCC symbol names (ratio 1), or None for anything else (a stock symbol)."""
    try:
        return OptionLeg.from_occ(symbol, 1)
    except OccSymbolError:
        return None


def legs_key(legs: Sequence[OptionLeg]) -> str:
    """A canonical text of a leg-set (sorted OCC symbols with ratios): equal packages, equal keys."""
    return ",".join(sorted(f"{leg.occ}:{leg.ratio:+d}" for leg in legs))


def option_client_order_id(trade_date: dt.date, strategy: str, underlying: str, legs: Sequence[OptionLeg],
                           intent: str, account: str = "default") -> str:
    """``ql-<yyyymmdd>-<account>-<strategy>-<underlying>-<intent>-<hash>``: one id per (date, account,
    strategy, leg-set, intent), so a re-run decides the same id for the same package and never sends it
    twice (the hash covers the whole leg-set)."""
    key = f"{trade_date.isoformat()}|{account}|{strategy}|{underlying}|{intent}|{legs_key(legs)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    readable = "".join(ch for ch in underlying if ch.isalnum())[:12]
    return f"ql-{trade_date:%Y%m%d}-{account[:16]}-{strategy[:24]}-{readable}-{intent[:5]}-{digest}"


def legs_from_contracts(contracts: Sequence[Contract], ratios: Sequence[int]) -> tuple[OptionLeg, ...]:
    """Legs of the backtester's contracts (``backtests.options.contracts.Contract``) with signed ratios."""
    return tuple(OptionLeg(c.underlying, c.expiry, float(c.strike), c.right, int(r))
                 for c, r in zip(contracts, ratios, strict=True))  # fmt: skip


def reduce_ratios(ratios: Sequence[int]) -> tuple[list[int], int]:
    """Per-unit ratios and the unit count of a package given in contracts (gcd): [-4, 4, -4, 4] → ([-1, 1,
    -1, 1], 4)."""
    from math import gcd

    g = 0
    for r in ratios:
        g = gcd(g, abs(int(r)))
    g = g or 1
    return [int(r) // g for r in ratios], g


__all__ = [
    "MULTIPLIER",
    "OccSymbolError",
    "OptionLeg",
    "legs_from_contracts",
    "legs_key",
    "occ_symbol",
    "option_client_order_id",
    "option_root",
    "parse_occ",
    "reduce_ratios",
]
