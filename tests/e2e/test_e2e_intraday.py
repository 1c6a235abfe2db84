"""Issue 15 end to end through the CLI: hourly crypto (ccxt against a local Binance-format server) and a
5-minute equity CSV are ingested, resampled and swept; the sweeps annualize with the interval's bars a year.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.integration]

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "binance"
T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOURS = 24 * 50


def _klines(seed: int, p0: float) -> list[list[object]]:
    rng = np.random.default_rng(seed)
    c = p0 * np.exp(np.cumsum(np.repeat(rng.choice([-0.003, 0.003], HOURS // 48 + 1), 48)[:HOURS]
                              + rng.normal(0, 0.006, HOURS)))
    o = np.r_[p0, c[:-1]]
    rows = []
    for i in range(HOURS):
        t = int((T0 + pd.Timedelta(hours=i)).timestamp() * 1000)
        h, lo = max(o[i], c[i]) * 1.002, min(o[i], c[i]) * 0.998
        rows.append([t, f"{o[i]:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c[i]:.2f}", "123.4", t + 3_599_999,
                     "1", 10, "1", "1", "0"])
    return rows


class Binance:
    def __init__(self) -> None:
        self.k = {"BTCUSDT": _klines(1, 42000.0), "ETHUSDT": _klines(2, 2300.0)}

    def __call__(self, request: Request) -> Response:
        if request.path == "/api/v3/exchangeInfo":
            return Response((FIX / "exchangeInfo.json").read_text(), content_type="application/json")
        start, limit = int(request.args.get("startTime", 0)), int(request.args.get("limit", 500))
        rows = [r for r in self.k[request.args["symbol"]] if int(r[0]) >= start][:limit]  # type: ignore[call-overload]
        return Response(json.dumps(rows), content_type="application/json")


def _five_minute_csv(path: Path) -> None:
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start="2024-01-01", end="2024-12-31")
    rng = np.random.default_rng(3)
    frames = []
    for sym, p0 in (("AAA", 50.0), ("BBB", 80.0)):
        parts = []
        for d in cal.sessions_in_range("2024-02-01", "2024-03-28"):
            o, c = cal.schedule.loc[d, "open"], cal.schedule.loc[d, "close"]
            parts.append(pd.date_range(o, c, freq="5min", inclusive="left"))
        ts = parts[0].append(parts[1:]).tz_convert("America/New_York")
        close = p0 * np.exp(np.cumsum(rng.normal(0, 0.0015, len(ts))))
        frames.append(pd.DataFrame({"datetime": ts.strftime("%Y-%m-%d %H:%M:%S"), "symbol": sym,
                                    "open": np.r_[p0, close[:-1]], "high": close * 1.001, "low": close * 0.998,
                                    "close": close, "volume": 1000}))
    frame = pd.concat(frames)
    frame["high"] = np.maximum(frame["high"], frame["open"])
    frame["low"] = np.minimum(frame["low"], frame["open"])
    frame.to_csv(path, index=False)


def _cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``quantlake ARGS`` through the entry point in this process (``quantlake.cli.main``: its exit codes and
    output, without an interpreter and a Prefect API start per command)."""
    from clirun import run_main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QUANTLAKE_HOME", str(home))
        mp.setenv("COLUMNS", "200")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        code, out, err = run_main(mp, capsys, *args)
    assert code == 0, f"{args}: {out[-2000:]}\n{err[-2000:]}"
    return subprocess.CompletedProcess(list(args), code, out, err)


def test_hourly_crypto_and_five_minute_equity_ingest_resample_sweep(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    httpserver.expect_request("/api/v3/exchangeInfo").respond_with_handler(Binance())
    httpserver.expect_request("/api/v3/klines").respond_with_handler(Binance())
    out = _cli(capsys, home, "ingest", "crypto", "--exchange", "binance", "--symbols", "BTC/USDT,ETH/USDT",
               "--interval", "1h", "--start", "2024-01-01", "--base-url", httpserver.url_for("/"), "--no-progress")
    assert "bars" in out.stdout

    csv = tmp_path / "five_minute.csv"
    _five_minute_csv(csv)
    _cli(capsys, home, "ingest", "equity", "--source", "csv", "--path", str(csv), "--no-progress")

    listing = _cli(capsys, home, "query", "SELECT symbol, interval, count(*) AS n FROM all_bars GROUP BY ALL ORDER BY 1",
                   "-f", "csv").stdout
    counts = pd.read_csv(io.StringIO(listing))
    # 40 NYSE sessions from Feb 1 to Mar 28, 2024 (Presidents' Day closed), 78 five-minute bars each
    assert dict(zip(counts["symbol"], counts["n"], strict=True)) == {
        "AAA": 40 * 78, "BBB": 40 * 78, "BINANCE:BTC/USDT": HOURS, "BINANCE:ETH/USDT": HOURS}
    four = _cli(capsys, home, "bars", "resample", "--symbols", "BINANCE:BTC/USDT", "--interval", "4h", "-f", "csv").stdout
    assert len(pd.read_csv(io.StringIO(four))) == HOURS // 4

    reports = {}
    for name, symbols, interval, ppy in (
        ("crypto-4h", ["BINANCE:BTC/USDT", "BINANCE:ETH/USDT"], "4h", 365 * 6),
        ("equity-15m", ["AAA", "BBB"], "15m", 252 * 26),
    ):
        cfg = {"name": name, "strategy": {"kind": "sma_cross", "params": {"fast": [3, 5], "slow": [10, 20]}},
               "symbols": symbols, "interval": interval, "metric": "sharpe",
               "execution": {"fill": "next_open", "init_cash": 10000},
               "report": {"output_dir": str(tmp_path / name), "tearsheet": False}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        reports[name] = (tmp_path / name, ppy)
    # the whole command once (MLflow run, reports); both configs again in process for the numbers
    _cli(capsys, home, "sweep", "--config", str(tmp_path / "crypto-4h.yaml"), "--runner", "none")
    summary = pd.read_parquet(tmp_path / "crypto-4h" / "summary.parquet")
    assert len(summary) == 4
    assert pd.read_parquet(tmp_path / "crypto-4h" / "results.parquet")["trades"].sum() > 0

    for name, (_folder, ppy) in reports.items():
        # annualized from the interval's bars a year, checked against numpy on the run's own returns
        monkeypatch.setenv("QUANTLAKE_HOME", str(home))
        from backtests.equity.config import load_config
        from backtests.equity.sweep import run_sweep
        from quantlake.lake import Lake

        cfg = load_config(tmp_path / f"{name}.yaml")
        assert cfg.periods_per_year == ppy
        res = run_sweep(cfg, Lake(home / "lake"))
        r = res.returns[res.best].dropna().fillna(0.0).to_numpy()
        assert res.summary.loc[res.best, "volatility"] == pytest.approx(r.std(ddof=1) * np.sqrt(ppy), rel=1e-9)
        assert res.summary.loc[res.best, "sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(ppy), rel=1e-9)
        idx = res.returns.index
        assert (idx[1:] - idx[:-1]).min() == pd.Timedelta(name.split("-")[1])  # bars at the sweep's interval
