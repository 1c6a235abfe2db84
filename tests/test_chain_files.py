"""Vendor chain files into option_quotes: the daily chain download layout from its documented columns,
the root-keyed contract (SPX and SPXW side by side), vendor quirks, quarantine with raw text, the upgrade of
an old lake, and the shipped SPX sample."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from features.pricing import bs_greeks
from quantlake.errors import MalformedFileError, UserInputError
from quantlake.ingest_chains import ingest_option_files
from quantlake.lake import Lake
from quantlake.option_quotes import underlying_levels, upgrade_option_quotes
from quantlake.sources.chains import ChainSettings, detect

D = dt.date
# the documented header, written the way vendor files come: odd case, stray spaces, a BOM, CRLF line ends
DAILY_HEADER = (
    "\ufeffUnderlying, UNDERLYING_LAST ,exchange,OptionRoot,type,Expiration,QuoteDate,strike,last,net,bid,ask,"
    "volume,openinterest,impliedvol,delta,gamma"
)


def _daily_row(root: str, exp: dt.date, right: str, k: float, bid: float, ask: float, qd: dt.date = D(2019, 5, 16),
               iv: float = 0.15, spot: float = 2876.32, und: str = "SPX") -> str:  # fmt: skip
    occ = f"{root}{exp:%y%m%d}{right[0].upper()}{round(k * 1000):08d}"
    return (f"{und},{spot},CBOE,{occ},{right},{exp:%m/%d/%Y},{qd:%m/%d/%Y},{k},1.5,0.1,{bid},{ask},10,250,{iv},"
            "0.5,0.001")  # fmt: skip


def _write(path: Path, lines: list[str], gz: bool = False) -> Path:
    text = "\r\n".join(lines) + "\r\n"
    if gz:
        with gzip.open(path, "wt", newline="") as fh:
            fh.write(text)
    else:
        path.write_text(text, newline="")
    return path


def test_daily_layout_roots_settlement_no_market_and_quarantine(tmp_path: Path, lake: Lake) -> None:
    monthly, weekly = D(2019, 5, 17), D(2019, 5, 20)  # the third Friday (SPX and SPXW) and a Monday weekly
    rows = [
        _daily_row("SPX", monthly, "call", 2875.0, 20.1, 20.9),
        _daily_row("SPXW", monthly, "call", 2875.0, 20.3, 21.0),  # same terms, the PM-settled weekly root
        _daily_row("SPXW", weekly, "put", 2850.0, 0.0, 0.0),  # nobody quotes it: kept, flagged
        _daily_row("SPXW", weekly, "put", 2800.0, 1.0, 1.2, qd=D(2019, 5, 27)),  # Memorial Day
        _daily_row("SPXW", weekly, "call", 2900.0, 3.0, 2.0),  # bid > ask
        _daily_row("SPXW", weekly, "call", 2950.0, 1.0, 1.1).replace(",10,250,", ",inf,250,"),  # volume inf
        _daily_row("SPXW", D(2019, 5, 24), "call", 2900.0, 5.0, 5.2).replace("SPXW190524C", "SPXW190524P"),
        "SPX,2876.32,CBOE,SPXW190520C02925000,call,05/20/2019,05/16/2019,2925.0,1,0,1,1.1,10",  # short row
    ]
    f = _write(tmp_path / "SPX_20190516.csv", [DAILY_HEADER, *rows])
    rep = ingest_option_files(lake, f, progress=False)
    assert (rep.rows_read, rep.accepted, rep.rejected) == (8, 3, 5)

    q = lake.read("option_quotes").set_index(["root", "expiry", "strike", "right"])
    q.index = q.index.set_levels(pd.to_datetime(q.index.levels[1]).date, level=1)
    assert q.loc[("SPX", monthly, 2875.0, "C"), "settlement"] == "AM"
    assert q.loc[("SPXW", monthly, 2875.0, "C"), "settlement"] == "PM"
    assert q.loc[("SPXW", monthly, 2875.0, "C"), "bid"] == 20.3
    assert q.loc[("SPXW", weekly, 2850.0, "P"), "no_market"]
    assert not q.loc[("SPX", monthly, 2875.0, "C"), "no_market"]
    first = q.loc[("SPX", monthly, 2875.0, "C")]
    assert (first["underlying"], first["underlying_price"], first["vendor_iv"], first["vendor_delta"]) == (
        "SPX", 2876.32, 0.15, 0.5)
    assert first["contract"] == "SPX190517C02875000" and first["source"] == "csv"

    rej = lake.read("rejected_rows").set_index("row_no")
    assert "XNYS holiday" in rej.loc[4, "reason"]
    assert rej.loc[5, "reason"] == "bid > ask"
    assert rej.loc[6, "reason"] == "volume must be finite (got inf)"
    assert "optionroot SPXW190524P02900000 is 2019-05-24 P 2900, the row says 2019-05-24 C 2900" in rej.loc[7, "reason"]
    assert rej.loc[8, "reason"] == "row has 13 field(s), the header has 17"
    # the raw row is the file's text, cell for cell, not parsed values
    raw = json.loads(rej.loc[6, "raw"])
    assert raw["volume"] == "inf" and raw["OptionRoot"] == "SPXW190520C02950000" and raw["QuoteDate"] == "05/16/2019"
    assert json.loads(rej.loc[8, "raw"])["fields"][3] == "SPXW190520C02925000"

    again = ingest_option_files(lake, f, progress=False)  # a rerun adds nothing, quarantines nothing twice
    assert (again.inserted, again.updated) == (0, 0)
    assert len(lake.read("rejected_rows")) == 5


def test_percent_ivs_zip_gz_recursive_and_l2_aliases(tmp_path: Path, lake: Lake) -> None:
    d = tmp_path / "vendor" / "2019"
    d.mkdir(parents=True)
    exp = D(2019, 6, 21)
    _write(d / "a.csv.gz", [DAILY_HEADER, _daily_row("SPX", exp, "put", 2800.0, 30, 31, iv=14.5)], gz=True)
    with zipfile.ZipFile(tmp_path / "vendor" / "b.zip", "w") as zf:
        zf.writestr("inner/b.csv", DAILY_HEADER + "\n" + _daily_row("SPXW", exp, "put", 2800.0, 30, 31, iv=16.0))
    # historicaloptiondata "Level 2" names for the same columns, a date with a time, no BOM
    l2 = ("UnderlyingSymbol,UnderlyingPrice,Exchange,OptionSymbol,Blank,Type,Expiration, DataDate,Strike,Last,Bid,"
          "Ask,Volume,OpenInterest,IV,Delta,Gamma,Theta,Vega,Alias")  # fmt: skip
    _write(tmp_path / "vendor" / "c.csv", [
        l2, "SPY,298.09,*,SPY191220C00300000,,call,12/20/2019,09/10/2019 16:00,300,7.99,7.96,8.06,514,74443,0.1443,"
            "0.4768,0.0176,-15.9085,61.8811,SPY191220C00300000"])  # fmt: skip
    rep = ingest_option_files(lake, tmp_path / "vendor", progress=False)
    assert (rep.rows_read, rep.accepted, rep.rejected) == (3, 3, 0)
    q = lake.read("option_quotes").set_index("root")
    assert q.loc["SPX", "vendor_iv"] == pytest.approx(0.145)  # 14.5 in that file: percent, read as such
    assert q.loc["SPXW", "vendor_iv"] == pytest.approx(0.16)
    spy = q.loc["SPY"]
    assert (spy["underlying"], pd.Timestamp(spy["quote_date"]).date(), spy["vendor_theta"], spy["vendor_vega"]) == (
        "SPY", D(2019, 9, 10), pytest.approx(-15.9085), pytest.approx(61.8811))  # already per year / per 1.00
    origins = set(lake.query("select distinct source from option_quotes")["source"])
    assert origins == {"csv"}


def test_vendor_theta_and_vega_units_recognised(tmp_path: Path, lake: Lake) -> None:
    """A file quoting theta per calendar day and vega per vol point is stored in DESIGN units."""
    qd, exp, spot = D(2019, 5, 16), D(2019, 6, 21), 2876.32
    strikes = np.arange(2700.0, 3050.0, 5.0)
    t = (exp - qd).days / 365
    g = bs_greeks("C", spot, strikes, t, 0.02, 0.0, 0.16)
    head = DAILY_HEADER + ",theta,vega"
    lines = [head] + [
        _daily_row("SPX", exp, "call", k, 10, 11, iv=0.16) + f",{th / 365:.8f},{ve / 100:.8f}"
        for k, th, ve in zip(strikes, g["theta"], g["vega"], strict=True)
    ]
    ingest_option_files(lake, _write(tmp_path / "x.csv", lines), progress=False)
    q = lake.read("option_quotes").sort_values("strike")
    np.testing.assert_allclose(q["vendor_theta"], g["theta"], rtol=1e-5)
    np.testing.assert_allclose(q["vendor_vega"], g["vega"], rtol=1e-5)


def test_unknown_layout_and_forced_format_fail_before_anything_is_written(tmp_path: Path, lake: Lake) -> None:
    good = _write(tmp_path / "a.csv", [DAILY_HEADER, _daily_row("SPX", D(2019, 6, 21), "put", 2800.0, 1, 2)])
    _write(tmp_path / "b.csv", ["date,open,close", "2019-01-02,1,2"])
    with pytest.raises(MalformedFileError, match=r"b\.csv: the header \(date, open, close\) matches no chain layout"):
        ingest_option_files(lake, tmp_path, progress=False)
    assert not lake.exists("option_quotes")
    with pytest.raises(MalformedFileError, match="not a orats file: missing column"):
        ingest_option_files(lake, good, fmt="orats", progress=False)
    with pytest.raises(UserInputError, match="does not exist"):
        ingest_option_files(lake, tmp_path / "nope", progress=False)
    assert detect(DAILY_HEADER.split(","), "x").name == "daily"


def test_underlying_option_checks_the_rows(tmp_path: Path, lake: Lake) -> None:
    f = _write(tmp_path / "a.csv", [DAILY_HEADER, _daily_row("SPX", D(2019, 6, 21), "put", 2800.0, 1, 2),
                                    _daily_row("NDX", D(2019, 6, 21), "put", 7000.0, 1, 2, und="NDX")])  # fmt: skip
    rep = ingest_option_files(lake, f, ChainSettings(underlying="SPX"), progress=False)
    assert (rep.accepted, rep.rejected) == (1, 1)
    assert lake.read("rejected_rows")["reason"].tolist() == ["underlying 'NDX' is not the --underlying SPX"]


def test_old_lake_is_upgraded_once_with_one_line(lake: Lake) -> None:
    """A lake written before the root joined the key: root from the OCC contract, else the underlying."""
    old = pa.table({
        "quote_date": pa.array([D(2019, 5, 16)] * 3, pa.date32()), "underlying": ["SPX", "SPX", "^GDAXI"],
        "expiry": pa.array([D(2019, 5, 17), D(2019, 5, 20), D(2019, 6, 21)], pa.date32()),
        "strike": [2875.0, 2875.0, 12000.0], "right": ["C", "C", "P"], "bid": [20.0, 0.0, None],
        "ask": [21.0, 0.0, None], "last": [None, None, 300.0], "volume": [1.0, 2.0, 3.0],
        "open_interest": [None, None, None], "vendor_iv": [0.15, 0.16, 0.2], "underlying_price": [2876.0] * 3,
        "contract": ["SPX190517C02875000", "SPXW  190520C02875000", "GDAX12000R8.EX"],
        "source": ["csv", "csv", "sample"],
        "ingested_at": pa.array([None] * 3, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    path = lake.path("option_quotes")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(str(path), old, description=json.dumps(
        {"keys": ["quote_date", "underlying", "expiry", "strike", "right"], "date_column": "quote_date"}))
    msg = upgrade_option_quotes(lake)
    assert msg is not None and "upgraded 3 rows to the root-keyed contract" in msg and "\n" not in msg
    assert upgrade_option_quotes(lake) is None  # once
    new = lake.read("option_quotes").set_index("contract")
    assert new["root"].to_dict() == {"SPX190517C02875000": "SPX", "SPXW  190520C02875000": "SPXW",
                                     "GDAX12000R8.EX": "^GDAXI"}  # fmt: skip
    assert {k: None if pd.isna(v) else v for k, v in new["settlement"].items()} == {
        "SPX190517C02875000": "AM", "SPXW  190520C02875000": "PM", "GDAX12000R8.EX": None}  # fmt: skip
    assert new["no_market"].tolist() == [False, True, False]
    assert lake.spec("option_quotes").keys[2] == "root"
    assert "root" not in lake.read("option_quotes", version=0).columns  # the old version stays readable
    from features.chains import ChainProvider

    old_view = ChainProvider(Lake(lake.root, pins={"option_quotes": 0})).observed("SPX", D(2019, 5, 16))
    assert set(old_view["root"]) == {"SPX", "SPXW"}  # readers of the old version see roots too


def test_underlying_levels_accessor(tmp_path: Path, lake: Lake) -> None:
    lines = [DAILY_HEADER,
             _daily_row("SPX", D(2019, 6, 21), "put", 2800.0, 1, 2, qd=D(2019, 5, 16), spot=2876.32),
             _daily_row("SPX", D(2019, 6, 21), "call", 2800.0, 80, 82, qd=D(2019, 5, 16), spot=2876.32),
             _daily_row("SPX", D(2019, 6, 21), "put", 2800.0, 1, 2, qd=D(2019, 5, 17), spot=2859.53)]  # fmt: skip
    rep = ingest_option_files(lake, _write(tmp_path / "a.csv", lines), progress=False)
    assert any("SPX: no equity_bars in the lake" in n for n in rep.notes)
    lv = underlying_levels(lake, "SPX")
    assert lv.to_dict() == {D(2019, 5, 16): 2876.32, D(2019, 5, 17): 2859.53}
    assert underlying_levels(lake, "SPX", start=D(2019, 5, 17)).to_dict() == {D(2019, 5, 17): 2859.53}
    assert underlying_levels(lake, "QQQ").empty


def test_observed_chain_keeps_one_root_per_contract_and_never_prices_no_market(tmp_path: Path, lake: Lake) -> None:
    from features.chains import ChainProvider

    monthly, weekly = D(2019, 5, 17), D(2019, 5, 20)
    lines = [DAILY_HEADER, _daily_row("SPX", monthly, "call", 2875.0, 20.1, 20.9),
             _daily_row("SPXW", monthly, "call", 2875.0, 20.3, 21.0),
             _daily_row("SPXW", weekly, "put", 2850.0, 0.0, 0.0)]  # fmt: skip
    ingest_option_files(lake, _write(tmp_path / "a.csv", lines), progress=False)
    cp = ChainProvider(lake)
    chain = cp.observed("SPX", D(2019, 5, 16))
    assert len(chain) == 2 and chain.loc[chain["expiry"] == monthly, "root"].tolist() == ["SPXW"]
    assert np.isnan(chain.loc[chain["expiry"] == weekly, "mid"]).all()
    assert len(cp.observed("SPX", D(2019, 5, 16), all_roots=True)) == 3


def test_typed_parquet_files_in_subfolders(tmp_path: Path, lake: Lake) -> None:
    """Parquet chain files (typed columns, not text) of two layouts, one in a subfolder; a non-finite bid
    is quarantined with a raw row that is valid JSON."""
    d = tmp_path / "chains"
    (d / "sub").mkdir(parents=True)
    pd.DataFrame({
        "quote_date": [D(2019, 5, 16)] * 3, "underlying": "SPX", "root": ["SPX", "SPXW", "SPXW"],
        "expiry": [D(2019, 5, 17), D(2019, 5, 17), D(2019, 5, 20)], "strike": [2875.0, 2875.0, 2850.0],
        "right": ["C", "C", "P"], "bid": [20.1, 20.3, float("inf")], "ask": [20.9, 21.0, 1.2],
        "underlying_price": 2876.32,
    }).to_parquet(d / "q.parquet")  # fmt: skip
    pd.DataFrame({
        "underlying": ["SPX"], "underlying_last": [2876.32], "exchange": ["CBOE"],
        "optionroot": ["SPXW190520P02850000"], "type": ["put"], "expiration": ["05/20/2019"],
        "quotedate": ["05/16/2019"], "strike": [2850.0], "last": [1.5], "bid": [1.0], "ask": [1.2], "volume": [10],
        "openinterest": [250], "impliedvol": [0.15], "delta": [-0.2], "gamma": [0.001],
    }).to_parquet(d / "sub" / "daily.parquet")  # fmt: skip
    rep = ingest_option_files(lake, d, progress=False)
    assert (rep.rows_read, rep.accepted, rep.rejected) == (4, 3, 1)
    assert "layout daily, quantlake" in rep.notes[0]
    q = lake.read("option_quotes").sort_values(["root", "strike"])
    assert q[["root", "strike", "right", "bid"]].values.tolist() == [
        ["SPX", 2875.0, "C", 20.1], ["SPXW", 2850.0, "P", 1.0], ["SPXW", 2875.0, "C", 20.3]]  # fmt: skip
    rej = lake.read("rejected_rows").iloc[0]
    assert rej["row_no"] == 3 and "bid must be finite" in rej["reason"]
    assert json.loads(rej["raw"], parse_constant=lambda c: pytest.fail(f"raw holds {c}"))["bid"] == "inf"
