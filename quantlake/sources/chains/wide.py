"""Wide chain layouts (a strike's call and put side by side on one row): OptionsDX EOD and ORATS strikes.

Each row yields two quotes, the call side and the put side; each side is accepted or rejected on its own
(a rejected side is recorded with its file row and ``[call]``/``[put]`` after the file name), so a file of
N rows accounts for 2N quotes.  A side with no value at all (every price, size, volume and IV cell empty)
is rejected as "no quote".

Neither layout carries an OCC root: :func:`quantlake.option_quotes.infer_roots` gives the underlying's root
(SPXW for SPX's non-standard expiries), and the contract symbol is built from root, expiry, right and strike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantlake.option_quotes import infer_roots, occ_symbols
from quantlake.sources.chains.convert import RowErrors, dates, no_values, numbers, strings, years_between
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

SIZE_RE = r"^\s*(?P<bid>\d+(?:\.\d*)?)\s*[xX]\s*(?P<ask>\d+(?:\.\d*)?)\s*$"



def _sizes(arr: pa.Array, name: str, err: RowErrors) -> tuple[np.ndarray, np.ndarray]:
    """``bidsize x asksize`` cells -> (bid_size, ask_size); an unreadable cell gets a reason."""
    text = strings(arr)
    m = pc.extract_regex(pc.fill_null(text, ""), SIZE_RE)
    ok = pc.is_valid(m)
    bad = pc.and_(pc.invert(ok), pc.is_valid(text)).to_numpy(zero_copy_only=False)
    if bad.any():
        err.add(bad, lambda i: f"{name} is not 'bid size x ask size' (got {shown(arr[i].as_py())})")
    nulls = pa.scalar(None, pa.string())
    bid = pc.cast(pc.if_else(ok, pc.struct_field(m, "bid"), nulls), pa.float64())
    ask = pc.cast(pc.if_else(ok, pc.struct_field(m, "ask"), nulls), pa.float64())
    return (np.asarray(bid.to_numpy(zero_copy_only=False), dtype=np.float64),
            np.asarray(ask.to_numpy(zero_copy_only=False), dtype=np.float64))  # fmt: skip


def _empty_side(values: list[np.ndarray], label: str, err: RowErrors) -> None:
    empty = np.ones(len(values[0]), dtype=bool)
    for v in values:
        empty &= np.isnan(v)
    err.add(empty, f"no {label} quote on this row (every {label} cell is empty)")


def _common(data: dict[str, Any], ctx: FileContext, err: RowErrors, right: str) -> dict[str, Any]:
    n = len(data["strike"])
    data["right"] = pa.array(np.full(n, right, dtype=object), type=pa.string())
    data["contract"] = occ_symbols(data["root"], data["expiry"], data["right"], data["strike"])
    return finish(data, ctx)


class OptionsDX(Layout):
    """OptionsDX end-of-day files: ``[QUOTE_UNIXTIME], [QUOTE_READTIME], [QUOTE_DATE], [QUOTE_TIME_HOURS],
    [UNDERLYING_LAST], [EXPIRE_DATE], [EXPIRE_UNIX], [DTE], [C_DELTA] … [C_IV], [C_VOLUME], [C_LAST],
    [C_SIZE], [C_BID], [C_ASK], [STRIKE], [P_BID], [P_ASK], [P_SIZE], [P_LAST], [P_DELTA] … [P_IV],
    [P_VOLUME], [STRIKE_DISTANCE], [STRIKE_DISTANCE_PCT]`` (with or without the brackets, leading spaces
    around names and values).  Empty cells are missing values; ``C_SIZE``/``P_SIZE`` are ``bid x ask`` sizes.
    The files name no underlying: ``--underlying``, else the file name's first word (``spx_eod_202001.txt``).
    """

    name = "optionsdx"
    title = "OptionsDX EOD (wide: [QUOTE_DATE], [UNDERLYING_LAST], [EXPIRE_DATE], [C_BID] ... [P_ASK])"
    wide = True
    required = ("quotedate", "underlyinglast", "expiredate", "strike", "cbid", "cask", "pbid", "pask")
    optional = (
        *(f"{s}{f}" for s in "cp" for f in ("delta", "gamma", "vega", "theta", "rho", "iv", "volume", "last", "size")),
        "quoteunixtime", "quotereadtime", "quotetimehours", "expireunix", "dte", "strikedistance", "strikedistancepct",
    )  # fmt: skip

    def sides(self, cols: Cols, ctx: FileContext) -> list[Side]:
        n = cols.n
        base = RowErrors(n)
        quote_date = dates(cols["quotedate"], "QUOTE_DATE", base)
        expiry = dates(cols["expiredate"], "EXPIRE_DATE", base)
        strike = numbers(cols["strike"], "STRIKE", base)
        spot = numbers(cols["underlyinglast"], "UNDERLYING_LAST", base)
        und = underlying_column(cols, None, ctx, base)
        root = infer_roots(und, expiry)
        out = []
        for s, label, right in (("c", "call", "C"), ("p", "put", "P")):
            err = base.copy()

            def num(f: str, s: str = s, err: RowErrors = err) -> np.ndarray:
                c = f"{s}{f}"
                return numbers(cols[c], c.upper()[:1] + "_" + f.upper(), err) if c in cols else no_values(n)

            bid, ask, last, vol = num("bid"), num("ask"), num("last"), num("volume")
            iv = vendor_iv(num("iv"), ctx)
            bsz, asz = _sizes(cols[f"{s}size"], f"{s.upper()}_SIZE", err) if f"{s}size" in cols else (no_values(n), no_values(n))
            _empty_side([bid, ask, last, vol, iv, bsz, asz], label, err)
            theta = num("theta") if f"{s}theta" in cols else None
            vega = num("vega") if f"{s}vega" in cols else None
            rights = np.full(n, right, dtype=object)
            th, ve = scale_greeks(ctx, rights, spot, strike, years_between(quote_date, expiry), iv, theta, vega)
            data: dict[str, Any] = {
                "quote_date": quote_date, "underlying": und, "root": root, "expiry": expiry, "strike": strike,
                "bid": bid, "ask": ask, "bid_size": bsz, "ask_size": asz, "last": last, "volume": vol,
                "open_interest": no_values(n), "vendor_iv": iv, "vendor_delta": num("delta"),
                "vendor_gamma": num("gamma"), "vendor_theta": no_values(n) if th is None else th,
                "vendor_vega": no_values(n) if ve is None else ve, "underlying_price": spot,
            }  # fmt: skip
            out.append(Side(label, _common(data, ctx, err, right), err))
        return out


class Orats(Layout):
    """ORATS strikes files (one row per strike and expiry): ``ticker, tradeDate, expirDate, strike, stkPx,
    cVolu, cOi, pVolu, pOi, cBidPx, cValue, cAskPx, pBidPx, pValue, pAskPx, cBidIv, cMidIv, cAskIv,
    smoothSmvVol, pBidIv, pMidIv, pAskIv, iRate, divRate, residualRateData, delta, gamma, theta, vega, rho,
    phi, driftlessTheta, extVol, extCTheo, extPTheo, spot_px, …``.

    ORATS quotes one set of Greeks, the call's: the put's delta is stored as ``delta - 1`` (ORATS' own
    relation), gamma and vega are the same for both; the put's theta is not given (NULL).  The vendor IV is
    the mid IV of each side.  ``stkPx`` of an index is ORATS' implied futures price per expiry: the underlying
    level is ``spotPx``/``spot_px`` when the file has it, else ``stkPx``.
    """

    name = "orats"
    title = "ORATS strikes (ticker, tradeDate, expirDate, strike, stkPx, cBidPx, cAskPx, pBidPx, pAskPx, ...)"
    wide = True
    required = ("ticker", "tradedate", "expirdate", "strike", "stkpx", "cbidpx", "caskpx", "pbidpx", "paskpx")
    optional = ("cvolu", "coi", "pvolu", "poi", "cvalue", "pvalue", "cbidiv", "cmidiv", "caskiv", "pbidiv",
                "pmidiv", "paskiv", "smoothsmvvol", "irate", "divrate", "delta", "gamma", "theta", "vega", "rho",
                "spotpx", "dte", "yte")  # fmt: skip

    def sides(self, cols: Cols, ctx: FileContext) -> list[Side]:
        n = cols.n
        base = RowErrors(n)
        quote_date = dates(cols["tradedate"], "tradeDate", base)
        expiry = dates(cols["expirdate"], "expirDate", base)
        strike = numbers(cols["strike"], "strike", base)
        stk = numbers(cols["stkpx"], "stkPx", base)
        spot = numbers(cols["spotpx"], "spotPx", base) if "spotpx" in cols else stk
        und = underlying_column(cols, "ticker", ctx, base)
        root = infer_roots(pc.fill_null(und, ""), expiry)
        years = years_between(quote_date, expiry)
        out = []
        greek_err = RowErrors(n)

        def g(name: str) -> np.ndarray | None:
            return numbers(cols[name], name, greek_err) if name in cols else None

        delta, gamma, theta, vega = g("delta"), g("gamma"), g("theta"), g("vega")
        civ = vendor_iv(numbers(cols["cmidiv"], "cMidIv", greek_err), ctx) if "cmidiv" in cols else no_values(n)
        calls = np.full(n, "C", dtype=object)
        th, ve = scale_greeks(ctx, calls, spot, strike, years, civ, theta, vega)
        for s, label, right in (("c", "call", "C"), ("p", "put", "P")):
            err = base.copy()
            for k, v in greek_err.reasons.items():
                err.reasons[k].extend(v)

            def num(col: str, label_: str, err: RowErrors = err) -> np.ndarray:
                return numbers(cols[col], label_, err) if col in cols else no_values(n)

            bid, ask = num(f"{s}bidpx", f"{s}BidPx"), num(f"{s}askpx", f"{s}AskPx")
            vol, oi = num(f"{s}volu", f"{s}Volu"), num(f"{s}oi", f"{s}Oi")
            iv = civ if s == "c" else (vendor_iv(num("pmidiv", "pMidIv"), ctx) if "pmidiv" in cols else no_values(n))
            _empty_side([bid, ask, vol, oi, iv], label, err)
            d = no_values(n) if delta is None else (delta if s == "c" else delta - 1.0)
            data: dict[str, Any] = {
                "quote_date": quote_date, "underlying": und, "root": root, "expiry": expiry, "strike": strike,
                "bid": bid, "ask": ask, "bid_size": no_values(n), "ask_size": no_values(n), "last": no_values(n), "volume": vol,
                "open_interest": oi, "vendor_iv": iv, "vendor_delta": d,
                "vendor_gamma": no_values(n) if gamma is None else gamma,
                "vendor_theta": (no_values(n) if th is None else th) if s == "c" else no_values(n),
                "vendor_vega": no_values(n) if ve is None else ve, "underlying_price": spot,
            }  # fmt: skip
            out.append(Side(label, _common(data, ctx, err, right), err))
        return out

