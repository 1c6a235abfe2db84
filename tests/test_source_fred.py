"""The fred adapter against a local fake FRED API (fredapi's real URL building and XML parsing, no internet).

``FredSource(base_url=...)`` sets fredapi's ``root_url`` to the local pytest-httpserver, which answers
``/series/observations`` like FRED from the XML files in tests/fixtures/fred/ (FRED's documented response
and error format), honouring observation_start/observation_end, realtime_start/realtime_end, offset and
api_key as FRED does.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from quantlake.errors import (
    InvalidSymbolError,
    MissingCredentialsError,
    QuantlakeError,
    SourceError,
    SourceUnavailableError,
)
from quantlake.sources import fred as fred_mod
from quantlake.sources.base import ROW_NO, MacroSource
from quantlake.sources.fred import FredSource
from quantlake.sources.netutil import Timeouts

pytestmark = pytest.mark.integration  # local HTTP servers

FIX = Path(__file__).parent / "fixtures" / "fred"
KEY = "abcdef0123456789abcdef0123456789"  # FRED keys are 32 lower-case alphanumerics


class FakeFred:
    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.page_size = 100_000
        self.status: int | None = None
        self.extra_rows: list[str] = []

    def __call__(self, request: Request) -> Response:
        args = dict(request.args.items())
        self.requests.append(args)
        if self.status:
            return _xml(f'<error code="{self.status}" message="Internal Server Error"/>', self.status)
        if args.get("api_key") != KEY:
            return _xml((FIX / "error_api_key_not_registered.xml").read_text(), 400)
        sid = args.get("series_id", "")
        vintages = args.get("realtime_start") == "1776-07-04"
        fixture = FIX / (f"{sid}_vintages.xml" if vintages else f"{sid}.xml")
        if not fixture.exists():
            return _xml((FIX / "error_series_does_not_exist.xml").read_text(), 400)
        root = ET.fromstring(fixture.read_text())
        rows = list(root) + [ET.fromstring(r) for r in self.extra_rows]
        lo, hi = args.get("observation_start", "0000"), args.get("observation_end", "9999")
        rows = [r for r in rows if lo <= r.get("date", "") <= hi]
        offset = int(args.get("offset", 0))
        root[:] = rows[offset : offset + self.page_size]
        root.set("count", str(len(rows)))
        root.set("offset", str(offset))
        return _xml(ET.tostring(root, encoding="unicode"))


def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/xml; charset=UTF-8")


@pytest.fixture()
def fake(httpserver: HTTPServer) -> FakeFred:
    f = FakeFred()
    httpserver.expect_request("/fred/series/observations").respond_with_handler(f)
    return f


@pytest.fixture()
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRED_API_KEY", KEY)


def _source(httpserver: HTTPServer, **kw: object) -> FredSource:
    return FredSource(base_url=httpserver.url_for("/fred"), **kw)  # type: ignore[arg-type]


def test_implements_protocol_and_lists_default_series() -> None:
    src = FredSource()
    assert isinstance(src, MacroSource) and src.name == "fred"
    assert "DGS10" in src.series_ids() and "UNRATE" in src.series_ids()


def test_latest_values_drop_missing_and_label_realtime_start(
    httpserver: HTTPServer, fake: FakeFred, keyed: None
) -> None:
    batch = _source(httpserver).macro("dgs10", dt.date(2018, 12, 31), dt.date(2019, 1, 4))
    f = batch.frame
    assert batch.table == "macro_series" and batch.unparsable == []
    # 2019-01-01 is "." in FRED (holiday): no observation, not an error
    assert list(f["date"]) == [dt.date(2018, 12, 31), dt.date(2019, 1, 2), dt.date(2019, 1, 3), dt.date(2019, 1, 4)]
    assert list(f["value"]) == [2.69, 2.66, 2.56, 2.67]
    assert list(f["realtime_start"]) == list(f["date"])  # latest mode: known on the observation date
    assert list(f[ROW_NO]) == [1, 3, 4, 5]  # row numbers in FRED's answer; row 2 was the holiday
    assert set(f["series_id"]) == {"DGS10"} and set(f["source"]) == {"fred"}
    req = fake.requests[-1]
    assert req["series_id"] == "DGS10" and req["api_key"] == KEY
    assert (req["observation_start"], req["observation_end"]) == ("2018-12-31", "2019-01-04")
    assert "realtime_start" not in req


def test_vintages_keep_every_realtime_start(httpserver: HTTPServer, fake: FakeFred, keyed: None) -> None:
    batch = _source(httpserver, vintages=True).macro("GDP", dt.date(2013, 10, 1), None)
    f = batch.frame.sort_values("realtime_start")
    assert list(zip(f["date"], f["realtime_start"], f["value"], strict=True)) == [
        (dt.date(2013, 10, 1), dt.date(2014, 1, 30), 17102.5),
        (dt.date(2013, 10, 1), dt.date(2014, 2, 28), 17080.7),
        (dt.date(2013, 10, 1), dt.date(2014, 3, 27), 17089.6),
    ]
    assert list(f[ROW_NO]) == [5, 6, 7]
    req = fake.requests[-1]
    assert (req["realtime_start"], req["realtime_end"]) == ("1776-07-04", "9999-12-31")
    whole = _source(httpserver, vintages=True).macro("GDP", None, None).frame
    assert len(whole) == 5  # two '.' vintages (before the first release) dropped
    assert whole.duplicated(["series_id", "date", "realtime_start"]).sum() == 0


def test_paged_answers_are_followed(httpserver: HTTPServer, fake: FakeFred, keyed: None) -> None:
    fake.page_size = 3
    f = _source(httpserver).macro("DGS10", None, None).frame
    assert len(f) == 9 and f["date"].is_monotonic_increasing
    assert [r.get("offset") for r in fake.requests] == [None, "3", "6", "9"]


def test_unparsable_rows_are_reported_not_fatal(httpserver: HTTPServer, fake: FakeFred, keyed: None) -> None:
    fake.extra_rows = [
        '<observation realtime_start="2025-09-26" realtime_end="2025-09-26" date="2019-01-11" value="n/a"/>',
        '<observation realtime_start="2025-09-26" realtime_end="2025-09-26" date="2019-13-01" value="2.8"/>',
    ]
    batch = _source(httpserver).macro("DGS10", None, None)
    assert len(batch.frame) == 9
    assert [(n, r.split(" (")[0]) for n, r, _ in batch.unparsable] == [
        (11, "value is not a number"),
        (12, "date is not a date"),
    ]
    assert batch.unparsable[0][2]["date"] == "2019-01-11"


def test_unknown_series_is_a_user_error_naming_it(httpserver: HTTPServer, fake: FakeFred, keyed: None) -> None:
    with pytest.raises(InvalidSymbolError, match="NOSUCHSERIES") as exc:
        _source(httpserver).macro("NOSUCHSERIES", None, None)
    assert "series does not exist" in str(exc.value)


def test_invalid_series_id_never_reaches_the_server(httpserver: HTTPServer, fake: FakeFred, keyed: None) -> None:
    with pytest.raises(InvalidSymbolError):
        _source(httpserver).macro("DGS10&api_key=x", None, None)
    assert fake.requests == []


def test_missing_key(httpserver: HTTPServer, fake: FakeFred, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRED_API_KEY", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    src = _source(httpserver)
    assert src.series_ids()  # listing needs no key
    with pytest.raises(MissingCredentialsError):
        src.check_credentials()  # what a CLI can call before it starts Prefect
    t0 = time.monotonic()
    with pytest.raises(MissingCredentialsError, match="FRED_API_KEY"):
        src.macro("DGS10", None, None)
    assert time.monotonic() - t0 < 5 and fake.requests == []


def test_prefect_secret_block_is_the_fallback(
    httpserver: HTTPServer, fake: FakeFred, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRED_API_KEY", raising=False)
    asked: list[str] = []

    def secret(name: str) -> str:
        asked.append(name)
        return KEY

    monkeypatch.setattr(fred_mod, "_prefect_secret", secret)
    assert len(_source(httpserver).macro("DGS10", None, None).frame) == 9
    assert asked == ["fred-api-key"]
    monkeypatch.setenv("FRED_API_KEY", KEY)  # the environment wins: no block lookup
    asked.clear()
    _source(httpserver).macro("DGS10", None, None)
    assert asked == []


def test_rejected_key_is_a_credentials_error(
    httpserver: HTTPServer, fake: FakeFred, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRED_API_KEY", "wrongkey0123456789wrongkey012345")
    with pytest.raises(MissingCredentialsError, match="rejected") as exc:
        _source(httpserver).macro("DGS10", None, None)
    assert "wrongkey" not in str(exc.value)


def test_server_error(httpserver: HTTPServer, fake: FakeFred, keyed: None) -> None:
    fake.status = 500
    with pytest.raises(SourceError, match="HTTP 500") as exc:
        _source(httpserver).macro("DGS10", None, None)
    assert not isinstance(exc.value, SourceUnavailableError)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_refused_connection_is_unavailable_fast(keyed: None) -> None:
    src = FredSource(base_url=f"http://127.0.0.1:{_closed_port()}/fred")
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="connection refused") as exc:
        src.macro("DGS10", None, None)
    assert time.monotonic() - t0 < 2
    assert "DGS10" in str(exc.value) and "\n" not in str(exc.value)


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


def test_hung_server_times_out(keyed: None, silent_port: int) -> None:
    src = FredSource(base_url=f"http://127.0.0.1:{silent_port}/fred", timeouts=Timeouts(connect=0.5, read=0.5))
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="timed out"):
        src.macro("DGS10", None, None)
    assert time.monotonic() - t0 < 2


def test_the_key_never_appears_in_errors(
    httpserver: HTTPServer, fake: FakeFred, keyed: None, silent_port: int
) -> None:
    errors: list[QuantlakeError] = []
    cases = [
        (_source(httpserver), "NOSUCHSERIES"),
        (FredSource(base_url=f"http://127.0.0.1:{_closed_port()}/fred"), "DGS10"),
        (FredSource(base_url=f"http://127.0.0.1:{silent_port}/fred", timeouts=Timeouts(0.3, 0.3)), "DGS10"),
    ]
    for src, sid in cases:
        with pytest.raises(QuantlakeError) as exc:
            src.macro(sid, None, None)
        errors.append(exc.value)
        assert KEY not in repr(src)
    fake.status = 500
    with pytest.raises(QuantlakeError) as exc:
        _source(httpserver).macro("DGS10", None, None)
    errors.append(exc.value)
    assert len(errors) == 4
    for e in errors:
        assert KEY not in str(e) and KEY not in repr(e.args)
        assert e.__cause__ is None and e.__suppress_context__  # no chained urllib/requests error with the URL


def test_vintage_batches_land_in_the_lake(httpserver: HTTPServer, fake: FakeFred, keyed: None, lake: object) -> None:
    from quantlake.ingest import ingest_macro

    (rep,) = ingest_macro(lake, _source(httpserver, vintages=True), ["GDP"], progress=False)  # type: ignore[arg-type]
    assert (rep.accepted, rep.rejected, rep.inserted) == (5, 0, 5)
    df = lake.query("SELECT count(DISTINCT realtime_start) AS n FROM macro_series WHERE date = '2013-10-01'")  # type: ignore[attr-defined]
    assert int(df["n"][0]) == 3
