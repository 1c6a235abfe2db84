"""The cot adapter: CFTC's yearly zips served by a local pytest-httpserver, and local files.

The zips are built here from the text files in tests/fixtures/cot/, which follow CFTC's layout (quoted
header names including the ``Swap__Positions_Short_All`` quirk, quoted names and codes, space-padded counts,
CRLF line ends).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from quantlake.errors import MalformedFileError, SourceError, SourceUnavailableError, UserInputError
from quantlake.sources.base import ROW_NO
from quantlake.sources.base import CotSource as CotProtocol
from quantlake.sources.cot import CotSource, normalize_header
from quantlake.sources.netutil import Timeouts

FIX = Path(__file__).parent / "fixtures" / "cot"
HISTORY = "/files/dea/history"


def _zip(member: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    return buf.getvalue()


# what CFTC publishes, by file name (each zip holds one text file)
ZIPS = {
    "com_disagg_txt_2023.zip": ("c_year.txt", "c_year_2023.txt"),
    "com_disagg_txt_2024.zip": ("c_year.txt", "c_year_2024.txt"),
    "fut_disagg_txt_2024.zip": ("f_year.txt", "c_year_2024.txt"),
    "com_fin_txt_2024.zip": ("FinComYY.txt", "FinComYY_2024.txt"),
}


class FakeCftc:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.override: dict[str, Response] = {}

    def __call__(self, request: Request) -> Response:
        name = request.path.rsplit("/", 1)[1]
        self.requests.append((name, request.headers.get("User-Agent", "")))
        if name in self.override:
            return self.override[name]
        if name not in ZIPS:
            return Response("<html>Page not found</html>", status=404, content_type="text/html")
        member, fixture = ZIPS[name]
        return Response(_zip(member, (FIX / fixture).read_text()), content_type="application/zip")


@pytest.fixture()
def cftc(httpserver: HTTPServer) -> FakeCftc:
    fake = FakeCftc()
    httpserver.expect_request(re.compile(f"^{HISTORY}/.*")).respond_with_handler(fake)
    return fake


def _net(httpserver: HTTPServer, today: dt.date = dt.date(2024, 1, 15), **kw: object) -> CotSource:
    return CotSource(base_url=httpserver.url_for(HISTORY), today=lambda: today, **kw)  # type: ignore[arg-type]


def _row(f: pd.DataFrame, code: str, day: dt.date) -> dict[str, Any]:
    rows = f[(f["market_code"] == code) & (f["report_date"] == day)].to_dict("records")
    assert len(rows) == 1
    return {str(k): v for k, v in rows[0].items()}


def test_normalize_header_absorbs_cftc_quirks() -> None:
    assert normalize_header("Swap__Positions_Short_All") == "swap_positions_short_all"
    assert normalize_header(" Prod_Merc_Positions_Long_ALL ") == "prod_merc_positions_long_all"
    assert normalize_header("Report_Date_as_YYYY-MM-DD") == "report_date_as_yyyy_mm_dd"


@pytest.mark.integration
def test_download_disaggregated_years_and_map_columns(httpserver: HTTPServer, cftc: FakeCftc) -> None:
    src = _net(httpserver)
    assert isinstance(src, CotProtocol) and src.incremental
    batch = src.cot("disaggregated", dt.date(2023, 12, 20), None)
    assert [n for n, _ in cftc.requests] == ["com_disagg_txt_2023.zip", "com_disagg_txt_2024.zip"]
    assert all(ua for _, ua in cftc.requests)  # CFTC refuses clients without a User-Agent
    f = batch.frame
    assert batch.table == "cot_positions" and batch.unparsable == []
    # 2023-12-19 is before start; 2023-12-26, 2024-01-02 and 2024-01-09 for three markets
    assert sorted(set(f["report_date"])) == [dt.date(2023, 12, 26), dt.date(2024, 1, 2), dt.date(2024, 1, 9)]
    assert sorted(set(f["market_code"])) == ["002602", "067651", "088691"]  # leading zeros kept
    assert set(f["report_type"]) == {"disaggregated"} and set(f["source"]) == {"cot"}
    crude = _row(f, "067651", dt.date(2024, 1, 9))  # first data row of c_year_2024.txt
    assert crude["market_name"] == "WTI-PHYSICAL - NEW YORK MERCANTILE EXCHANGE"
    assert crude["open_interest"] == 1943641
    assert (crude["prod_merc_long"], crude["prod_merc_short"]) == (250230, 532239)
    assert (crude["swap_long"], crude["swap_short"]) == (135850, 372560)  # Swap__Positions_Short_All
    assert (crude["managed_money_long"], crude["managed_money_short"]) == (226699, 136214)
    assert (crude["other_rept_long"], crude["other_rept_short"]) == (110488, 139021)
    assert (crude["nonrept_long"], crude["nonrept_short"]) == (957413, 500646)
    assert math.isnan(float(crude["dealer_long"]))  # a financial-report column
    assert crude[ROW_NO] == 7  # rows count across files: the 2023 file had 6 data rows
    assert batch.origin == httpserver.url_for(f"{HISTORY}/com_disagg_txt_2023-2024.zip")
    assert f["open_interest"].dtype == float


@pytest.mark.integration
def test_financial_report(httpserver: HTTPServer, cftc: FakeCftc) -> None:
    batch = _net(httpserver).cot("financial", dt.date(2024, 1, 1), dt.date(2024, 1, 5))
    assert [n for n, _ in cftc.requests] == ["com_fin_txt_2024.zip"]
    f = batch.frame
    assert list(f["report_date"].unique()) == [dt.date(2024, 1, 2)]
    assert sorted(f["market_code"]) == ["043602", "1170E1", "13874A"]
    es = _row(f, "13874A", dt.date(2024, 1, 2))
    assert es["market_name"] == "E-MINI S&P 500 - CHICAGO MERCANTILE EXCHANGE"
    assert set(f["report_type"]) == {"financial"}
    for col in ("dealer_long", "asset_mgr_short", "lev_money_long", "nonrept_short", "open_interest"):
        assert es[col] > 0
    assert math.isnan(float(es["prod_merc_long"]))


@pytest.mark.integration
def test_futures_only_files(httpserver: HTTPServer, cftc: FakeCftc) -> None:
    batch = _net(httpserver, futures_only=True).cot("disaggregated", dt.date(2024, 1, 1), None)
    assert [n for n, _ in cftc.requests] == ["fut_disagg_txt_2024.zip"]
    assert len(batch.frame) == 6


@pytest.mark.integration
def test_unpublished_current_year_is_empty_but_a_missing_past_year_is_an_error(
    httpserver: HTTPServer, cftc: FakeCftc
) -> None:
    early = _net(httpserver, today=dt.date(2025, 1, 3))
    batch = early.cot("financial", dt.date(2024, 12, 30), None)
    assert [n for n, _ in cftc.requests] == ["com_fin_txt_2024.zip", "com_fin_txt_2025.zip"]
    assert batch.frame.empty  # 2024 file has only January rows; 2025 not published yet
    with pytest.raises(SourceError, match=r"HTTP 404 .*com_fin_txt_2023\.zip"):
        _net(httpserver).cot("financial", dt.date(2023, 6, 1), None)


@pytest.mark.integration
def test_server_failures(httpserver: HTTPServer, cftc: FakeCftc) -> None:
    cftc.override["com_fin_txt_2024.zip"] = Response("<html>busy</html>", status=503)
    with pytest.raises(SourceError, match="HTTP 503"):
        _net(httpserver).cot("financial", dt.date(2024, 1, 1), None)
    cftc.override["com_fin_txt_2024.zip"] = Response(b"PK\x03\x04 truncated", content_type="application/zip")
    with pytest.raises(SourceError, match="not a readable zip"):
        _net(httpserver).cot("financial", dt.date(2024, 1, 1), None)


def test_unknown_report_type() -> None:
    with pytest.raises(UserInputError, match="legacy"):
        CotSource(base_url="http://127.0.0.1:9").cot("legacy", None, None)


# ----------------------------------------------------------------------------------------------- local files
def test_local_zip_txt_and_directory(tmp_path: Path) -> None:
    z = tmp_path / "com_disagg_txt_2024.zip"
    z.write_bytes(_zip("c_year.txt", (FIX / "c_year_2024.txt").read_text()))
    src = CotSource(path=z)
    assert not src.incremental
    dis = src.cot("disaggregated", None, None)
    assert len(dis.frame) == 6 and dis.origin.startswith(str(z))
    assert src.cot("financial", None, None).frame.empty  # that file holds no financial report

    d = tmp_path / "downloads"
    d.mkdir()
    (d / "com_disagg_txt_2024.zip").write_bytes(z.read_bytes())
    (d / "FinComYY.txt").write_text((FIX / "FinComYY_2024.txt").read_text())
    both = CotSource(path=d)
    assert len(both.cot("disaggregated", None, None).frame) == 6
    fin = both.cot("financial", dt.date(2024, 1, 9), dt.date(2024, 1, 9)).frame
    assert len(fin) == 3 and set(fin["report_date"]) == {dt.date(2024, 1, 9)}


def test_unparsable_rows_are_kept_with_reasons(tmp_path: Path) -> None:
    lines = (FIX / "c_year_2024.txt").read_text().splitlines()
    good = lines[1].split(",")

    def variant(**changes: str) -> str:
        cells = list(good)
        for pos, value in changes.items():
            cells[int(pos[1:])] = value
        return ",".join(cells)

    bad = [
        variant(p1="991399", p2="2024-13-45"),  # no readable date (neither column)
        variant(p3='""'),  # no market code
        variant(p9="12x45"),  # Prod_Merc_Positions_Short_All not a number
        ",".join(good[:10]),  # truncated line
        variant(p2="", p1="240116"),  # empty report date, the YYMMDD column still tells the date
        variant(p10="."),  # "." is a missing count, not an error
    ]
    f = tmp_path / "c_year.txt"
    f.write_text("\r\n".join([*lines, *bad]) + "\r\n")
    batch = CotSource(path=f).cot("disaggregated", None, None)
    reasons = {n: r for n, r, _ in batch.unparsable}
    assert sorted(reasons) == [7, 8, 9, 10]
    assert reasons[7].startswith("report date is not a date")
    assert reasons[8] == "market code is missing"
    assert reasons[9] == "Prod_Merc_Positions_Short_All is not a number (got '12x45')"
    assert reasons[10] == "row has 10 fields, the header has 32"
    raw = dict(batch.unparsable[2][2])
    assert raw["_file"] == str(f) and raw["Prod_Merc_Positions_Short_All"] == "12x45"
    frame = batch.frame
    assert len(frame) == 8 and list(frame[ROW_NO])[-2:] == [11, 12]
    assert frame.iloc[-2]["report_date"] == dt.date(2024, 1, 16)
    assert math.isnan(frame.iloc[-1]["swap_long"])


def test_older_header_spellings(tmp_path: Path) -> None:
    lines = (FIX / "c_year_2024.txt").read_text().splitlines()
    header = (
        lines[0]
        .replace("Report_Date_as_YYYY-MM-DD", "Report_Date_as_MM_DD_YYYY")
        .replace("Swap__Positions_Short_All", "Swap_Positions_Short_All")
        .replace("Prod_Merc_Positions_Long_All", "Prod_Merc_Positions_Long_ALL")
    )
    body = [ln.replace(",2024-01-09,", ",01/09/2024,").replace(",2024-01-02,", ",1/2/2024 12:00:00 AM,")
            for ln in lines[1:]]  # fmt: skip
    f = tmp_path / "old.txt"
    f.write_text("\n".join([header, *body]))
    frame = CotSource(path=f).cot("disaggregated", None, None).frame
    assert sorted(set(frame["report_date"])) == [dt.date(2024, 1, 2), dt.date(2024, 1, 9)]
    crude = _row(frame, "067651", dt.date(2024, 1, 9))
    assert (crude["prod_merc_long"], crude["swap_short"]) == (250230, 372560)


def test_a_file_that_is_not_cot(tmp_path: Path) -> None:
    f = tmp_path / "bars.csv"
    f.write_text("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n")
    with pytest.raises(MalformedFileError, match="not a CFTC"):
        CotSource(path=f).cot("disaggregated", None, None)
    with pytest.raises(UserInputError, match="does not exist"):
        CotSource(path=tmp_path / "missing.zip")


# ----------------------------------------------------------------------------------------------- offline
def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.mark.integration
def test_refused_connection_is_unavailable_fast() -> None:
    src = CotSource(base_url=f"http://127.0.0.1:{_closed_port()}{HISTORY}", today=lambda: dt.date(2024, 1, 15))
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="connection refused") as exc:
        src.cot("disaggregated", dt.date(2024, 1, 1), None)
    assert time.monotonic() - t0 < 2 and "\n" not in str(exc.value)


@pytest.fixture()
def silent_port() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


@pytest.mark.integration
def test_hung_server_times_out(silent_port: int) -> None:
    src = CotSource(base_url=f"http://127.0.0.1:{silent_port}{HISTORY}", timeouts=Timeouts(0.5, 0.5),
                    today=lambda: dt.date(2024, 1, 15))  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="timed out"):
        src.cot("financial", dt.date(2023, 1, 1), None)  # two years: the first failure ends the call
    assert time.monotonic() - t0 < 2


@pytest.mark.integration
def test_batches_land_in_the_lake(httpserver: HTTPServer, cftc: FakeCftc, lake: object) -> None:
    from quantlake.ingest import ingest_cot

    src = _net(httpserver)
    (rep,) = ingest_cot(lake, src, start=dt.date(2024, 1, 1), progress=False)  # type: ignore[arg-type]
    assert (rep.accepted, rep.rejected, rep.inserted, rep.failures) == (6 + 6, 0, 12, {})
    (again,) = ingest_cot(lake, src, start=dt.date(2024, 1, 1), progress=False)  # type: ignore[arg-type]
    assert again.inserted == 0 and again.updated == 0
