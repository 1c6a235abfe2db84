"""The inputs of a backtest read from the lake, aligned on the underlying's trading days.

* bars of the underlying (``equity_bars``; an index with closes only gets open/high/low = close); an
  underlying the lake has no bars for (SPX from chain files) trades on its chains' underlying level, one bar
  per quote date, and the run says so (``bars_source``);
* the risk-free rate (``macro_series``, first-published value of each date, percent bond-equivalent →
  continuously compounded decimal ``2 ln(1 + y/200)``), carried forward to each bar;
* the regime, IV rank and VIX of ``features_regime`` when the table exists (a strategy that needs them,
  or ``market.require_regime``, makes their absence an error); the underlying's own IV rank and HV/IV
  regime from ``features_surface`` where its observed chains give them (``market.iv_rank``,
  ``market.regime_rules``).

A value for date t is one published at the close of t (DESIGN §5); nothing later is used.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtests.options.config import OptionsBacktestConfig, RateConfig
from backtests.options.errors import MarketDataError
from quantlake.lake import Lake
from quantlake.option_quotes import underlying_levels

# the index (as equity_bars names it) whose official levels settle an underlying traded on its chains' level
REFERENCE_INDEX = {"SPX": "^GSPC", "SPXW": "^GSPC", "NDX": "^NDX", "NDXP": "^NDX", "RUT": "^RUT", "RUTW": "^RUT"}
# the most a reference index's close may differ from the chains' level on days both have (median): more is
# another index or scale (XSP is SPX / 10), not the same one measured at a different minute
REFERENCE_TOLERANCE = 0.01
REGIMES = ("low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral", "unknown")
REGIME_FALLBACK_SYMBOL = "^VIX"
CHAIN_LEVELS = "option_quotes.underlying_price"  # bars_source of an underlying without equity_bars


@dataclass
class MarketData:
    """Bars indexed by date (``DatetimeIndex``): open, high, low, close, volume, rate, regime, iv_rank, vix."""

    underlying: str
    bars: pd.DataFrame
    start: dt.date  # first bar the engine trades (earlier bars only warm indicators up)
    has_regime: bool
    bars_source: str = "equity_bars"  # or CHAIN_LEVELS: the chains' underlying level is the mark source
    # trading days the bars lack -> (open, close) of the reference index (see reference_levels)
    settlement_levels: dict[dt.date, tuple[float, float]] = field(default_factory=dict)
    settlement_symbol: str = ""  # the reference index those levels are of ("" = none)

    @property
    def trading_dates(self) -> list[dt.date]:
        return [d.date() for d in self.bars.index]


def _bars(lake: Lake, symbol: str, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, str]:
    """Daily bars of ``symbol`` and where they come from: ``equity_bars``, else (an index such as SPX whose
    bars are not in the lake) the underlying level its option chains were quoted against."""
    df = lake.read("equity_bars", columns=["date", "open", "high", "low", "close", "volume"],
                   where="symbol = ? AND date >= ? AND date <= ?", params=[symbol, start, end]) \
        if lake.exists("equity_bars") else pd.DataFrame()
    source = "equity_bars"
    if not df.empty:
        df = df.dropna(subset=["close"])
        df = df[df["close"] > 0]
    if df.empty:
        df, source = _chain_levels(lake, symbol, start, end), CHAIN_LEVELS
    if df.empty:
        raise MarketDataError(f"no equity_bars for {symbol} between {start} and {end}, and no option_quotes with "
                              f"its level (ingest it first, e.g. `quantlake ingest equity --source sample`)")
    df["date"] = pd.to_datetime(df["date"])
    df = df.sort_values("date").drop_duplicates("date").set_index("date")
    for col in ("open", "high", "low"):
        df[col] = df[col].fillna(df["close"])
    df["volume"] = df["volume"].fillna(0.0)
    return df.astype(float), source


def _chain_levels(lake: Lake, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """One bar per quote date of ``symbol``'s chains: the median ``underlying_price`` of the day's quotes as
    open, high, low and close (a daily chain snapshot has one level: marks, fills and settlements all use
    it, AM- and PM-settled expiries alike)."""
    level = underlying_levels(lake, symbol, start, end)
    if level.empty:
        return pd.DataFrame()
    v = level.to_numpy()
    return pd.DataFrame({"date": list(level.index), "open": v, "high": v, "low": v, "close": v, "volume": 0.0})


def bey_to_continuous(percent: pd.Series) -> pd.Series:
    """A bond-equivalent yield in percent (FRED DGS*) as a continuously compounded decimal."""
    return 2.0 * np.log1p(percent / 200.0)


def rate_series(lake: Lake, cfg: RateConfig, dates: pd.DatetimeIndex) -> pd.Series:
    if cfg.constant is not None:
        return pd.Series(cfg.constant, index=dates, name="rate")
    if not lake.exists("macro_series"):
        raise MarketDataError(f"rate series {cfg.series}: table macro_series does not exist "
                              "(`quantlake ingest macro`, or set market.rate.constant)")
    df = lake.read("macro_series", columns=["date", "realtime_start", "value"], where="series_id = ?",
                   params=[cfg.series])
    if df.empty:
        raise MarketDataError(f"rate series {cfg.series} has no rows in macro_series "
                              "(ingest it, or set market.rate.constant)")
    df = df.dropna(subset=["value"]).sort_values(["date", "realtime_start"]).drop_duplicates("date")
    s = pd.Series(bey_to_continuous(df["value"].astype(float)).to_numpy(), index=pd.to_datetime(df["date"]))
    s = s.sort_index()
    out = s.reindex(dates.union(s.index)).ffill().reindex(dates)
    return out.fillna(cfg.fallback).rename("rate")


def _vix_frame(lake: Lake, cfg: OptionsBacktestConfig) -> pd.DataFrame | None:
    """features_regime rows of ``market.regime_symbol`` (else the underlying, else ^VIX), indexed by date."""
    if not lake.exists("features_regime"):
        return None
    symbols = [cfg.market.regime_symbol] if cfg.market.regime_symbol else [cfg.underlying, REGIME_FALLBACK_SYMBOL]
    for sym in symbols:
        df = lake.read("features_regime", where="symbol = ? AND date <= ?", params=[sym, cfg.end])
        if not df.empty:
            df["date"] = pd.to_datetime(df["date"])
            df.attrs["symbol"] = sym
            return df.sort_values("date").drop_duplicates("date").set_index("date")
    return None


def _surface_frame(lake: Lake, cfg: OptionsBacktestConfig) -> pd.DataFrame | None:
    """features_surface rows of the underlying (its own IV rank and HV/IV regime), indexed by date."""
    if not lake.exists("features_surface"):
        return None
    df = lake.read("features_surface", columns=["date", "iv_rank_252", "regime"],
                   where="underlying = ? AND date <= ?", params=[cfg.underlying, cfg.end])
    if df.empty:
        return None
    df["date"] = pd.to_datetime(df["date"])
    return df.sort_values("date").drop_duplicates("date").set_index("date")


def regime_frame(lake: Lake, cfg: OptionsBacktestConfig, dates: pd.DatetimeIndex) -> pd.DataFrame | None:
    """regime, iv_rank (0..1), iv_rank_source and vix per bar, or ``None`` when the lake has no regime for
    the rules chosen (``market.regime_rules``).

    IV rank (``market.iv_rank``): ``auto`` takes the underlying's own ``features_surface.iv_rank_252`` on
    the days it exists and the VIX rank (``features_regime.vix_rank_252``) on the others; ``underlying`` or
    ``vix`` only one of them.  ``iv_rank_source`` names the one each bar used (``<underlying>`` or the
    features_regime symbol), empty where there is none."""
    vix, own = _vix_frame(lake, cfg), _surface_frame(lake, cfg)
    out = pd.DataFrame(index=dates)
    nan = pd.Series(np.nan, index=dates)
    # ranks are 0..100 in the feature tables; strategies read IV rank as a fraction 0..1
    vix_rank = vix["vix_rank_252"].astype(float).reindex(dates) / 100.0 if vix is not None and "vix_rank_252" in vix \
        else nan
    own_rank = own["iv_rank_252"].astype(float).reindex(dates) / 100.0 if own is not None else nan
    mode = cfg.market.iv_rank
    use_own = own_rank.notna() if mode != "vix" else pd.Series(False, index=dates)
    use_vix = ~use_own & vix_rank.notna() if mode != "underlying" else pd.Series(False, index=dates)
    out["iv_rank"] = own_rank.where(use_own, vix_rank.where(use_vix))
    vix_name = vix.attrs.get("symbol", REGIME_FALLBACK_SYMBOL) if vix is not None else ""
    out["iv_rank_source"] = np.where(use_own, cfg.underlying, np.where(use_vix, vix_name, ""))
    out["vix"] = vix["vix"].astype(float).reindex(dates) if vix is not None and "vix" in vix else np.nan
    labels = own if cfg.market.regime_rules == "hv_iv" else vix
    if labels is None:
        return None
    out["regime"] = labels["regime"].astype(object).reindex(dates) if "regime" in labels else None
    out["regime"] = out["regime"].where(out["regime"].isin(REGIMES), "unknown")
    return out


def load_market(cfg: OptionsBacktestConfig, lake: Lake, warmup_days: int = 0,
                regime_uses: Sequence[str] = (), strategy: str = "strategy") -> MarketData:
    """The bars, rates and regimes of ``cfg``'s range (plus ``warmup_days`` calendar days before it).

    ``regime_uses``: the settings of the strategy that read the regime; with any (or ``market.require_regime``)
    a lake without ``features_regime`` rows for the symbol is an error that names them, rather than a run
    whose regime rules silently never fire.
    """
    first = cfg.start - dt.timedelta(days=warmup_days)
    bars, source = _bars(lake, cfg.underlying, first, cfg.end)
    dates = pd.DatetimeIndex(bars.index)
    bars["rate"] = rate_series(lake, cfg.market.rate, dates).to_numpy()
    reg = regime_frame(lake, cfg, dates)
    uses = [*regime_uses, *(["market.require_regime=true"] if cfg.market.require_regime else [])]
    if reg is None:
        if uses:
            if cfg.market.regime_rules == "hv_iv":
                table, where = "features_surface", f"for {cfg.underlying} (market.regime_rules=hv_iv needs its " \
                    "observed chains)"
            else:
                table, where = "features_regime", (f"for {cfg.market.regime_symbol}" if cfg.market.regime_symbol
                                                   else f"for {cfg.underlying} or {REGIME_FALLBACK_SYMBOL}")
            state = f"has no {table} table" if not lake.exists(table) else f"has no {table} rows {where}"
            raise MarketDataError(
                f"{strategy} needs the market regime ({'; '.join(uses)}) but the lake {state}; build the "
                "regime features first (`quantlake features build`), or remove those settings")
        bars["regime"], bars["iv_rank"], bars["vix"], bars["iv_rank_source"] = "unknown", np.nan, np.nan, ""
    else:
        bars = bars.join(reg)
        bars["regime"] = bars["regime"].fillna("unknown")
    start = cfg.start
    if not (bars.index >= pd.Timestamp(start)).any():
        raise MarketDataError(f"no bars of {cfg.underlying} on or after {start}")
    market = MarketData(cfg.underlying, bars, start, reg is not None, source)
    if source == CHAIN_LEVELS:
        market.settlement_symbol, market.settlement_levels = reference_levels(lake, cfg, bars, first)
    return market


def reference_levels(lake: Lake, cfg: OptionsBacktestConfig, bars: pd.DataFrame,
                     first: dt.date) -> tuple[str, dict[dt.date, tuple[float, float]]]:
    """The official (open, close) of ``cfg``'s reference index on exchange trading days the chain-derived
    ``bars`` lack, and the index's symbol: a leg expiring on such a day settles on the first bar after it at
    that level (PM-settled: the close; AM-settled, ``market.settlement_price: open``: the open), instead of
    the last chain level before it.

    The index is ``market.settlement_symbol``, by default :data:`REFERENCE_INDEX` of the underlying when the
    lake has its bars (none found: no levels, the old rule).  Its closes must match the chains' level on the
    days both have (median relative difference within :data:`REFERENCE_TOLERANCE`): a given index that does
    not is an error; a default one is not used."""
    from quantlake.calendars import is_trading_day

    given = cfg.market.settlement_symbol
    symbol = REFERENCE_INDEX.get(cfg.underlying.upper(), "") if given is None else given
    if not symbol or not lake.exists("equity_bars"):
        return "", {}
    ref = lake.read("equity_bars", columns=["date", "open", "close"], where="symbol = ? AND date >= ? AND date <= ?",
                    params=[symbol, first, cfg.end]).dropna(subset=["close"])
    if ref.empty:
        if given:
            raise MarketDataError(f"market.settlement_symbol {symbol}: no equity_bars between {first} and {cfg.end}")
        return "", {}
    ref["date"] = pd.to_datetime(ref["date"])
    ref = ref.drop_duplicates("date").set_index("date")
    both = ref.index.intersection(bars.index)
    gap = float((bars.loc[both, "close"] / ref.loc[both, "close"] - 1.0).abs().median()) if len(both) else math.inf
    if not gap <= REFERENCE_TOLERANCE:
        if given:
            raise MarketDataError(
                f"market.settlement_symbol {symbol} is not {cfg.underlying}'s level: its closes differ from the chains' "
                f"by {gap:.1%} (median over {len(both)} common days; at most {REFERENCE_TOLERANCE:.0%})")
        return "", {}
    missing = ref.index.difference(bars.index)
    levels = {d.date(): (float(o) if math.isfinite(o) else float(c), float(c))
              for d, o, c in zip(missing, ref.loc[missing, "open"], ref.loc[missing, "close"], strict=True)
              if is_trading_day(d.date())}
    return symbol, levels
