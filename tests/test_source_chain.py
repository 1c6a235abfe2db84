"""Equity source chain (yahoo,stooq) at the HTTP boundary: fallback, cross-checks, daily quotas.

One local server answers both vendors: Yahoo's paths through the recorded-format fake of
test_source_yahoo (real yfinance code path), Stooq's ``/q/d/l/`` CSV download from rows built out of the same
recorded AAPL chart, one close moved by 2 % so the cross-check has something to find.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from test_source_yahoo import FakeYahoo  # the recorded-format Yahoo fake
from werkzeug import Request, Response

from quantlake.errors import SourceError, UserInputError
from quantlake.lake import Lake
from quantlake.source_chain import (
    QuotaExceededError,
    SourceChain,
    build_chain,
    ingest_equity_chain,
    parse_chain,
)
from quantlake.sources.stooq import StooqSource, stooq_symbol
from quantlake.sources.yahoo import YahooSource

pytestmark = pytest.mark.integration

FIX = Path(__file__).parent / "fixtures" / "yahoo"
START, END = dt.date(2014, 5, 5), dt.date(2014, 6, 13)
MOVED = dt.date(2014, 5, 20)  # Stooq's close that day is 2 % off Yahoo's


def _aapl_rows() -> pd.DataFrame:
    res = json.loads((FIX / "chart_AAPL.json").read_text())["chart"]["result"][0]
    q = res["indicators"]["quote"][0]
    dates = pd.to_datetime(res["timestamp"], unit="s", utc=True).tz_convert("America/New_York").date
    return pd.DataFrame({"Date": dates, "Open": q["open"], "High": q["high"], "Low": q["low"],
                         "Close": q["close"], "Volume": q["volume"]})


class FakeStooq:
    def __init__(self) -> None:
        aapl = _aapl_rows()
        aapl.loc[aapl["Date"] == MOVED, ["High", "Close"]] *= 1.02
        msft = _aapl_rows()
        msft[["Open", "High", "Low", "Close"]] *= 0.5
        self.data = {"aapl.us": aapl, "msft.us": msft}
        self.log: list[dict[str, str]] = []
        self.exceeded = False

    def __call__(self, request: Request) -> Response:
        args = dict(request.args)
        self.log.append(args)
        if self.exceeded:
            return Response("Exceeded the daily hits limit", content_type="text/plain")
        df = self.data.get(args.get("s", ""))
        if df is None:
            return Response("No data", content_type="text/plain")
        d1 = dt.datetime.strptime(args["d1"], "%Y%m%d").date() if "d1" in args else dt.date.min
        d2 = dt.datetime.strptime(args["d2"], "%Y%m%d").date() if "d2" in args else dt.date.max
        part = df[(df["Date"] >= d1) & (df["Date"] <= d2)]
        return Response(part.to_csv(index=False), content_type="text/csv")


class Both:
    def __init__(self) -> None:
        self.yahoo, self.stooq = FakeYahoo(), FakeStooq()

    def __call__(self, request: Request) -> Response:
        return self.stooq(request) if request.path.startswith("/q/d/l") else self.yahoo(request)


@pytest.fixture()
def fake(httpserver: HTTPServer, ql_home: Path) -> Both:
    from yfinance.data import YfData

    type(YfData)._instances.pop(YfData, None)
    YfData.cache_get.cache_clear()
    both = Both()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(both)
    return both


def chain(httpserver: HTTPServer, lake: Lake, **kw: object) -> SourceChain:
    base = httpserver.url_for("/").rstrip("/")
    return SourceChain([YahooSource(base_url=base), StooqSource(base_url=base)], lake, **kw)  # type: ignore[arg-type]


def test_fallback_and_cross_check(httpserver: HTTPServer, fake: Both, lake: Lake) -> None:
    reports = ingest_equity_chain(lake, chain(httpserver, lake), ["AAPL", "MSFT"], START, END, progress=False)
    by = {r.table: r for r in reports}
    assert by["equity_bars"].failures == {} and by["equity_bars"].accepted == 58
    bars = lake.read("equity_bars")
    # AAPL from the first source; MSFT is unknown to Yahoo (404) and comes from Stooq
    assert set(bars.loc[bars["symbol"] == "AAPL", "source"]) == {"yahoo"}
    assert set(bars.loc[bars["symbol"] == "MSFT", "source"]) == {"stooq"}
    msft = bars[bars["symbol"] == "MSFT"].set_index("date")["close"]
    aapl_yahoo = _aapl_rows().set_index("Date")["Close"]
    assert msft.iloc[0] == pytest.approx(aapl_yahoo.iloc[0] * 0.5)
    assert {a["s"] for a in fake.stooq.log} == {"aapl.us", "msft.us"}
    # where both answered, the one close more than 0.5 % apart is recorded with both values
    dis = lake.read("source_disagreements")
    assert len(dis) == 1 and by["source_disagreements"].inserted == 1
    row = dis.iloc[0]
    assert (row["symbol"], pd.Timestamp(row["date"]).date(), row["source"], row["other_source"]) == (
        "AAPL", MOVED, "yahoo", "stooq")
    assert row["other_value"] == pytest.approx(row["value"] * 1.02)
    assert row["rel_diff"] == pytest.approx(abs(1 / 1.02 - 1), rel=1e-9)
    # Yahoo's split came along with its bars (from the source that answered)
    acts = lake.read("corporate_actions")
    assert set(acts["symbol"]) == {"AAPL"} and "split" in set(acts["kind"])
    # every request was counted in the lake
    quota = lake.read("source_quota").set_index("source")
    assert quota.loc["yahoo", "requests"] == 2 and quota.loc["stooq", "requests"] == 2
    assert quota.loc["stooq", "quota"] == 500


def test_a_run_that_would_exceed_a_quota_stops_with_the_count(httpserver: HTTPServer, fake: Both, lake: Lake) -> None:
    ingest_equity_chain(lake, chain(httpserver, lake), ["AAPL"], START, END, progress=False)
    n_yahoo, n_stooq = len(fake.yahoo.log), len(fake.stooq.log)
    tight = chain(httpserver, lake, quotas={"stooq": 2})
    with pytest.raises(QuotaExceededError) as err:
        ingest_equity_chain(lake, tight, ["AAPL", "MSFT"], START, END, full=True, progress=False)
    msg = str(err.value)
    assert "stooq needs 2 request(s) but has 1 of its 2 left today (1 used on" in msg and "\n" not in msg
    assert (len(fake.yahoo.log), len(fake.stooq.log)) == (n_yahoo, n_stooq)  # nothing was requested
    # a quota running out mid-run skips that source like a failure (fallback-only run: stooq never needed)
    only_first = chain(httpserver, lake, quotas={"stooq": 1}, cross_check=False)
    reports = ingest_equity_chain(lake, only_first, ["AAPL"], START, END, full=True, progress=False)
    assert reports[0].failures == {} and len(fake.stooq.log) == n_stooq


def test_every_source_failing_names_each(httpserver: HTTPServer, fake: Both, lake: Lake) -> None:
    fake.stooq.exceeded = True
    reports = ingest_equity_chain(lake, chain(httpserver, lake), ["MSFT"], START, END, progress=False)
    err = reports[0].failures["MSFT"]
    assert isinstance(err, SourceError)
    assert "yahoo:" in str(err) and "stooq: Exceeded the daily hits limit" in str(err)


def test_chain_names_and_symbols() -> None:
    assert parse_chain(" Yahoo, stooq ") == ["yahoo", "stooq"]
    with pytest.raises(UserInputError):
        parse_chain("yahoo,yahoo")
    with pytest.raises(UserInputError, match="network sources"):
        build_chain("csv,yahoo", Lake("/nonexistent"))
    assert stooq_symbol("BRK-B") == "brk-b.us" and stooq_symbol("^GSPC") == "^spx"
    with pytest.raises(UserInputError):
        stooq_symbol("^VIX")
