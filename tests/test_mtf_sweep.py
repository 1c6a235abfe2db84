"""``mtf_trend`` as a sweep strategy kind: a 4h EMA trend filter on 15m EMA entries, from a config.

* the sweep's trades for a combination equal a plain event loop (:func:`run_reference`) over the library
  rule :func:`backtests.equity.multitf.mtf_trend_signals` (an as-of join of closed 4h bars, independent of
  the sweep's alignment);
* truncation through the sweep path: a sweep on the lake cut at an instant inside a 4h bar gives the full
  run's returns and trades up to that instant (the 4h bar is used only after it closes);
* an ``htf_interval`` not coarser than ``interval`` is a one-line config error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clirun import run_main

from backtests.equity.config import SweepConfig, validate
from backtests.equity.multitf import mtf_trend_signals
from backtests.equity.reference import run_reference
from backtests.equity.sweep import detail, run_sweep
from features.bars import resample
from quantlake.errors import ConfigError
from quantlake.lake import Lake
from quantlake.tables import BARS

SYMS = ["BINANCE:BTC/USDT", "BINANCE:ETH/USDT"]
FAR = pd.Timestamp("2100-01-01", tz="UTC")
CONFIG: dict[str, Any] = {
    "symbols": SYMS,
    "interval": "15m",
    "htf_interval": "4h",
    "strategy": {"kind": "mtf_trend", "params": {"fast": [5, 8], "slow": [13, 21], "trend": [2, 12]}},
    "costs": {"fees": 0.001, "slippage": 0.0005},
    "overfitting": {"cscv_splits": 4},
}


def _candles(symbol: str, seed: int) -> pd.DataFrame:
    """20 days of 15m candles: a walk whose drift flips every 10 hours, so the 4h filter turns on and off."""
    ts = pd.date_range("2024-01-01", periods=96 * 20, freq="15min", tz="UTC").astype("datetime64[us, UTC]")
    rng = np.random.default_rng(seed)
    drift = np.repeat(rng.choice([-0.002, 0.002], size=len(ts) // 40 + 1), 40)[: len(ts)]
    c = 100 * np.exp(np.cumsum(drift + rng.normal(0, 0.004, len(ts))))
    o = c * np.exp(rng.normal(0, 0.001, len(ts)))
    return pd.DataFrame({"symbol": symbol, "interval": "15m", "ts": ts, "date": ts.date, "open": o,
                         "high": np.maximum(o, c) * 1.001, "low": np.minimum(o, c) * 0.999, "close": c,
                         "adj_close": c, "volume": 1000.0, "source": "test"})  # fmt: skip


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return pd.concat([_candles(s, 21 + i) for i, s in enumerate(SYMS)], ignore_index=True)


@pytest.fixture(scope="module")
def full_lake(tmp_path_factory: pytest.TempPathFactory, candles: pd.DataFrame) -> Lake:
    lake = Lake(tmp_path_factory.mktemp("mtf") / "lake")
    lake.merge("bars", candles, BARS)
    return lake


@pytest.fixture(scope="module")
def full_run(full_lake: Lake) -> Any:
    return run_sweep(validate(SweepConfig, CONFIG), full_lake)


def _reference_trades(lake: Lake, symbol: str, fast: int, slow: int, trend: int, fees: float, slip: float) -> pd.DataFrame:
    """The library rule on closed 15m and 4h bars, traded at the next 15m open by the plain event loop."""
    ltf = resample(lake, [symbol], "15m", as_of=FAR)
    sig = mtf_trend_signals(ltf, resample(lake, [symbol], "4h", as_of=FAR), fast, slow, trend)
    assert (sig["ts"].to_numpy() == ltf["ts"].to_numpy()).all()
    lagged = [np.r_[False, sig[k].to_numpy(dtype=bool)[:-1]] for k in ("entry", "exit")]
    o, c = ltf["open"].to_numpy(float), ltf["close"].to_numpy(float)
    ref = run_reference(c, o, *lagged, open_=o, high=ltf["high"].to_numpy(float), low=ltf["low"].to_numpy(float),
                        fees=fees, slippage=slip, signals_at_open=True)  # fmt: skip
    ts = pd.to_datetime(ltf["ts"], utc=True).dt.tz_convert(None)
    return pd.DataFrame({
        "entry_date": [ts.iloc[t.entry_idx] for t in ref.trades],
        "exit_date": [ts.iloc[t.exit_idx] if t.exit_idx is not None else pd.NaT for t in ref.trades],
        "entry_price": [t.entry_price for t in ref.trades],
        "exit_price": [t.exit_price if t.exit_price is not None else np.nan for t in ref.trades],
        "pnl": [t.pnl if t.pnl is not None else np.nan for t in ref.trades],
    })  # fmt: skip


def test_sweep_trades_equal_a_plain_loop_over_the_library_rule(full_lake: Lake, full_run: Any) -> None:
    res = full_run
    assert len(res.combos) == 8 and res.config.periods_per_year == 365 * 96  # 15m bars of a 24/7 market
    combos = res.combos
    for combo in (int(combos.index[0]), int(combos.index[-1])):
        p = combos.loc[combo]
        trades = detail(res, combo).trades
        for sym in SYMS:
            got = trades[trades["unit"] == sym].sort_values("entry_date", ignore_index=True)
            got = got.assign(exit_date=got["exit_date"].where(got["status"] == "closed"),
                             exit_price=got["exit_price"].where(got["status"] == "closed"),
                             pnl=got["pnl"].where(got["status"] == "closed"))  # fmt: skip
            want = _reference_trades(full_lake, sym, int(p["fast"]), int(p["slow"]), int(p["trend"]), 0.001, 0.0005)
            assert len(want) >= 5  # the rule trades, and the filter is part of it (see the truncation test)
            cols = ["entry_date", "exit_date", "entry_price", "exit_price", "pnl"]
            pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want[cols], check_dtype=False, rtol=1e-9)


def test_sweep_on_a_truncated_lake_equals_the_full_run_up_to_the_cut(
    tmp_path: Path, candles: pd.DataFrame, full_run: Any
) -> None:
    end = pd.to_datetime(candles["ts"], utc=True) + pd.Timedelta("15m")
    full_trades = detail(full_run).trades
    # instants inside 4h bars (minute 15 or 45 never ends a UTC-aligned 4h bar), past the filter's warm-up;
    # trend 2 flips often, so a filter that read the forming 4h bar would change the results near the cut
    cuts = ["2024-01-08 13:45", "2024-01-11 02:15", "2024-01-13 19:45", "2024-01-16 06:15", "2024-01-18 22:45"]
    for cut in (pd.Timestamp(c, tz="UTC") for c in cuts):
        part = Lake(tmp_path / f"cut{cut.value}")
        part.merge("bars", candles[(end <= cut).to_numpy()], BARS)
        got = run_sweep(validate(SweepConfig, CONFIG), part)
        assert got.returns.index[-1] == (cut - pd.Timedelta("15m")).tz_convert(None)
        want = full_run.returns.loc[got.returns.index]
        pd.testing.assert_frame_equal(got.returns, want, rtol=1e-12)
        # the same trades, entered by the cut (exits after the cut are still open in the truncated run)
        best = detail(got, full_run.best).trades
        early = full_trades[full_trades["entry_date"] <= got.returns.index[-1]].reset_index(drop=True)
        assert len(early) >= 3
        pd.testing.assert_frame_equal(best[["unit", "entry_date", "entry_price", "size"]].sort_values(
            ["entry_date", "unit"], ignore_index=True), early[["unit", "entry_date", "entry_price", "size"]]
            .sort_values(["entry_date", "unit"], ignore_index=True), rtol=1e-12)  # fmt: skip


def test_higher_timeframe_must_be_coarser_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("symbols: ['BINANCE:BTC/USDT']\ninterval: 1h\nhtf_interval: 15m\nstrategy: {kind: mtf_trend}\n")
    code, out, err = run_main(monkeypatch, capsys, "sweep", "--config", str(cfg))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "htf_interval: 15m is not coarser than interval 1h" in lines[0]
    assert "bad.yaml" in lines[0]
    with pytest.raises(ConfigError, match="htf_interval: the mtf_trend strategy needs"):
        validate(SweepConfig, {**CONFIG, "htf_interval": None})
    with pytest.raises(ConfigError, match="htf_interval: only the mtf_trend strategy"):
        validate(SweepConfig, {**CONFIG, "strategy": {"kind": "sma_cross"}})
