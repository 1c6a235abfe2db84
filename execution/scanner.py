"""The daily scanner: EMA crosses with RSI context and MACD confirmation, scored and ranked.

For the trading date ``as_of`` (default: the latest date in ``equity_bars``):

1. **Universe** — symbols with a bar on ``as_of`` that pass :class:`~execution.settings.ScanConfig`'s
   price, volume, index and market-cap filters; every excluded symbol keeps its reason.
2. **Crosses** — for each ``(fast, slow)`` pair, ``ema_fast - ema_slow`` changed sign between the symbol's
   previous bar and ``as_of``: up = ``bull``, down = ``bear``.
3. **Context** — the latest RSI cross above ``rsi_upper`` / below ``rsi_lower`` within the last
   ``rsi_window`` bars (with its date); MACD confirms when the histogram has the signal's sign.
4. **Score** (0-100) = 40 × MACD confirms
   + 20 × min(1, |Δ spread| / 0.5 %)  (how decisively the EMAs crossed: change of (fast-slow)/close)
   + 20 × clip(volume_ratio - 1, 0, 1)  (today's volume against its average; 0 without volume)
   + RSI points: 20 when the RSI event favours the direction (bull after a cross below ``rsi_lower``,
   bear after a cross above ``rsi_upper``), 10 when it is the other event, else 10 when the RSI is on the
   signal's side of 50 without being stretched (bull: 50 < RSI < upper; bear: lower < RSI < 50).
   Ranking: score, then |Δ spread|, then symbol.

Indicators use the whole history of each symbol up to ``as_of`` (no look-ahead), with the definitions of
``features_technical``; where that table has the same columns the scanner cross-checks them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from execution.indicators import add_indicators
from execution.settings import ScanConfig
from execution.tables import DAILY_SIGNALS
from quantlake import calendars
from quantlake.errors import InvalidDateError, TableNotFoundError
from quantlake.lake import CommitResult, Lake
from quantlake.tables import validate_symbol

SPREAD_FULL_PCT = 0.5  # a change of the EMA spread of 0.5 % of price earns the full cross points
SIGNAL_COLUMNS = [f.name for f in DAILY_SIGNALS.schema]


@dataclass
class ScanResult:
    """What one scan found.  ``signals`` has the ``daily_signals`` columns (ranked, best first);
    ``universe`` one row per symbol with a bar on ``as_of`` (``passed`` and ``reason``); ``history`` the
    last ``chart_bars`` bars of every signalling symbol with its EMAs (for charts)."""

    as_of: dt.date
    start: dt.date
    config: ScanConfig
    signals: pd.DataFrame
    universe: pd.DataFrame
    history: pd.DataFrame
    crosscheck: list[str] = field(default_factory=list)

    @property
    def top(self) -> pd.DataFrame:
        return self.signals.head(self.config.top)

    def summary(self) -> dict[str, Any]:
        excluded = self.universe[~self.universe["passed"]]
        return {
            "as_of": self.as_of.isoformat(),
            "symbols_with_bars": len(self.universe),
            "universe": int(self.universe["passed"].sum()),
            "excluded": {str(r): sorted(g["symbol"]) for r, g in excluded.groupby("reason")},
            "signals": len(self.signals),
        }


# ---------------------------------------------------------------------------------------------- data
def latest_date(lake: Lake, symbols: list[str] | None = None, include_indices: bool = False) -> dt.date:
    """The latest date with a bar (of ``symbols`` if given; indices ``^...`` only with ``include_indices``)."""
    if not lake.exists("equity_bars"):
        raise TableNotFoundError("table 'equity_bars' does not exist: ingest data first (quantlake ingest equity)")
    sql = "SELECT max(date) AS d FROM equity_bars WHERE close IS NOT NULL"
    params: list[Any] = []
    if not include_indices:
        sql += " AND NOT starts_with(symbol, '^')"
    if symbols:
        sql += f" AND symbol IN ({', '.join('?' for _ in symbols)})"
        params = list(symbols)
    value = lake.query(sql, params)["d"].iloc[0]
    if value is None or pd.isna(value):
        raise InvalidDateError("equity_bars has no bars" + (f" for {', '.join(symbols)}" if symbols else ""))
    return pd.Timestamp(value).date()


def trading_days_between(earlier: dt.date, later: dt.date) -> int:
    """NYSE trading days after ``earlier`` up to and including ``later`` (0 when equal)."""
    return calendars.trading_days_between(earlier, later)


def check_fresh(lake: Lake, max_age_days: int, today: dt.date | None = None, symbols: list[str] | None = None) -> dt.date:
    """The latest bar date, or :class:`~execution.errors.StaleDataError` when more than ``max_age_days``
    trading days lie between it and ``today`` (the last ingest failed or did not run)."""
    from execution.errors import StaleDataError

    today = today or dt.date.today()
    latest = latest_date(lake, symbols)
    age = trading_days_between(latest, today)
    if age > max_age_days:
        raise StaleDataError(
            f"equity_bars is stale: the latest bar is {latest}, {age} trading day(s) before {today} "
            f"(allowed {max_age_days}); did the ingest fail?"
        )
    return latest


def _bars(lake: Lake, where: str, params: list[Any]) -> pd.DataFrame:
    df = lake.read(
        "equity_bars",
        columns=["symbol", "date", "open", "close", "volume"],
        where=f"close IS NOT NULL AND {where}",
        params=params,
    )
    df["date"] = pd.to_datetime(df["date"]).dt.date
    return df


def _in(symbols: list[str]) -> str:
    return f"symbol IN ({', '.join('?' for _ in symbols)})"


# ---------------------------------------------------------------------------------------------- steps
def universe_filter(today: pd.DataFrame, cfg: ScanConfig) -> pd.DataFrame:
    """``today`` (symbol, close, avg_volume) → the same with ``passed`` and the first failed ``reason``."""
    u = today[["symbol", "close", "avg_volume"]].copy().reset_index(drop=True)
    reason = pd.Series([""] * len(u), dtype=object)

    def fail(mask: pd.Series, why: str) -> None:
        reason[(reason == "") & mask.to_numpy()] = why

    if not cfg.include_indices:
        fail(u["symbol"].str.startswith("^"), "index")
    fail(u["close"] < cfg.min_price, f"price below {cfg.min_price:g}")
    fail(u["close"] > cfg.max_price, f"price above {cfg.max_price:g}")
    no_vol = u["avg_volume"].isna()
    if cfg.min_volume > 0 and not cfg.allow_missing_volume:
        fail(no_vol, f"no volume for {cfg.volume_window} bars")
    fail(~no_vol & (u["avg_volume"] < cfg.min_volume), f"avg volume below {cfg.min_volume:,.0f}")
    if cfg.min_market_cap is not None:
        caps = u["symbol"].map(cfg.market_caps)
        fail(caps.isna(), "market cap unknown")
        fail(caps < cfg.min_market_cap, f"market cap below {cfg.min_market_cap:,.0f}")
    u["passed"] = (reason == "").to_numpy()
    u["reason"] = reason.where(reason != "", None).to_numpy()
    return u


def _rsi_events(ind: pd.DataFrame, cfg: ScanConfig) -> tuple[pd.Series, pd.Series]:
    """Latest RSI event (label, date) within the last ``rsi_window`` bars of each row's symbol."""
    prev = ind.groupby("symbol", sort=False)["rsi"].shift(1)
    up = (prev <= cfg.rsi_upper) & (ind["rsi"] > cfg.rsi_upper)
    down = (prev >= cfg.rsi_lower) & (ind["rsi"] < cfg.rsi_lower)
    label = pd.Series(None, index=ind.index, dtype=object)
    label[up] = f"crossed_above_{cfg.rsi_upper:g}"
    label[down] = f"crossed_below_{cfg.rsi_lower:g}"
    when = pd.Series(pd.to_datetime(ind["date"]).where(up | down), index=ind.index)
    limit = cfg.rsi_window - 1
    if limit > 0:
        grouped = pd.DataFrame({"symbol": ind["symbol"], "label": label, "when": when}).groupby("symbol", sort=False)
        label, when = grouped["label"].ffill(limit=limit), grouped["when"].ffill(limit=limit)
    label = label.astype(object).where(label.notna(), None)
    return label, when


