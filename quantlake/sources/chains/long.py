"""Long chain layouts (one quote per row): the daily chain download, CBOE DataShop, quantlake's own.

Columns are matched by their canonical name (case, spaces, underscores, dashes, dots and square brackets
ignored).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantlake.option_quotes import parse_occ, settlements
from quantlake.sources.chains.convert import (
    RowErrors,
    dates,
    no_values,
    numbers,
    rights,
    strings,
    years_between,
)
from quantlake.sources.chains.greeks import scale_greeks
from quantlake.sources.chains.layout import (
    Cols,
    FileContext,
    Layout,
    Side,
    finish,
    underlying_column,
    vendor_iv,
)
from quantlake.sources.text import shown
from quantlake.tables import OPTION_QUOTES


class DailyChain(Layout):
    """The daily chain download (CBOE delayed-quote tables as kept by option-backtester projects; the
    historicaloptiondata "Level 2" files use the same columns under other names, accepted as aliases).

    ``underlying, underlying_last, exchange, optionroot, [optionext,] type, expiration, quotedate, strike,
    last, [net,] bid, ask, volume, openinterest, impliedvol, delta, gamma[, theta, vega, optionalias]``;
    dates ``MM/DD/YYYY`` (a time after the date is ignored).  ``optionroot`` is the OCC symbol: the root comes
    from it, and its expiry/right/strike must agree with the row's columns.  A plain root (no OCC tail) is
    taken as the root.  Theta and vega are recognised per file (:mod:`.greeks`).
    """

    name = "daily"
    title = "daily chain download (underlying, underlying_last, optionroot, type, expiration, quotedate, ...)"
    required = ("underlying", "underlyinglast", "optionroot", "type", "expiration", "quotedate", "strike",
                "bid", "ask")  # fmt: skip
    optional = ("exchange", "optionext", "last", "net", "volume", "openinterest", "impliedvol", "delta",
                "gamma", "theta", "vega", "optionalias")  # fmt: skip
    aliases: ClassVar[dict[str, str]] = {
        "underlyingsymbol": "underlying", "underlyingprice": "underlyinglast", "optionsymbol": "optionroot",
        "optiontype": "type", "datadate": "quotedate", "iv": "impliedvol", "alias": "optionalias",
        "openint": "openinterest",
    }  # fmt: skip

    def sides(self, cols: Cols, ctx: FileContext) -> list[Side]:
        n = cols.n
        err = RowErrors(n)
        quote_date = dates(cols["quotedate"], "quotedate", err)
        expiry = dates(cols["expiration"], "expiration", err)
        right = rights(cols["type"])
        strike = numbers(cols["strike"], "strike", err)
        symbol = strings(cols["optionroot"])
        occ = parse_occ(pc.fill_null(symbol, ""))
        occ_root = pc.struct_field(occ, "root")
        plain = pc.fill_null(pc.match_substring_regex(pc.utf8_upper(pc.fill_null(symbol, "")), r"^[A-Z0-9]{1,6}$"),
                             False)  # fmt: skip
        root = pc.coalesce(occ_root, pc.if_else(plain, pc.utf8_upper(symbol), pa.scalar(None, pa.string())))
        neither = pc.and_(pc.is_null(root), pc.is_valid(symbol)).to_numpy(zero_copy_only=False)
        err.add(neither, lambda i: f"optionroot is neither an OCC symbol nor a root (got {shown(symbol[i].as_py())})")
        self._check_occ(occ, expiry, right, strike, symbol, err)
        data: dict[str, Any] = {
            "quote_date": quote_date,
            "underlying": underlying_column(cols, "underlying", ctx, err),
            "root": root,
            "expiry": expiry,
            "strike": strike,
            "right": right,
            "bid": numbers(cols["bid"], "bid", err),
            "ask": numbers(cols["ask"], "ask", err),
            "last": numbers(cols["last"], "last", err) if "last" in cols else no_values(n),
            "volume": numbers(cols["volume"], "volume", err) if "volume" in cols else no_values(n),
            "open_interest": numbers(cols["openinterest"], "openinterest", err) if "openinterest" in cols else no_values(n),
            "underlying_price": numbers(cols["underlyinglast"], "underlying_last", err),
            "contract": symbol,
        }
        iv = vendor_iv(numbers(cols["impliedvol"], "impliedvol", err), ctx) if "impliedvol" in cols else no_values(n)
        data["vendor_iv"] = iv
        for g in ("delta", "gamma"):
            data[f"vendor_{g}"] = numbers(cols[g], g, err) if g in cols else no_values(n)
        theta = numbers(cols["theta"], "theta", err) if "theta" in cols else None
        vega = numbers(cols["vega"], "vega", err) if "vega" in cols else None
        th, ve = scale_greeks(ctx, np.asarray(right.to_numpy(zero_copy_only=False), dtype=object),
                              data["underlying_price"], strike, years_between(quote_date, expiry), iv, theta, vega)  # fmt: skip
        data["vendor_theta"] = no_values(n) if th is None else th
        data["vendor_vega"] = no_values(n) if ve is None else ve
        return [Side("", finish(data, ctx), err)]

    @staticmethod
    def _check_occ(occ: pa.StructArray, expiry: pa.Array, right: pa.Array, strike: np.ndarray, symbol: pa.Array,
                   err: RowErrors) -> None:  # fmt: skip
        """The OCC symbol's expiry, right and strike must be the row's (a shifted column is caught here)."""
        ok = pc.is_valid(pc.struct_field(occ, "root")).to_numpy(zero_copy_only=False)
        if not ok.any():
            return
        o_exp = pc.struct_field(occ, "expiry")
        o_right = pc.struct_field(occ, "right")
        o_strike = pc.struct_field(occ, "strike").to_numpy(zero_copy_only=False).astype(np.float64)
        same_exp = pc.fill_null(pc.equal(o_exp, expiry), True).to_numpy(zero_copy_only=False)
        # a Saturday expiry in the symbol (before 2015) is the Friday's contract in a file's expiration column
        sat = pc.fill_null(pc.equal(pc.days_between(expiry, o_exp), 1), False).to_numpy(zero_copy_only=False)
        same_right = pc.fill_null(pc.equal(o_right, right), True).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            same_strike = ~(np.abs(o_strike - strike) > 1e-6 * np.maximum(1.0, np.abs(strike)))
        bad = ok & ~((same_exp | sat) & same_right & same_strike)
        if bad.any():
            err.add(bad, lambda i: (
                f"optionroot {symbol[i].as_py()} is {o_exp[i].as_py()} {o_right[i].as_py()} {o_strike[i]:g}, "
                f"the row says {expiry[i].as_py()} {right[i].as_py()} {strike[i]:g}"
            ))  # fmt: skip


class CboeEod(Layout):
    """CBOE DataShop "Option EOD Summary" (with or without Calcs).

    One snapshot is stored: ``quote_time`` ``eod`` (default: ``bid_eod``/``ask_eod``, sizes and the underlying's
    EOD bid/ask midpoint) or ``1545`` (the 15:45 snapshot).  CBOE computes IV and Greeks (the Calcs columns) at
    15:45 only, so they are stored with the 15:45 snapshot and left NULL with EOD quotes (they would describe
    another moment).  ``close`` (0 when nothing traded, per CBOE) is the last trade; ``trade_volume`` the
    volume; ``^SPX`` is stored as ``SPX``.
    """

    name = "cboe"
    title = "CBOE DataShop option EOD summary (underlying_symbol, quote_date, root, ..., bid_eod, ask_eod)"
    required = ("underlyingsymbol", "quotedate", "root", "expiration", "strike", "optiontype")
    optional = ("open", "high", "low", "close", "tradevolume", "bidsize1545", "bid1545", "asksize1545",
                "ask1545", "underlyingbid1545", "underlyingask1545", "impliedunderlyingprice1545",
                "activeunderlyingprice1545", "impliedvolatility1545", "delta1545", "gamma1545", "theta1545",
                "vega1545", "rho1545", "bidsizeeod", "bideod", "asksizeeod", "askeod", "underlyingbideod",
                "underlyingaskeod", "vwap", "openinterest", "deliverycode")  # fmt: skip

    def sides(self, cols: Cols, ctx: FileContext) -> list[Side]:
        n = cols.n
        err = RowErrors(n)
        t = ctx.settings.quote_time
        need = [f"bid{t}", f"ask{t}"]
        missing = [c for c in need if c not in cols]
        if missing:
            from quantlake.errors import MalformedFileError

            raise MalformedFileError(f"{ctx.origin}: no {', '.join(missing)} column for --quote-time {t}")
        quote_date = dates(cols["quotedate"], "quote_date", err)
        expiry = dates(cols["expiration"], "expiration", err)
        und = self._underlying(cols, ctx, err)
        right = rights(cols["optiontype"])
        strike = numbers(cols["strike"], "strike", err)

        def num(c: str) -> np.ndarray:
            return numbers(cols[c], c, err) if c in cols else no_values(n)

        ub, ua = num(f"underlyingbid{t}"), num(f"underlyingask{t}")
        with np.errstate(invalid="ignore"):
            spot = np.where((ub > 0) & (ua > 0), (ub + ua) / 2, np.where(ua > 0, ua, np.where(ub > 0, ub, np.nan)))
        if t == "1545" and "activeunderlyingprice1545" in cols:
            active = num("activeunderlyingprice1545")
            spot = np.where(np.isfinite(active) & (active > 0), active, spot)
        root = pc.utf8_upper(strings(cols["root"]))
        data: dict[str, Any] = {
            "quote_date": quote_date, "underlying": und, "root": root, "expiry": expiry, "strike": strike,
            "right": right, "bid": num(f"bid{t}"), "ask": num(f"ask{t}"), "bid_size": num(f"bidsize{t}"),
            "ask_size": num(f"asksize{t}"), "last": np.where(num("close") > 0, num("close"), np.nan),
            "volume": num("tradevolume"), "open_interest": num("openinterest"), "underlying_price": spot,
        }  # fmt: skip
        if t == "1545":
            iv = vendor_iv(num("impliedvolatility1545"), ctx)
            theta = num("theta1545") if "theta1545" in cols else None
            vega = num("vega1545") if "vega1545" in cols else None
            th, ve = scale_greeks(ctx, np.asarray(right.to_numpy(zero_copy_only=False), dtype=object), spot,
                                  strike, years_between(quote_date, expiry), iv, theta, vega)  # fmt: skip
            data.update(vendor_iv=iv, vendor_delta=num("delta1545"), vendor_gamma=num("gamma1545"),
                        vendor_theta=no_values(n) if th is None else th, vendor_vega=no_values(n) if ve is None else ve)  # fmt: skip
        elif "impliedvolatility1545" in cols:
            ctx.note(f"{ctx.origin}: CBOE's IV and Greeks are 15:45 values: not stored with --quote-time eod")
        data["contract"] = pa.nulls(n, pa.string())
        return [Side("", finish(data, ctx), err)]

    @staticmethod
    def _underlying(cols: Cols, ctx: FileContext, err: RowErrors) -> pa.Array:
        raw = pc.utf8_upper(strings(cols["underlyingsymbol"]))
        und = pc.replace_substring_regex(raw, r"^\^", "")
        wanted = ctx.settings.underlying
        if wanted is not None:
            other = pc.fill_null(pc.not_equal(und, pa.scalar(wanted.lstrip("^"))), True).to_numpy(zero_copy_only=False)
            if other.any():
                err.add(other, lambda i: f"underlying {raw[i].as_py()!r} is not the --underlying {wanted}")
        return und


class Native(Layout):
    """quantlake's own long layout: the ``option_quotes`` columns (what ``quantlake query ... --format csv``
    writes).  ``root`` defaults to the OCC root of ``contract``, else the underlying; ``settlement`` and
    ``no_market`` are derived when absent; ``vendor_iv`` is a decimal (``--iv-unit`` overrides)."""

    name = "quantlake"
    title = "quantlake option_quotes columns (quote_date, underlying, expiry, strike, right, ...)"
    required = ("quotedate", "underlying", "expiry", "strike", "right")
    optional = tuple(c.replace("_", "") for c in OPTION_QUOTES.schema.names if c.replace("_", "") not in
                     ("quotedate", "underlying", "expiry", "strike", "right", "ingestedat"))  # fmt: skip

    def sides(self, cols: Cols, ctx: FileContext) -> list[Side]:
        n = cols.n
        err = RowErrors(n)
        data: dict[str, Any] = {
            "quote_date": dates(cols["quotedate"], "quote_date", err),
            "underlying": underlying_column(cols, "underlying", ctx, err),
            "expiry": dates(cols["expiry"], "expiry", err),
            "strike": numbers(cols["strike"], "strike", err),
            "right": rights(cols["right"]),
        }
        for c in ("bid", "ask", "bidsize", "asksize", "last", "volume", "openinterest", "vendordelta",
                  "vendorgamma", "vendortheta", "vendorvega", "underlyingprice"):  # fmt: skip
            name = next(f for f in OPTION_QUOTES.schema.names if f.replace("_", "") == c)
            data[name] = numbers(cols[c], name, err) if c in cols else no_values(n)
        data["vendor_iv"] = (vendor_iv(numbers(cols["vendoriv"], "vendor_iv", err), ctx) if "vendoriv" in cols
                             else no_values(n))  # fmt: skip
        data["contract"] = strings(cols["contract"]) if "contract" in cols else pa.nulls(n, pa.string())
        root = pc.utf8_upper(strings(cols["root"])) if "root" in cols else pa.nulls(n, pa.string())
        occ_root = pc.struct_field(parse_occ(pc.fill_null(data["contract"], "")), "root")
        data["root"] = pc.coalesce(root, occ_root, data["underlying"])
        side = finish(data, ctx)
        if "settlement" in cols:  # a stored settlement wins over the one derived from the root
            given = pc.utf8_upper(strings(cols["settlement"]))
            bad = pc.fill_null(pc.invert(pc.is_in(given, value_set=pa.array(["AM", "PM"]))), False)
            err.add(bad.to_numpy(zero_copy_only=False), lambda i: f"settlement must be AM or PM (got {given[i].as_py()!r})")
            side["settlement"] = pc.coalesce(given, settlements(data["root"]))
        return [Side("", side, err)]
