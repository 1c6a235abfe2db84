"""The other chain layouts, each from its documented columns: OptionsDX EOD (wide), CBOE DataShop option EOD
summary (15:45 vs EOD), ORATS strikes (wide), and quantlake's own layout (a round trip through CSV)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pricing import bs_greeks
from quantlake.ingest_chains import ingest_option_files
from quantlake.lake import Lake
from quantlake.sources.chains import ChainSettings

D = dt.date
OPTIONSDX = (
    "[QUOTE_UNIXTIME], [QUOTE_READTIME], [QUOTE_DATE], [QUOTE_TIME_HOURS], [UNDERLYING_LAST], [EXPIRE_DATE], "
    "[EXPIRE_UNIX], [DTE], [C_DELTA], [C_GAMMA], [C_VEGA], [C_THETA], [C_RHO], [C_IV], [C_VOLUME], [C_LAST], "
    "[C_SIZE], [C_BID], [C_ASK], [STRIKE], [P_BID], [P_ASK], [P_SIZE], [P_LAST], [P_DELTA], [P_GAMMA], [P_VEGA], "
    "[P_THETA], [P_RHO], [P_IV], [P_VOLUME], [STRIKE_DISTANCE], [STRIKE_DISTANCE_PCT]"
)


def _quotes(lake: Lake) -> pd.DataFrame:
    q = lake.read("option_quotes")
    for c in ("quote_date", "expiry"):
        q[c] = pd.to_datetime(q[c]).dt.date
    return q


def _optionsdx_row(exp: dt.date, k: float, spot: float, c: dict[str, object], p: dict[str, object]) -> str:
    qd = D(2020, 1, 2)
    cells = [1577998800, f"{qd} 16:00", qd, 16.0, spot, exp, 0, (exp - qd).days]
    cells += [c.get(f, "") for f in ("delta", "gamma", "vega", "theta", "rho", "iv", "volume", "last", "size",
                                      "bid", "ask")]  # fmt: skip
    cells += [k]
    cells += [p.get(f, "") for f in ("bid", "ask", "size", "last", "delta", "gamma", "vega", "theta", "rho", "iv",
                                      "volume")]  # fmt: skip
    cells += [round(k - spot, 1), round(k / spot - 1, 3)]
    return ", ".join(str(x) for x in cells)


def test_optionsdx_wide_rows_give_two_quotes_each(tmp_path: Path, lake: Lake) -> None:
    spot, monthly, weekly = 3257.85, D(2020, 1, 17), D(2020, 1, 10)
    t = (monthly - D(2020, 1, 2)).days / 365
    strikes = np.arange(3150.0, 3360.0, 10.0)
    gc, gp = bs_greeks("C", spot, strikes, t, 0.0, 0.0, 0.13), bs_greeks("P", spot, strikes, t, 0.0, 0.0, 0.13)
    rows = []
    for i, k in enumerate(strikes):  # Greeks written OptionsDX-style: vega per vol point, theta per day
        c = {"delta": round(gc["delta"][i], 5), "gamma": gc["gamma"][i], "vega": gc["vega"][i] / 100,
             "theta": gc["theta"][i] / 365, "iv": 0.13, "volume": 5, "last": 10.0, "size": "10 x 20", "bid": 9.9,
             "ask": 10.1}  # fmt: skip
        p = {"bid": 4.9, "ask": 5.1, "size": " 7 x 8", "last": 5.0, "delta": round(gp["delta"][i], 5),
             "gamma": gp["gamma"][i], "vega": gp["vega"][i] / 100, "theta": gp["theta"][i] / 365, "iv": 0.13,
             "volume": 3}  # fmt: skip
        rows.append(_optionsdx_row(monthly, k, spot, c, p))
    rows.append(_optionsdx_row(weekly, 3260.0, spot, {"bid": 20.0, "ask": 21.0, "iv": 0.12}, {}))  # no put at all
    rows.append(_optionsdx_row(weekly, 3270.0, spot, {"bid": 15.0, "ask": 16.0}, {"bid": 9, "ask": 9.5, "size": "?"}))
    f = tmp_path / "spx_eod_202001.txt"  # OptionsDX names no underlying in its columns: the file name does
    f.write_text(OPTIONSDX + "\n" + "\n".join(" " + r for r in rows) + "\n")
    rep = ingest_option_files(lake, f, progress=False)
    n = len(rows)
    assert rep.rows_read == 2 * n and rep.accepted + rep.rejected == 2 * n
    assert rep.rejected == 2
    reasons = set(lake.read("rejected_rows")["reason"])
    assert reasons == {"no put quote on this row (every put cell is empty)",
                       "P_SIZE is not 'bid size x ask size' (got ' ?')"}  # the cell as written  # fmt: skip
    origins = set(lake.read("rejected_rows")["origin"])
    assert origins == {f"{f} [put]"}
    q = _quotes(lake).set_index(["root", "expiry", "strike", "right"])
    m = q.loc[("SPX", monthly, 3250.0, "C")]  # the third Friday: the AM-settled standard root
    assert (m["settlement"], m["bid_size"], m["ask_size"], m["underlying"]) == ("AM", 10.0, 20.0, "SPX")
    assert m["contract"] == "SPX200117C03250000"
    assert q.loc[("SPX", monthly, 3250.0, "P"), "bid_size"] == 7.0
    w = q.loc[("SPXW", weekly, 3260.0, "C")]  # a weekly expiry of SPX: the PM weekly root
    assert (w["settlement"], w["contract"]) == ("PM", "SPXW200110C03260000")
    calls = _quotes(lake).query("expiry == @monthly and right == 'C'").sort_values("strike")
    np.testing.assert_allclose(calls["vendor_vega"], gc["vega"], rtol=1e-6)  # stored per 1.00 of vol
    np.testing.assert_allclose(calls["vendor_theta"], gc["theta"], rtol=1e-6)  # stored per year


CBOE = (
    "underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,trade_volume,"
    "bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,underlying_ask_1545,"
    "implied_underlying_price_1545,active_underlying_price_1545,implied_volatility_1545,delta_1545,gamma_1545,"
    "theta_1545,vega_1545,rho_1545,bid_size_eod,bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,"
    "underlying_ask_eod,vwap,open_interest,delivery_code"
)


def _cboe_file(path: Path) -> Path:
    spot, exp = 4742.83, D(2024, 1, 19)
    t = (exp - D(2024, 1, 2)).days / 365
    rows = []
    for root, k, right in (("SPX", 4750.0, "C"), ("SPXW", 4750.0, "C"), ("SPXW", 4700.0, "P")):
        g = bs_greeks(right, spot, k, t, 0.0, 0.0, 0.12)
        rows.append(",".join(str(x) for x in [
            "^SPX", "2024-01-02", root, exp, k, right, 50.0, 55.0, 40.0, 0 if root == "SPXW" else 44.1, 120,
            10, 45.0, 12, 45.6, 4740.1, 4741.1, 4745.0, 4742.83, 0.12, float(g["delta"]), float(g["gamma"]),
            float(g["theta"]) / 365, float(g["vega"]) / 100, 1.0, 20, 44.0, 21, 44.8, 4742.0, 4743.0, 44.5, 900, 0,
        ]))  # fmt: skip
    path.write_text(CBOE + "\n" + "\n".join(rows) + "\n")
    return path


def test_cboe_eod_and_1545_snapshots(tmp_path: Path) -> None:
    f = _cboe_file(tmp_path / "UnderlyingOptionsEODCalcs_2024-01-02.csv")
    eod = Lake(tmp_path / "eod")
    rep = ingest_option_files(eod, f, progress=False)
    assert (rep.accepted, rep.rejected) == (3, 0)
    assert any("15:45 values: not stored with --quote-time eod" in n for n in rep.notes)
    q = _quotes(eod).set_index(["root", "strike", "right"])
    spx = q.loc[("SPX", 4750.0, "C")]
    assert (spx["underlying"], spx["bid"], spx["ask"], spx["bid_size"], spx["ask_size"]) == ("SPX", 44.0, 44.8, 20, 21)
    assert spx["underlying_price"] == 4742.5 and spx["last"] == 44.1 and spx["volume"] == 120
    assert spx["open_interest"] == 900 and spx["settlement"] == "AM" and np.isnan(spx["vendor_iv"])
    assert np.isnan(q.loc[("SPXW", 4750.0, "C"), "last"])  # close 0 = no trade, per CBOE
    assert q.loc[("SPXW", 4750.0, "C"), "settlement"] == "PM"

    at1545 = Lake(tmp_path / "1545")
    ingest_option_files(at1545, f, ChainSettings(quote_time="1545"), progress=False)
    q = _quotes(at1545).set_index(["root", "strike", "right"])
    spx = q.loc[("SPX", 4750.0, "C")]
    assert (spx["bid"], spx["ask"], spx["bid_size"], spx["underlying_price"], spx["vendor_iv"]) == (
        45.0, 45.6, 10, 4742.83, 0.12)
    g = bs_greeks("C", 4742.83, 4750.0, 17 / 365, 0.0, 0.0, 0.12)
    assert spx["vendor_theta"] == pytest.approx(float(g["theta"]), rel=1e-9)
    assert spx["vendor_vega"] == pytest.approx(float(g["vega"]), rel=1e-9)


ORATS = ("ticker,tradeDate,expirDate,dte,strike,stkPx,cVolu,cOi,pVolu,pOi,cBidPx,cValue,cAskPx,pBidPx,pValue,"
         "pAskPx,cBidIv,cMidIv,cAskIv,smoothSmvVol,pBidIv,pMidIv,pAskIv,iRate,divRate,residualRateData,delta,"
         "gamma,theta,vega,rho,phi,driftlessTheta,extVol,extCTheo,extPTheo,spot_px")  # fmt: skip


def test_orats_strikes_call_greeks_and_put_delta(tmp_path: Path, lake: Lake) -> None:
    spot, exp = 370.0, D(2020, 2, 21)
    t = (exp - D(2020, 1, 2)).days / 365
    rows = []
    for k in (360.0, 370.0, 380.0):
        g = bs_greeks("C", spot, k, t, 0.0, 0.0, 0.15)
        rows.append(",".join(str(x) for x in [
            "SPY", "1/2/2020", "2/21/2020", 50, k, 370.4, 100, 1000, 80, 900, 12.0, 12.1, 12.2, 4.0, 4.05, 4.1,
            0.149, 0.15, 0.151, 0.15, 0.159, 0.16, 0.161, 0.015, 0.018, 0, float(g["delta"]), float(g["gamma"]),
            float(g["theta"]) / 365, float(g["vega"]) / 100, 0.2, -0.2, 0, 0.15, 12.1, 4.05, spot,
        ]))  # fmt: skip
    f = tmp_path / "orats_2020-01-02.csv"
    f.write_text(ORATS + "\n" + "\n".join(rows) + "\n")
    rep = ingest_option_files(lake, f, progress=False)
    assert (rep.rows_read, rep.accepted, rep.rejected) == (6, 6, 0)
    q = _quotes(lake).set_index(["strike", "right"])
    g = bs_greeks("C", spot, 370.0, t, 0.0, 0.0, 0.15)
    c, p = q.loc[(370.0, "C")], q.loc[(370.0, "P")]
    assert (c["root"], c["settlement"], c["underlying_price"], c["vendor_iv"], p["vendor_iv"]) == (
        "SPY", "PM", spot, 0.15, 0.16)  # spot_px, not the implied stkPx; each side's mid IV
    assert (c["bid"], c["ask"], c["volume"], c["open_interest"]) == (12.0, 12.2, 100, 1000)
    assert (p["bid"], p["ask"], p["volume"], p["open_interest"]) == (4.0, 4.1, 80, 900)
    assert p["vendor_delta"] == pytest.approx(float(g["delta"]) - 1.0)  # ORATS: put delta = call delta - 1
    assert c["vendor_theta"] == pytest.approx(float(g["theta"]), rel=1e-9) and np.isnan(p["vendor_theta"])
    assert p["vendor_vega"] == pytest.approx(float(g["vega"]), rel=1e-9)


def test_quantlake_layout_round_trip(tmp_path: Path) -> None:
    src = Lake(tmp_path / "a")
    ingest_option_files(src, _cboe_file(tmp_path / "cboe.csv"), ChainSettings(quote_time="1545"), progress=False)
    out = tmp_path / "export.csv"
    before = _quotes(src).drop(columns=["ingested_at", "source"])
    src.read("option_quotes").drop(columns=["ingested_at"]).to_csv(out, index=False)  # what query --format csv gives
    dst = Lake(tmp_path / "b")
    rep = ingest_option_files(dst, out, progress=False)
    assert (rep.accepted, rep.rejected) == (3, 0) and "layout quantlake" in " ".join(rep.notes)
    after = _quotes(dst).drop(columns=["ingested_at", "source"])
    pd.testing.assert_frame_equal(after, before, check_dtype=False)
