"""The scanner at an intraday cadence: the same signals as the daily scan, on the latest CLOSED bar of an
interval (``1h`` by default) from :func:`features.bars.resample`.

Everything that defines a signal is the daily scanner's (:mod:`execution.scanner`: EMA crosses between a
symbol's previous bar and the latest one, RSI context, MACD confirmation, score and rank); only the bars
differ: the ``date`` the scanner keys on is each bar's close instant (UTC), and a bar still forming is
never scanned.  The universe filters take per-bar volumes, so the defaults here admit every price and
volume (set ``min_price``/``max_price``/``min_volume`` in the config to filter).

Results: the ``intraday_signals`` table keyed ``(interval, bar_close, symbol, signal)`` (a rescan of a bar
replaces its rows), and ``$QUANTLAKE_HOME/reports/scan/signals_<interval>_<bar close>.json``.  The
deployment ``hourly-scan`` (prefect.yaml) runs it five minutes past every hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from execution.indicators import add_indicators
from execution.scanner import find_signals, universe_filter
from execution.settings import ScanConfig
from quantlake.calendars import check_interval
from quantlake.config import paths
from quantlake.errors import InvalidDateError, UserInputError
from quantlake.lake import Lake
from quantlake.tables import TableSpec, register

INTRADAY_DEFAULTS: dict[str, Any] = {"min_price": 0.0, "max_price": 1e12, "min_volume": 0.0,
                                     "allow_missing_volume": True}

_TS = pa.timestamp("us", tz="UTC")
INTRADAY_SIGNALS = register(
    TableSpec(
        name="intraday_signals",
        keys=("interval", "bar_close", "symbol", "signal"),
        schema=pa.schema(
            [
                ("interval", pa.string()),
                ("bar_close", _TS),  # close instant of the bar the signal fired on
                ("symbol", pa.string()),
                ("signal", pa.string()),
                ("direction", pa.string()),
                ("fast", pa.int32()),
                ("slow", pa.int32()),
                ("close", pa.float64()),
                ("volume_ratio", pa.float64()),
                ("spread_change_pct", pa.float64()),
                ("rsi", pa.float64()),
                ("rsi_event", pa.string()),
                ("macd_hist", pa.float64()),
                ("macd_confirms", pa.bool_()),
                ("score", pa.float64()),
                ("rank", pa.int32()),
                ("scanned_at", _TS),
            ]
        ),
        volatile=("scanned_at",),
        description="Signals of the intraday scanner (execution.intraday_scan), one row per bar and signal.",
    )
)


@dataclass
class IntradayScan:
    interval: str
    bar_close: pd.Timestamp
    signals: pd.DataFrame
    universe: pd.DataFrame
    json_path: Path | None = None

    def summary(self) -> dict[str, Any]:
        return {"interval": self.interval, "bar_close": self.bar_close.isoformat(),
                "symbols_with_bars": len(self.universe), "universe": int(self.universe["passed"].sum()),
                "signals": len(self.signals)}


def intraday_config(overrides: dict[str, Any] | None = None) -> ScanConfig:
    return ScanConfig(**{**INTRADAY_DEFAULTS, **(overrides or {})})


def scan_interval(
    lake: Lake,
    interval: str = "1h",
    symbols: list[str] | None = None,
    config: ScanConfig | None = None,
    as_of: pd.Timestamp | None = None,
    write: bool = True,
) -> IntradayScan:
    """Signals on the latest bar of ``interval`` closed by ``as_of`` (default now) for ``symbols`` (default:
    every symbol of the ``bars`` table)."""
    from features.bars import resample

    check_interval(interval)
    cfg = config or intraday_config()
    if not symbols:
        if not lake.exists("bars"):
            raise UserInputError("no intraday bars in the lake (quantlake ingest crypto, or a csv with times)")
        symbols = sorted(lake.query("SELECT DISTINCT symbol FROM bars")["symbol"])
    bars = resample(lake, symbols, interval, as_of=as_of)
    if bars.empty:
        raise InvalidDateError(f"no closed {interval} bars for {', '.join(symbols)}")
    bars = bars.assign(date=pd.to_datetime(bars["close_ts"], utc=True))
    latest = bars["date"].max()
    ema_periods = [p for pair in cfg.ema_pairs for p in pair]
    ind = add_indicators(bars[["symbol", "date", "close", "volume"]], ema_periods, cfg.rsi_period,
                         (cfg.macd_fast, cfg.macd_slow, cfg.macd_signal), cfg.volume_window)
    now_rows = ind.loc[ind["date"] == latest, ["symbol", "close", "avg_volume"]]
    universe = universe_filter(now_rows, cfg)
    passed = pd.Series(universe_filter(ind, cfg)["passed"].to_numpy(), index=ind.index)
    signals = find_signals(ind, cfg, {latest}, passed)
    result = IntradayScan(interval, pd.Timestamp(latest), signals, universe)
    if write:
        _store(lake, result)
    return result


def _store(lake: Lake, result: IntradayScan) -> None:
    sig = result.signals
    rows = pd.DataFrame(
        {
            "interval": result.interval,
            "bar_close": pd.to_datetime(sig["date"], utc=True),
            **{c: sig[c] for c in INTRADAY_SIGNALS.schema.names if c in sig.columns and c not in ("interval",)},
        }
    )
    if len(rows):
        lake.merge(INTRADAY_SIGNALS.name, rows[[c for c in INTRADAY_SIGNALS.schema.names if c in rows]],
                   INTRADAY_SIGNALS, note=f"intraday scan {result.interval} {result.bar_close.isoformat()}")
    out = paths().reports / "scan"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"signals_{result.interval}_{result.bar_close:%Y%m%dT%H%M}.json"
    doc = {"summary": result.summary(), "signals": json.loads(sig.to_json(orient="records", date_format="iso")),
           "universe": json.loads(result.universe.to_json(orient="records"))}
    path.write_text(json.dumps(doc, indent=1, default=str))
    result.json_path = path


__all__ = ["INTRADAY_SIGNALS", "IntradayScan", "intraday_config", "scan_interval"]
