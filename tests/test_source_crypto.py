"""The ccxt source against a local server answering like Binance's spot API (real ccxt code path).

``CryptoSource("binance", base_url=...)`` sends ccxt's requests to a pytest-httpserver that serves the
recorded-format responses of tests/fixtures/binance/ and pages through the klines exactly as Binance does
(``startTime``, ``limit``).  The fake can answer one request with HTTP 429, stall one past ccxt's timeout,
and corrupt one candle.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from quantlake.errors import InvalidSymbolError, SourceError, UserInputError
from quantlake.ingest_crypto import ingest_crypto
from quantlake.lake import Lake
from quantlake.sources.crypto import CryptoSource

pytestmark = pytest.mark.integration  # local HTTP server

FIX = Path(__file__).parent / "fixtures" / "binance"
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")
NOW = T0 + pd.Timedelta(hours=120, minutes=20)  # the 120th candle closed; a 121st would still be forming


class FakeBinance:
    def __init__(self) -> None:
        self.klines = {s: json.loads((FIX / f"klines_{s}_1h.json").read_text()) for s in ("BTCUSDT", "ETHUSDT")}
        # the exchange also sends the candle still forming (open at 120h, closes at 121h > NOW)
        for rows in self.klines.values():
            last = list(rows[-1])
            last[0] += 3_600_000
            rows.append(last)
        self.log: list[dict[str, str]] = []
        self.fail_with: dict[int, str] = {}  # n-th klines request (1-based) -> "429" | "timeout" | "500"
        self.malformed: tuple[str, int] | None = None
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        if request.path == "/api/v3/exchangeInfo":
            return Response((FIX / "exchangeInfo.json").read_text(), content_type="application/json")
        if request.path != "/api/v3/klines":
            return Response(json.dumps({"code": -1100, "msg": "not recorded"}), status=404)
        args = dict(request.args)
        with self.lock:
            self.log.append(args)
            n = len(self.log)
        fault = self.fail_with.pop(n, None)
        if fault == "429":
            return Response(json.dumps({"code": -1003, "msg": "Too many requests."}), status=429,
                            headers={"Retry-After": "1"}, content_type="application/json")
        if fault == "timeout":
            time.sleep(3.0)  # ccxt's timeout in these tests is 2 s (a busy machine answers a normal page within it)
        if fault == "500":
            return Response("<html>502 Bad Gateway</html>", status=502)
        if args.get("symbol") not in self.klines:
            return Response(json.dumps({"code": -1121, "msg": "Invalid symbol."}), status=400)
        start, limit = int(args.get("startTime", 0)), int(args.get("limit", 500))
        rows = [list(r) for r in self.klines[args["symbol"]] if r[0] >= start][:limit]
        if self.malformed and self.malformed[0] == args["symbol"]:
            for r in rows:
                if r[0] == self.malformed[1]:
                    r[4] = "not-a-number"
        return Response(json.dumps(rows), content_type="application/json")


@pytest.fixture()
def fake(httpserver: HTTPServer) -> FakeBinance:
    f = FakeBinance()
    httpserver.expect_request("/api/v3/exchangeInfo").respond_with_handler(f)
    httpserver.expect_request("/api/v3/klines").respond_with_handler(f)
    return f


def source(httpserver: HTTPServer, **kw: Any) -> CryptoSource:
    opts: dict[str, Any] = {"timeout_ms": 2000, "retry_wait": 0.01, "page_limit": 50, "clock": lambda: NOW}
    opts.update(kw)
    return CryptoSource("binance", base_url=httpserver.url_for("/"), **opts)


def _expected(symbol: str) -> pd.DataFrame:
    rows = json.loads((FIX / f"klines_{symbol}_1h.json").read_text())
    return pd.DataFrame(
        {"ts": pd.to_datetime([r[0] for r in rows], unit="ms", utc=True), "close": [float(r[4]) for r in rows]}
    )


def test_paginates_drops_the_forming_candle_and_stores_pairs(httpserver: HTTPServer, fake: FakeBinance, lake: Lake) -> None:
    src = source(httpserver)
    reports = ingest_crypto(lake, src, ["BTC/USDT", "eth/usdt"], "1h", start=T0.date(), progress=False)
    rep = reports[0]
    assert rep.failures == {} and rep.accepted == 240 and rep.rejected == 0
    # 120 closed candles at 50 per page: pages from 0h, 50h, 100h; the next would start after "now"
    starts = [int(a["startTime"]) for a in fake.log if a["symbol"] == "BTCUSDT"]
    assert [(s - int(T0.timestamp() * 1000)) // 3_600_000 for s in starts] == [0, 50, 100]
    assert all(a["interval"] == "1h" and a["limit"] == "50" for a in fake.log)
    bars = lake.read("bars")
    assert set(bars["symbol"]) == {"BINANCE:BTC/USDT", "BINANCE:ETH/USDT"}
    btc = bars[bars["symbol"] == "BINANCE:BTC/USDT"].reset_index(drop=True)
    exp = _expected("BTCUSDT")
    assert btc["ts"].tolist() == exp["ts"].tolist()  # the 121st (forming) candle is not stored
    assert btc["close"].tolist() == exp["close"].tolist()
    assert (btc["date"].astype(str) == btc["ts"].dt.strftime("%Y-%m-%d")).all()
    inst = lake.read("instruments").set_index("symbol")
    assert inst.loc["BINANCE:BTC/USDT", ["calendar", "timezone", "exchange", "base", "quote"]].tolist() == [
        "24/7", "UTC", "BINANCE", "BTC", "USDT"]


def test_incremental_watermark_per_symbol_and_interval(httpserver: HTTPServer, fake: FakeBinance, lake: Lake) -> None:
    first = source(httpserver, clock=lambda: T0 + pd.Timedelta(hours=60, minutes=5))
    ingest_crypto(lake, first, ["BTC/USDT"], "1h", start=T0.date(), progress=False)
    assert len(lake.read("bars")) == 60
    fake.log.clear()
    rep = ingest_crypto(lake, source(httpserver), ["BTC/USDT"], "1h", progress=False)[0]
    assert int(fake.log[0]["startTime"]) == int((T0 + pd.Timedelta(hours=60)).timestamp() * 1000)
    assert rep.inserted == 60 and rep.updated == 0 and len(lake.read("bars")) == 120


def test_429_and_timeout_are_retried_per_page(httpserver: HTTPServer, fake: FakeBinance, lake: Lake) -> None:
    fake.fail_with = {2: "429", 3: "timeout"}  # the second page: a 429, then a stall past the timeout
    src = source(httpserver)
    rep = ingest_crypto(lake, src, ["BTC/USDT"], "1h", start=T0.date(), progress=False)[0]
    assert rep.failures == {} and rep.accepted == 120
    starts = [int(a["startTime"]) for a in fake.log]
    assert starts[1] == starts[2] == starts[3]  # only the failed page was asked again
    assert starts.count(starts[0]) == 1


def test_persistent_failure_is_one_line_and_keeps_other_pairs(httpserver: HTTPServer, fake: FakeBinance, lake: Lake) -> None:
    fake.fail_with = {k: "500" for k in range(1, 4)}  # BTC's first page fails all 3 attempts
    src = source(httpserver, retries=3)
    rep = ingest_crypto(lake, src, ["BTC/USDT", "ETH/USDT"], "1h", start=T0.date(), progress=False)[0]
    err = rep.failures["BINANCE:BTC/USDT"]
    assert isinstance(err, SourceError) and "after 3 attempts" in str(err) and "\n" not in str(err)
    assert set(lake.read("bars")["symbol"]) == {"BINANCE:ETH/USDT"}


def test_malformed_candle_is_quarantined_with_its_reason(httpserver: HTTPServer, fake: FakeBinance, lake: Lake) -> None:
    bad = int((T0 + pd.Timedelta(hours=7)).timestamp() * 1000)
    fake.malformed = ("BTCUSDT", bad)
    rep = ingest_crypto(lake, source(httpserver), ["BTC/USDT"], "1h", start=T0.date(), progress=False)[0]
    assert rep.accepted == 119 and rep.rejected == 1
    rej = lake.read("rejected_rows")
    assert rej["table"].tolist() == ["bars"] and "close" in rej["reason"].iloc[0]
    assert "BINANCE:BTC/USDT" in rej["raw"].iloc[0]


def test_unknown_pair_and_interval_are_user_errors(httpserver: HTTPServer, fake: FakeBinance) -> None:
    src = source(httpserver)
    with pytest.raises(InvalidSymbolError, match="BTC/EUR is not a market on binance"):
        src.ohlcv("BTC/EUR", "1h")
    with pytest.raises(UserInputError, match=r"no 7m candles|invalid interval"):
        src.ohlcv("BTC/USDT", "7m")
    assert fake.log == []  # nothing was downloaded
