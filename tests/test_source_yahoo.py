"""The yahoo adapter against a local fake Yahoo server (real yfinance + curl_cffi code path, no internet).

``YahooSource(base_url=...)`` sends every request yfinance makes (fc.yahoo.com for the cookie,
query1/query2.finance.yahoo.com for crumb, chart and options, guce.yahoo.com for consent) to the local
pytest-httpserver, which answers like Yahoo from the recorded-format JSON files in tests/fixtures/yahoo/.
The fake insists on the cookie -> crumb dance for the options endpoint (401 "Invalid Crumb" otherwise),
like Yahoo does.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from quantlake.errors import InvalidSymbolError, SourceError, SourceUnavailableError
from quantlake.sources.base import ROW_NO, EquitySource, OptionSource
from quantlake.sources.netutil import Timeouts
from quantlake.sources.yahoo import YahooSource

pytestmark = pytest.mark.integration  # local HTTP servers

FIX = Path(__file__).parent / "fixtures" / "yahoo"
CRUMB = "Zq5.tEsT/crumb"
COOKIE_VALUE = "d=AQABBFakeCookie&S=AQAAAFake"


class FakeYahoo:
    """Answers the requests yfinance makes, from the fixture files; records what it was asked."""

    def __init__(self) -> None:
        self.log: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.options_status: int | None = None  # force an HTTP status on the options endpoint
        self.chart_status: int | None = None
        self.mutate_options: Any = None  # callable(doc) -> doc

    def __call__(self, request: Request) -> Response:
        args = {k: v for k, v in request.args.items()}
        self.log.append((request.path, args, dict(request.cookies)))
        path = request.path
        if path == "/":  # fc.yahoo.com: 404 page that sets the A3 cookie
            return Response("", status=404, headers={"Set-Cookie": f"A3={COOKIE_VALUE}; Path=/; HttpOnly"})
        if path == "/v1/test/getcrumb":
            if request.cookies.get("A3") != COOKIE_VALUE:
                return Response("", status=403)
            return Response(CRUMB, content_type="text/plain")
        if path.startswith("/v8/finance/chart/"):
            return self._chart(path.rsplit("/", 1)[1], args)
        if path.startswith("/v7/finance/options/"):
            return self._options(path.rsplit("/", 1)[1], args)
        return Response("<html>not here</html>", status=404, content_type="text/html")  # guce consent etc.

    def _chart(self, symbol: str, args: dict[str, str]) -> Response:
        if self.chart_status:
            return _json({"chart": {"result": None, "error": {"code": "Internal", "description": "boom"}}},
                         self.chart_status)
        fixture = FIX / f"chart_{symbol}.json"
        if not fixture.exists():
            err = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
            return _json({"chart": {"result": None, "error": err}}, 404)
        doc = json.loads(fixture.read_text())
        res = doc["chart"]["result"][0]
        stamps: list[int] = res["timestamp"]
        if "range" in args:
            n = {"1d": 1, "5d": 5}[args["range"]]
            keep = list(range(len(stamps)))[-n:]
        else:
            lo, hi = int(args["period1"]), int(args["period2"])
            keep = [i for i, t in enumerate(stamps) if lo <= t < hi]
        if not keep:  # what Yahoo sends for a range without trading days
            res.pop("timestamp")
            res.pop("events", None)
            res["indicators"] = {"quote": [{}], "adjclose": [{}]}
            return _json(doc)
        t0, t1 = stamps[keep[0]], stamps[keep[-1]]
        res["timestamp"] = [stamps[i] for i in keep]
        q = res["indicators"]["quote"][0]
        for k in list(q):
            q[k] = [q[k][i] for i in keep]
        adj = res["indicators"]["adjclose"][0]
        adj["adjclose"] = [adj["adjclose"][i] for i in keep]
        events = res.pop("events", {})
        wanted = args.get("events", "")
        kept_events = {
            kind: {k: v for k, v in items.items() if t0 <= int(k) <= t1}
            for kind, items in events.items()
            if kind[:3] in wanted
        }
        if any(kept_events.values()):
            res["events"] = kept_events
        return _json(doc)

    def _options(self, symbol: str, args: dict[str, str]) -> Response:
        if self.options_status:
            return _json({"finance": {"result": None, "error": {"code": "x", "description": "forced"}}},
                         self.options_status)
        if args.get("crumb") != CRUMB:
            err = {"code": "Unauthorized", "description": "Invalid Crumb"}
            return _json({"finance": {"result": None, "error": err}}, 401)
        files = sorted(FIX.glob(f"options_{symbol}_*.json"))
        if not files:
            return _json({"optionChain": {"result": [], "error": None}})
        chosen = FIX / f"options_{symbol}_{args['date']}.json" if "date" in args else files[0]
        doc = json.loads(chosen.read_text())
        if self.mutate_options is not None:
            doc = self.mutate_options(doc)
        return _json(doc)


def _json(doc: object, status: int = 200) -> Response:
    return Response(json.dumps(doc), status=status, content_type="application/json")


@pytest.fixture()
def fresh_yfinance(ql_home: Path) -> Iterator[None]:
    """yfinance keeps a process-wide session/crumb singleton and an lru cache of responses: reset both."""
    from yfinance.data import YfData

    type(YfData)._instances.pop(YfData, None)
    YfData.cache_get.cache_clear()
    yield
    type(YfData)._instances.pop(YfData, None)
    YfData.cache_get.cache_clear()


@pytest.fixture()
def fake(httpserver: HTTPServer, fresh_yfinance: None) -> FakeYahoo:
    f = FakeYahoo()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(f)
    return f


@pytest.fixture()
def yahoo(httpserver: HTTPServer, fake: FakeYahoo) -> YahooSource:
    clock = lambda: dt.datetime(2019, 3, 19, 20, 30, tzinfo=dt.UTC)  # noqa: E731  16:30 in New York
    return YahooSource(base_url=httpserver.url_for("/").rstrip("/"), clock=clock)


def _paths(fake: FakeYahoo, prefix: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    return [e for e in fake.log if e[0].startswith(prefix)]


# ----------------------------------------------------------------------------------------------- bars
def test_implements_protocols() -> None:
    src = YahooSource(base_url="http://127.0.0.1:9")
    assert isinstance(src, EquitySource) and isinstance(src, OptionSource)
    assert src.name == "yahoo" and src.symbols() == []


def test_bars_map_yahoo_chart_to_equity_bars(yahoo: YahooSource, fake: FakeYahoo) -> None:
    batch = yahoo.bars("aapl", dt.date(2014, 6, 2), dt.date(2014, 6, 13))
    f = batch.frame
    assert batch.table == "equity_bars" and batch.unparsable == []
    assert list(f["date"]) == [dt.date(2014, 6, d) for d in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13)]
    assert set(f["symbol"]) == {"AAPL"} and set(f["source"]) == {"yahoo"}
    assert list(f[ROW_NO]) == list(range(1, 11))
    first = f.iloc[0]  # sample_data/equities/AAPL.csv 2014-06-02, served in Yahoo's chart format
    assert first["open"] == pytest.approx(90.565712)
    assert first["high"] == pytest.approx(90.690002)
    assert first["low"] == pytest.approx(88.928574)
    assert first["close"] == pytest.approx(89.807144)
    assert first["adj_close"] == pytest.approx(84.227615)  # Adj Close kept apart from close
    assert first["volume"] == 92337700.0
    assert isinstance(first["date"], dt.date) and f["close"].dtype == float

    chart = _paths(fake, "/v8/finance/chart/AAPL")
    history = [a for _, a, _ in chart if "period1" in a]
    assert len(history) == 1
    args = history[0]
    ny = dt.timezone(dt.timedelta(hours=-4))
    assert int(args["period1"]) == int(dt.datetime(2014, 6, 2, tzinfo=ny).timestamp())
    assert int(args["period2"]) == int(dt.datetime(2014, 6, 14, tzinfo=ny).timestamp())  # end inclusive
    assert args["interval"] == "1d" and "div" in args["events"] and "split" in args["events"]


def test_actions_give_splits_and_dividends_from_the_same_download(yahoo: YahooSource, fake: FakeYahoo) -> None:
    start, end = dt.date(2014, 5, 5), dt.date(2014, 6, 13)
    bars = yahoo.bars("AAPL", start, end)
    acts = yahoo.actions("AAPL", start, end)
    assert acts is not None and acts.table == "corporate_actions"
    rows = acts.frame.sort_values("date").to_dict("records")
    assert [(r["date"], r["kind"], r["value"]) for r in rows] == [
        (dt.date(2014, 5, 8), "dividend", pytest.approx(0.47)),
        (dt.date(2014, 6, 9), "split", pytest.approx(7.0)),  # new shares per old share
    ]
    assert {r["source"] for r in rows} == {"yahoo"}
    # the action rows point at their bar row in the same origin
    split_row = bars.frame[bars.frame["date"] == dt.date(2014, 6, 9)][ROW_NO].item()
    assert rows[1][ROW_NO] == split_row
    assert len([a for _, a, _ in _paths(fake, "/v8/finance/chart/AAPL") if "period1" in a]) == 1


def test_etf_dividend(yahoo: YahooSource) -> None:
    acts = yahoo.actions("SPY", dt.date(2019, 3, 11), dt.date(2019, 3, 19))
    assert acts is not None
    assert acts.frame[["date", "kind", "value"]].values.tolist() == [[dt.date(2019, 3, 15), "dividend", 1.233]]


def test_open_ranges(yahoo: YahooSource, fake: FakeYahoo) -> None:
    assert len(yahoo.bars("SPY", None, None).frame) == 7  # everything Yahoo has
    f = yahoo.bars("AAPL", None, dt.date(2014, 5, 9)).frame
    assert list(f["date"]) == [dt.date(2014, 5, d) for d in (5, 6, 7, 8, 9)]
    f = yahoo.bars("AAPL", dt.date(2014, 6, 12), None).frame
    assert list(f["date"]) == [dt.date(2014, 6, 12), dt.date(2014, 6, 13)]


def test_range_without_trading_days_is_empty_not_an_error(yahoo: YahooSource) -> None:
    batch = yahoo.bars("AAPL", dt.date(2014, 6, 7), dt.date(2014, 6, 8))  # a weekend
    assert batch.frame.empty
    acts = yahoo.actions("AAPL", dt.date(2014, 6, 7), dt.date(2014, 6, 8))
    assert acts is not None and acts.frame.empty


def test_unknown_symbol_names_the_symbol(yahoo: YahooSource) -> None:
    with pytest.raises(InvalidSymbolError, match="NOSUCH"):
        yahoo.bars("NOSUCH", dt.date(2014, 6, 2), dt.date(2014, 6, 13))
    with pytest.raises(InvalidSymbolError, match="NOSUCH"):
        yahoo.option_chain("NOSUCH")


def test_invalid_symbol_is_rejected_before_any_request(yahoo: YahooSource, fake: FakeYahoo) -> None:
    with pytest.raises(InvalidSymbolError):
        yahoo.bars("../etc/passwd", None, None)
    assert fake.log == []


def test_server_error_is_a_source_error_not_an_unknown_symbol(yahoo: YahooSource, fake: FakeYahoo) -> None:
    # yfinance itself reads a 500 on its time-zone lookup as "no timezone" and one on the chart as
    # "no prices"; neither may become "unknown symbol" or an empty range
    fake.chart_status = 500
    with pytest.raises(SourceError, match="HTTP 500") as exc:
        yahoo.bars("AAPL", dt.date(2014, 6, 2), dt.date(2014, 6, 13))
    assert not isinstance(exc.value, SourceUnavailableError | InvalidSymbolError)
    with pytest.raises(SourceError, match="HTTP 500"):
        yahoo.option_chain("SPY")


# ----------------------------------------------------------------------------------------------- options
def test_option_chain_snapshot(yahoo: YahooSource, fake: FakeYahoo) -> None:
    batch = yahoo.option_chain("SPY")
    f = batch.frame
    assert batch.table == "option_quotes" and batch.unparsable == []
    assert len(f) == 10  # 2019-03-22: 3 calls + 3 puts, 2019-03-29: 2 calls + 2 puts
    assert set(f["quote_date"]) == {dt.date(2019, 3, 19)}
    assert set(f["expiry"]) == {dt.date(2019, 3, 22), dt.date(2019, 3, 29)}
    assert f["underlying_price"].tolist() == [pytest.approx(282.399994)] * 10  # last close of the chart
    assert list(f[ROW_NO]) == list(range(1, 11))
    put = f[(f["expiry"] == dt.date(2019, 3, 22)) & (f["right"] == "P") & (f["strike"] == 280.0)].iloc[0]
    assert put["contract"] == "SPY190322P00280000"
    assert (put["bid"], put["ask"], put["last"]) == (0.71, 0.73, 0.72)
    assert (put["volume"], put["open_interest"]) == (38765.0, 90321.0)
    assert put["vendor_iv"] == pytest.approx(0.1188)  # decimal, as Yahoo sends it
    assert set(f["source"]) == {"yahoo"}
    # the crumb fetched with the A3 cookie was sent with every options request
    crumb_calls = _paths(fake, "/v1/test/getcrumb")
    assert crumb_calls and crumb_calls[0][2].get("A3") == COOKIE_VALUE
    opts = _paths(fake, "/v7/finance/options/SPY")
    assert opts and all(a.get("crumb") == CRUMB for _, a, _ in opts)
    assert {a.get("date") for _, a, _ in opts} >= {"1553212800", "1553817600"}


def test_quote_date_is_the_new_york_date(httpserver: HTTPServer, fake: FakeYahoo) -> None:
    late = lambda: dt.datetime(2019, 3, 20, 3, 0, tzinfo=dt.UTC)  # noqa: E731  23:00 on the 19th in New York
    src = YahooSource(base_url=httpserver.url_for("/").rstrip("/"), clock=late, max_expiries=1)
    f = src.option_chain("SPY").frame
    assert set(f["quote_date"]) == {dt.date(2019, 3, 19)}
    assert set(f["expiry"]) == {dt.date(2019, 3, 22)}


def test_option_row_without_strike_goes_to_unparsable(yahoo: YahooSource, fake: FakeYahoo) -> None:
    def drop_strike(doc: dict[str, Any]) -> dict[str, Any]:
        doc["optionChain"]["result"][0]["options"][0]["calls"][1]["strike"] = None
        return doc

    fake.mutate_options = drop_strike
    batch = yahoo.option_chain("SPY")
    assert len(batch.unparsable) == 2  # the second call of each expiry
    row_no, reason, raw = batch.unparsable[0]
    assert row_no == 2 and "strike" in reason and raw["contractSymbol"] == "SPY190322C00282000"
    assert len(batch.frame) == 8 and 2 not in set(batch.frame[ROW_NO])


def test_refused_options_endpoint_is_an_error_not_an_empty_chain(yahoo: YahooSource, fake: FakeYahoo) -> None:
    fake.options_status = 401
    with pytest.raises(SourceError, match="HTTP 401"):
        yahoo.option_chain("SPY")


# ----------------------------------------------------------------------------------------------- offline
def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_refused_connection_is_unavailable_fast(fresh_yfinance: None) -> None:
    src = YahooSource(base_url=f"http://127.0.0.1:{_closed_port()}")
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError) as exc:
        src.bars("AAPL", dt.date(2014, 6, 2), dt.date(2014, 6, 13))
    assert time.monotonic() - t0 < 3
    msg = str(exc.value)
    assert "\n" not in msg and "connection refused" in msg and "AAPL" in msg


def test_dns_failure_is_unavailable_fast(fresh_yfinance: None) -> None:
    src = YahooSource(base_url="http://quantlake-no-such-host.invalid")  # .invalid never resolves (RFC 2606)
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError, match=r"quantlake-no-such-host\.invalid"):
        src.option_chain("SPY")
    assert time.monotonic() - t0 < 5


def test_a_dead_host_does_not_condemn_the_others(httpserver: HTTPServer) -> None:
    # fc.yahoo.com is on some DNS blocklists while the data hosts work: only timeouts end the whole call
    from quantlake.sources.yahoo import _make_session

    httpserver.expect_request("/ok").respond_with_data("fine")
    session = _make_session(None, Timeouts(connect=1, read=1))
    with pytest.raises(Exception, match=r"(?i)resolve"):
        session.request("GET", "http://blocked-cookie-host.invalid/")
    with pytest.raises(Exception, match=r"(?i)resolve"):  # the same host again: fails without trying
        session.request("GET", "http://blocked-cookie-host.invalid/again")
    assert session.request("GET", httpserver.url_for("/ok")).text == "fine"


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers (a hung server or a black-holed link)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

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


def test_hung_server_times_out_once_not_per_fallback(fresh_yfinance: None, silent_server: int) -> None:
    src = YahooSource(base_url=f"http://127.0.0.1:{silent_server}", timeouts=Timeouts(connect=0.5, read=0.5))
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="timed out"):
        src.bars("AAPL", dt.date(2014, 6, 2), dt.date(2014, 6, 13))
    # curl's total limit is connect + read = 1 s; yfinance would try 3 URLs without the short-circuit
    assert time.monotonic() - t0 < 2.5


# ----------------------------------------------------------------------------------------------- downstream
def test_batches_pass_validation_and_land_in_the_lake(yahoo: YahooSource, lake: Any) -> None:
    from quantlake.ingest import ingest_equity, ingest_options

    bars, actions = ingest_equity(lake, yahoo, ["AAPL"], dt.date(2014, 5, 5), dt.date(2014, 6, 13), progress=False)
    assert (bars.accepted, bars.rejected, actions.accepted, actions.rejected) == (29, 0, 2, 0)
    (opts,) = ingest_options(lake, yahoo, ["SPY"], progress=False)
    assert (opts.accepted, opts.rejected) == (10, 0)
    again = ingest_equity(lake, yahoo, ["AAPL"], dt.date(2014, 5, 5), dt.date(2014, 6, 13), progress=False)
    assert again[0].inserted == 0