def _score(sig: pd.DataFrame, cfg: ScanConfig) -> pd.Series:
    bull = sig["direction"] == "bull"
    macd_pts = 40.0 * sig["macd_confirms"].astype(float)
    cross_pts = 20.0 * np.minimum(1.0, sig["spread_change_pct"].abs() / SPREAD_FULL_PCT)
    vol_pts = 20.0 * np.clip(sig["volume_ratio"].fillna(1.0) - 1.0, 0.0, 1.0)
    above, below = f"crossed_above_{cfg.rsi_upper:g}", f"crossed_below_{cfg.rsi_lower:g}"
    favour = np.where(bull, sig["rsi_event"] == below, sig["rsi_event"] == above)
    other = np.where(bull, sig["rsi_event"] == above, sig["rsi_event"] == below)
    r = sig["rsi"]
    side = np.where(bull, (r > 50) & (r < cfg.rsi_upper), (r < 50) & (r > cfg.rsi_lower))
    rsi_pts = np.where(favour, 20.0, np.where(other, 10.0, np.where(side, 10.0, 0.0)))
    return (macd_pts + cross_pts + vol_pts + rsi_pts).round(4)


def _crosses(spread: pd.Series, symbol: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(up, down): the bars where ``spread`` reaches the other side of zero than its last non-zero value.

    A spread that only touches zero and returns does not cross; one that goes -, 0, + crosses on the bar
    where it turns positive.  The first bar with a spread (no earlier value) never crosses."""
    side = np.sign(spread).replace(0.0, np.nan)
    side = side.groupby(symbol, sort=False).ffill()
    before = side.groupby(symbol, sort=False).shift(1)
    up = (before < 0) & (spread > 0)
    down = (before > 0) & (spread < 0)
    return up.fillna(False).astype(bool), down.fillna(False).astype(bool)


def find_signals(ind: pd.DataFrame, cfg: ScanConfig, dates: set[dt.date], passed: pd.Series) -> pd.DataFrame:
    """Cross signals on ``dates`` among rows where ``passed`` (aligned with ``ind``), scored and ranked."""
    label, when = _rsi_events(ind, cfg)
    on_dates = ind["date"].isin(dates) & passed
    frames = []
    by_symbol = ind["symbol"]
    for fast, slow in cfg.ema_pairs:
        spread = 100.0 * (ind[f"ema_{fast}"] - ind[f"ema_{slow}"]) / ind["close"]
        prev = spread.groupby(by_symbol, sort=False).shift(1)
        up, down = _crosses(spread, by_symbol)
        hit = on_dates & (up | down)
        if not hit.any():
            continue
        rows = ind.loc[hit]
        direction = np.where(up[hit], "bull", "bear")
        hist = rows["macd_hist"]
        frames.append(
            pd.DataFrame(
                {
                    "date": rows["date"],
                    "symbol": rows["symbol"],
                    "signal": f"ema_{fast}_{slow}",
                    "direction": direction,
                    "fast": fast,
                    "slow": slow,
                    "close": rows["close"],
                    "volume": rows["volume"].astype(float),
                    "avg_volume": rows["avg_volume"],
                    "volume_ratio": rows["volume_ratio"],
                    "ema_fast": rows[f"ema_{fast}"],
                    "ema_slow": rows[f"ema_{slow}"],
                    "spread_pct": spread[hit],
                    "spread_change_pct": (spread - prev)[hit],
                    "rsi": rows["rsi"],
                    "rsi_event": label[hit],
                    "rsi_event_date": pd.to_datetime(when[hit]).dt.date,
                    "macd": rows["macd"],
                    "macd_signal": rows["macd_signal"],
                    "macd_hist": hist,
                    "macd_confirms": np.where(direction == "bull", hist > 0, hist < 0),
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SIGNAL_COLUMNS})
    sig = pd.concat(frames, ignore_index=True)
    sig["rsi_event_date"] = sig["rsi_event_date"].where(sig["rsi_event"].notna(), None)
    sig["score"] = _score(sig, cfg)
    sig["_abs"] = sig["spread_change_pct"].abs()
    sig = sig.sort_values(["date", "score", "_abs", "symbol"], ascending=[True, False, False, True])
    sig["rank"] = sig.groupby("date").cumcount() + 1
    sig["scanned_at"] = pd.Timestamp.now(tz="UTC")
    return sig.drop(columns="_abs").reset_index(drop=True)[SIGNAL_COLUMNS]


# ---------------------------------------------------------------------------------------------- scan
def scan(lake: Lake, config: ScanConfig | None = None, start: dt.date | None = None) -> ScanResult:
    """Scan ``config.as_of`` (default: the latest date in ``equity_bars``).

    With ``start``, signals of every trading date in [start, as_of] are returned (a replay); the universe
    filter is applied on each date with that date's close and average volume."""
    cfg = config or ScanConfig()
    as_of = cfg.as_of or latest_date(lake, cfg.symbols, cfg.include_indices)
    if start is not None and start > as_of:
        raise InvalidDateError(f"start {start} is after as_of {as_of}")
    first = start or as_of
    where = "date BETWEEN ? AND ?"
    params: list[Any] = [first, as_of]
    if cfg.symbols:
        where, params = f"{where} AND {_in(cfg.symbols)}", [*params, *cfg.symbols]
    recent = _bars(lake, where, params)
    if not (recent["date"] == as_of).any():
        latest = latest_date(lake, cfg.symbols, cfg.include_indices)
        raise InvalidDateError(f"no bars on {as_of} (the latest trading date in equity_bars is {latest})")
    # index and (for a one-day scan) price filters need no history: read history only for symbols that can
    # pass them
    pool = recent if start is not None else recent[recent["date"] == as_of]
    if start is None:
        pool = pool[pool["close"].between(cfg.min_price, cfg.max_price)]
    candidates = sorted(set(pool["symbol"]))
    if not cfg.include_indices:
        candidates = [s for s in candidates if not s.startswith("^")]
    ema_periods = [p for pair in cfg.ema_pairs for p in pair]
    hist = _bars(lake, f"date <= ? AND {_in(candidates)}", [as_of, *candidates]) if candidates else recent.head(0)
    ind = add_indicators(
        hist, ema_periods, cfg.rsi_period, (cfg.macd_fast, cfg.macd_slow, cfg.macd_signal), cfg.volume_window
    )
    today = recent[recent["date"] == as_of].merge(
        ind.loc[ind["date"] == as_of, ["symbol", "avg_volume"]], on="symbol", how="left"
    )
    universe = universe_filter(today, cfg)
    # the same filter on every row (a replay filters each date on its own close and volume)
    passed = pd.Series(universe_filter(ind, cfg)["passed"].to_numpy(), index=ind.index)
    dates = set(recent["date"])
    signals = find_signals(ind, cfg, dates, passed)
    keep = set(signals["symbol"])
    history = (
        ind[ind["symbol"].isin(keep)].groupby("symbol", sort=False).tail(cfg.chart_bars).reset_index(drop=True)
    )
    result = ScanResult(as_of, first, cfg, signals, universe, history)
    result.crosscheck = crosscheck(lake, result)
    return result


def crosscheck(lake: Lake, result: ScanResult, rel_tol: float = 1e-6) -> list[str]:
    """Differences between the scanner's indicators and ``features_technical`` on ``as_of`` (empty when the
    table is absent or agrees).  A difference means the feature table is stale or was built otherwise."""
    sig = result.signals[result.signals["date"] == result.as_of]
    if sig.empty or not lake.exists("features_technical"):
        return []
    cfg = result.config
    cols = set(lake.spec("features_technical").schema.names)
    pairs: dict[str, str] = {}
    if cfg.rsi_period == 14 and "rsi_14" in cols:
        pairs["rsi"] = "rsi_14"
    if (cfg.macd_fast, cfg.macd_slow, cfg.macd_signal) == (12, 26, 9):
        pairs |= {c: c for c in ("macd", "macd_signal", "macd_hist") if c in cols}
    syms = sorted(set(sig["symbol"]))
    feats = lake.read(
        "features_technical",
        columns=["symbol", "date", *sorted({*pairs.values(), *(c for c in cols if c.startswith("ema_"))})],
        where=f"date = ? AND {_in(syms)}",
        params=[result.as_of, *syms],
    ).set_index("symbol")
    out = []
    for row in sig.itertuples(index=False):
        if row.symbol not in feats.index:
            out.append(f"{row.symbol}: no features_technical row on {result.as_of}")
            continue
        f = feats.loc[row.symbol]
        checks = {mine: getattr(row, mine) for mine in pairs}
        theirs = {mine: f[col] for mine, col in pairs.items()}
        for name, n in (("ema_fast", row.fast), ("ema_slow", row.slow)):
            if f"ema_{n}" in feats.columns:
                checks[name], theirs[name] = getattr(row, name), f[f"ema_{n}"]
        for name, mine in checks.items():
            other = theirs[name]
            if pd.isna(mine) and pd.isna(other):
                continue
            if pd.isna(mine) or pd.isna(other) or not np.isclose(mine, other, rtol=rel_tol, atol=1e-9):
                out.append(f"{row.symbol} {name}: scanner {mine:.6g} vs features_technical {other:.6g}")
    return out


def write_signals(lake: Lake, result: ScanResult) -> CommitResult:
    """Store the scan's signals in ``daily_signals``: the rows of the scanned dates are replaced (a rescan
    after corrected data leaves no stale signal behind); other dates are untouched."""
    data = result.signals.copy()
    if not lake.exists("daily_signals"):
        return lake.merge("daily_signals", data, DAILY_SIGNALS, note=f"scan {result.as_of}")
    # the predicate is built from two date objects and validated symbols (never from free user text)
    predicate = f"date >= '{result.start.isoformat()}' AND date <= '{result.as_of.isoformat()}'"
    if result.config.symbols:
        predicate += " AND symbol IN (" + ", ".join(f"'{validate_symbol(s)}'" for s in result.config.symbols) + ")"
    return lake.replace("daily_signals", data, DAILY_SIGNALS, predicate=predicate, note=f"scan {result.as_of}")
