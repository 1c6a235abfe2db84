"""The ML feature registry: every point-in-time feature the signal models can use, documented.

Each :class:`FeatureSpec` says **what** the feature is (``name``, ``description``), **where** it comes from
(``family`` and ``source``: a lake table, or ``calendar`` for the NYSE calendar known in advance) and
**when** it is known (``lag``: trading sessions between the source row's date and the first date a model
may use it; ``lag_rule`` for sources whose availability is not a session count, e.g. COT's Friday release
or a macro series' publication delay).  :mod:`tracking.ml.assemble` computes them; a test rebuilds the whole
assembled frame on history truncated at a date and gets the same rows.

Families:

=================  ========================  ============================================================
family             source                    what
=================  ========================  ============================================================
technical          features_technical        scale-free indicators and ratios of price-level columns
bars               equity_bars               more price/volume shape: gaps, ranges, momentum, skew, vol
lags               features_technical        yesterday's (and older) values of key indicators
cross_sectional    features_technical/bars   each symbol's percentile rank among the universe that day
market             equity_bars (^GSPC, ^RUT) market returns/vol and each symbol's beta/correlation to it
regime             features_regime           realized vols, VIX level/rank/change, the regime (one-hot)
calendar           calendar (XNYS)           weekday, month, turn of month, option expiry, holidays
macro              features_macro            yields, curve slopes, credit spreads (as published: lag 1)
macro_release      macro_series              real yield, unemployment, M2, Fed balance sheet, production
positioning        features_positioning      COT net speculative positioning of index/bond/gold/oil/VIX/USD
option_flow        features_option_flow      the symbol's own put/call volume and open-interest ratios
surface            features_surface          the symbol's own implied-vol surface, where chains exist
=================  ========================  ============================================================

``required`` features must be present for a row to be used (their warm-up defines where training starts);
the others may be missing (no chain, no COT file, a close-only series without high/low): the tree models
use missingness natively, the logistic and sequence models impute the training window's median.
``monitor`` features are watched for drift (calendar features are not: a short window of weekdays is not
"drift").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

Family = Literal[
    "technical",
    "bars",
    "lags",
    "cross_sectional",
    "market",
    "regime",
    "calendar",
    "macro",
    "macro_release",
    "positioning",
    "option_flow",
    "surface",
]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    family: Family
    source: str  # lake table (or "calendar")
    lag: int  # sessions between the source row's date and the first date the feature uses it
    description: str
    lag_rule: str = ""  # availability beyond a session count (release calendars)
    required: bool = False
    monitor: bool = True


# ----------------------------------------------------------------------------------------------- technical
# column -> description; used as they are
TECH_COLUMNS: dict[str, str] = {
    "ret_1d": "1-day total return (adj_close)",
    "ret_5d": "5-day total return",
    "ret_20d": "20-day total return",
    "ret_60d": "60-day total return",
    "rsi_14": "Wilder RSI 14",
    "ema_ratio": "EMA12 / EMA26 - 1",
    "bb_pctb": "Bollinger %b (20, 2)",
    "bb_width": "Bollinger band width / mid",
    "stoch_k": "fast stochastic %K 14",
    "stoch_d": "stochastic %D (3-day mean of %K)",
    "adx_14": "Wilder ADX 14",
    "plus_di": "+DI 14",
    "minus_di": "-DI 14",
    "dist_52w_high": "close / 52-week high - 1",
    "dist_52w_low": "close / 52-week low - 1",
    "volume_ratio_20": "volume / 20-day mean volume",
}
# these need only closes (defined for close-only series): required
TECH_REQUIRED = {"ret_1d", "ret_5d", "ret_20d", "ret_60d", "rsi_14", "ema_ratio", "bb_pctb", "bb_width"}
# name -> (numerator, denominator, offset): value = numerator / denominator - offset
TECH_RATIOS: dict[str, tuple[str, str, float]] = {
    "macd_pct": ("macd", "close", 0.0),
    "macd_signal_pct": ("macd_signal", "close", 0.0),
    "macd_hist_pct": ("macd_hist", "close", 0.0),
    "atr_pct": ("atr_14", "close", 0.0),
    "px_sma_10": ("close", "sma_10", 1.0),
    "px_sma_20": ("close", "sma_20", 1.0),
    "sma50_ratio": ("close", "sma_50", 1.0),
    "px_sma_100": ("close", "sma_100", 1.0),
    "sma200_ratio": ("close", "sma_200", 1.0),
    "px_ema_8": ("close", "ema_8", 1.0),
    "px_ema_12": ("close", "ema_12", 1.0),
    "px_ema_21": ("close", "ema_21", 1.0),
    "px_ema_26": ("close", "ema_26", 1.0),
    "px_ema_50": ("close", "ema_50", 1.0),
    "sma_10_50": ("sma_10", "sma_50", 1.0),
    "sma_20_100": ("sma_20", "sma_100", 1.0),
    "sma_50_200": ("sma_50", "sma_200", 1.0),
    "ema_8_21": ("ema_8", "ema_21", 1.0),
    "ema_21_50": ("ema_21", "ema_50", 1.0),
}

# ----------------------------------------------------------------------------------------------- bars
BARS_FEATURES: dict[str, tuple[str, bool]] = {  # name -> (description, needs open/high/low/volume)
    "ret_2d": ("2-day return", False),
    "ret_3d": ("3-day return", False),
    "ret_10d": ("10-day return", False),
    "ret_120d": ("120-day return", False),
    "ret_250d": ("250-day return", False),
    "mom_12_1": ("12-month momentum skipping the last month: px[t-21] / px[t-252] - 1", False),
    "ret_z_20": ("1-day return / 20-day standard deviation of daily returns", False),
    "skew_60": ("skewness of the last 60 daily returns", False),
    "kurt_60": ("excess kurtosis of the last 60 daily returns", False),
    "down_vol_20": ("downside deviation of the last 20 daily returns (annualized)", False),
    "up_share_20": ("share of up days in the last 20", False),
    "drawdown_60": ("close / highest close of the last 60 days - 1", False),
    "rally_60": ("close / lowest close of the last 60 days - 1", False),
    "gap": ("open / previous close - 1", True),
    "range_pct": ("(high - low) / close", True),
    "close_loc": ("(close - low) / (high - low): where the close sits in the day's range", True),
    "body_pct": ("close / open - 1", True),
    "parkinson_20": ("Parkinson (high/low) volatility over 20 days, annualized", True),
    "log_dollar_volume": ("log(close x volume)", True),
    "volume_z_20": ("z-score of log volume vs the last 20 days", True),
}

# ----------------------------------------------------------------------------------------------- lags
LAGGED: list[tuple[str, int]] = [
    ("ret_1d", 1),
    ("ret_1d", 2),
    ("ret_1d", 3),
    ("ret_1d", 4),
    ("ret_1d", 5),
    ("rsi_14", 1),
    ("rsi_14", 5),
    ("bb_pctb", 1),
    ("ema_ratio", 5),
    ("ret_5d", 5),
    ("ret_20d", 20),
    ("volume_ratio_20", 1),
]

# ----------------------------------------------------------------------------------------------- cross-sectional
RANKED = [
    "ret_1d",
    "ret_5d",
    "ret_20d",
    "ret_60d",
    "ret_120d",
    "mom_12_1",
    "rsi_14",
    "rv_20",
    "bb_pctb",
    "sma50_ratio",
    "dist_52w_high",
    "volume_ratio_20",
]
DEMEANED = ["ret_5d", "ret_20d", "ret_60d"]

# ----------------------------------------------------------------------------------------------- market
MARKET_SYMBOL = "^GSPC"
SMALL_CAP_SYMBOL = "^RUT"
MARKET_FEATURES: dict[str, str] = {
    "mkt_ret_1d": "market (^GSPC) 1-day return",
    "mkt_ret_5d": "market 5-day return",
    "mkt_ret_20d": "market 20-day return",
    "mkt_ret_60d": "market 60-day return",
    "mkt_rv_20": "market 20-day realized vol (annualized)",
    "mkt_px_sma_200": "market close / its 200-day mean - 1",
    "mkt_drawdown_252": "market close / its 252-day high - 1",
    "size_spread_20d": "^RUT 20-day return - ^GSPC 20-day return (small vs large caps)",
    "rel_ret_5d": "symbol 5-day return - market 5-day return",
    "rel_ret_20d": "symbol 20-day return - market 20-day return",
    "rel_ret_60d": "symbol 60-day return - market 60-day return",
    "beta_60": "beta of daily returns to the market over 60 days",
    "corr_60": "correlation of daily returns with the market over 60 days",
    "idio_vol_60": "residual (non-market) vol over 60 days, annualized",
}

# ----------------------------------------------------------------------------------------------- regime
REGIME_COLUMNS: dict[str, str] = {
    "rv_5": "realized vol 5 days (annualized)",
    "rv_10": "realized vol 10 days",
    "rv_20": "realized vol 20 days",
    "rv_60": "realized vol 60 days",
    "rv_120": "realized vol 120 days",
    "vix": "VIX close",
    "vix_chg_5d": "VIX 5-day change",
    "vix_rank_252": "VIX rank over 252 days (0-100)",
    "vix_pctl_252": "VIX percentile over 252 days (0-100)",
    "hv_iv_ratio": "rv_20 / VIX",
    "above_sma200": "close above its 200-day mean (1/0)",
    "days_in_regime": "days the market regime has held",
}
REGIME_REQUIRED = {"rv_20", "rv_60"}
REGIME_RATIOS: dict[str, tuple[str, str]] = {"rv_5_60": ("rv_5", "rv_60"), "rv_20_120": ("rv_20", "rv_120")}
REGIMES = ["low_vol", "neutral", "high_vol", "iv_expansion", "iv_contraction"]

# ----------------------------------------------------------------------------------------------- calendar
CALENDAR_FEATURES: dict[str, str] = {
    **{f"dow_{i}": f"weekday is {d} (1/0)" for i, d in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri"))},
    "month_sin": "sin(2 pi month / 12)",
    "month_cos": "cos(2 pi month / 12)",
    "doy_sin": "sin(2 pi day-of-year / 365.25)",
    "doy_cos": "cos(2 pi day-of-year / 365.25)",
    "day_of_month": "calendar day of the month",
    "tdom": "trading day of the month (1 = first session)",
    "tdays_to_month_end": "sessions left in the month after this one",
    "turn_of_month": "last session of a month or first three of the next (1/0)",
    "quarter_end_month": "March, June, September or December (1/0)",
    "opex_week": "the week of the month's third Friday (monthly option expiry) (1/0)",
    "tdays_to_opex": "sessions until the next third-Friday expiry",
    "quad_witching_week": "opex week of a quarter-end month (1/0)",
    "pre_holiday": "the next weekday is an exchange holiday (1/0)",
    "post_holiday": "the previous weekday was an exchange holiday (1/0)",
    "tdays_to_holiday": "sessions until the next weekday holiday (capped at 30)",
    "early_close": "the session closes early (13:00) (1/0)",
}

# ----------------------------------------------------------------------------------------------- macro
MACRO_LEVELS = ["dgs10", "dgs2", "dgs3mo", "slope_10y2y", "slope_10y3m", "ig_oas", "hy_oas"]
MACRO_DERIVED_FROM_TABLE = [
    f"{x}_{k}"
    for x in ("slope_10y2y", "slope_10y3m", "ig_oas", "hy_oas")
    for k in ("chg_5d", "chg_20d", "z_252")
]
MACRO_EXTRA: dict[str, tuple[str, int]] = {  # name -> (level column, rows back): value = x - x[rows back]
    "dgs10_chg_5d": ("dgs10", 5),
    "dgs10_chg_20d": ("dgs10", 20),
    "dgs2_chg_20d": ("dgs2", 20),
}
# series -> (publication delay in calendar days after the observation date when the row has no vintage)
RELEASE_LAGS: dict[str, int] = {
    "DFII10": 1,  # daily, published the next business day
    "WALCL": 1,  # weekly H.4.1 (Wednesday level), published Thursday afternoon
    "UNRATE": 35,  # monthly, the employment report on the first Friday of the next month
    "IPMAN": 47,  # monthly, G.17 in mid next month
    "M2SL": 56,  # monthly, H.6 about four weeks after the month ends
}
MACRO_RELEASE: dict[str, tuple[str, str, int]] = {  # name -> (series, transform, periods)
    "dfii10": ("DFII10", "level", 0),
    "dfii10_chg_20": ("DFII10", "diff", 20),
    "walcl_chg_13w": ("WALCL", "pct", 13),
    "unrate": ("UNRATE", "level", 0),
    "unrate_chg_3m": ("UNRATE", "diff", 3),
    "ipman_yoy": ("IPMAN", "pct", 12),
    "m2_yoy": ("M2SL", "pct", 12),
}

# ----------------------------------------------------------------------------------------------- positioning
# short name -> (CFTC market code, report type)
COT_MARKETS: dict[str, tuple[str, str]] = {
    "es": ("13874A", "financial"),  # E-mini S&P 500
    "ty": ("043602", "financial"),  # 10-year T-note
    "vx": ("1170E1", "financial"),  # VIX futures
    "dx": ("098662", "financial"),  # US dollar index
    "gc": ("088691", "disaggregated"),  # gold
    "cl": ("067651", "disaggregated"),  # WTI crude oil
}
COT_COLUMNS = {
    "net_spec_pct_oi": "net speculative position, % of open interest",
    "net_spec_pct_oi_chg_1w": "its change from the previous report",
    "net_spec_z_156": "its 3-year z-score",
}
COT_RULE = "report_date + 3 days (available_date: Friday 15:30 ET release of Tuesday's positions)"

# ----------------------------------------------------------------------------------------------- options
FLOW_FEATURES: dict[str, str] = {
    "put_call_volume_ratio": "put volume / call volume (the symbol's own chain)",
    "put_call_oi_ratio": "put open interest / call open interest",
    "log_option_volume": "log(1 + call + put volume)",
    "log_open_interest": "log(1 + call + put open interest)",
}
SURFACE_COLUMNS: dict[str, str] = {
    "atm_iv_30": "30-day ATM implied vol",
    "atm_iv_60": "60-day ATM implied vol",
    "iv_put_25d_30": "30-day 25-delta put IV",
    "iv_call_25d_30": "30-day 25-delta call IV",
    "skew_25d": "25-delta put IV - call IV",
    "term_slope": "60-day - 30-day ATM IV",
    "iv_rank_252": "rank of the symbol's own ATM IV over 252 observations",
    "iv_pctl_252": "percentile of the symbol's own ATM IV",
}
SURFACE_DERIVED: dict[str, str] = {
    "surf_hv_iv_ratio": "chain HV 20 / 30-day ATM IV",
    "iv_rv_spread": "30-day ATM IV - realized vol 20 (variance risk premium, vol points)",
    "gex_sign_log": "sign(gex_1pct) log(1 + |gex_1pct|): dealer gamma exposure, compressed",
    **{f"surf_regime_{r}": f"the symbol's HV/IV regime is {r} (1/0)" for r in REGIMES},
}


def _specs() -> list[FeatureSpec]:
    out: list[FeatureSpec] = []
    add = out.append
    for name, desc in TECH_COLUMNS.items():
        add(FeatureSpec(name, "technical", "features_technical", 0, desc, required=name in TECH_REQUIRED))
    for name, (a, b, off) in TECH_RATIOS.items():
        desc = f"{a} / {b}" + (" - 1" if off else "")
        add(FeatureSpec(name, "technical", "features_technical", 0, desc, required=name == "sma50_ratio"))
    for name, (desc, ohlcv) in BARS_FEATURES.items():
        add(FeatureSpec(name, "bars", "equity_bars", 0, desc, required=not ohlcv and name != "mom_12_1"))
    for col, k in LAGGED:
        add(FeatureSpec(f"{col}_lag{k}", "lags", "features_technical", k, f"{col} {k} session(s) earlier"))
    for col in RANKED:
        add(FeatureSpec(f"xs_rank_{col}", "cross_sectional", "features_technical", 0,
                        f"percentile rank of {col} among the universe's symbols that day (0-1)"))  # fmt: skip
    for col in DEMEANED:
        add(FeatureSpec(f"xs_demean_{col}", "cross_sectional", "features_technical", 0,
                        f"{col} minus its mean over the universe that day"))  # fmt: skip
    for name, desc in MARKET_FEATURES.items():
        add(FeatureSpec(name, "market", "equity_bars", 0, desc))
    for name, desc in REGIME_COLUMNS.items():
        add(FeatureSpec(name, "regime", "features_regime", 0, desc, required=name in REGIME_REQUIRED))
    for name, (a, b) in REGIME_RATIOS.items():
        add(FeatureSpec(name, "regime", "features_regime", 0, f"{a} / {b}"))
    for r in REGIMES:
        add(FeatureSpec(f"regime_{r}", "regime", "features_regime", 0, f"the market regime is {r} (1/0)"))
    for name, desc in CALENDAR_FEATURES.items():
        add(FeatureSpec(name, "calendar", "calendar", 0, desc, "known in advance (XNYS calendar)",
                        monitor=False))  # fmt: skip
    macro_rule = "the value published by the previous session (H.15/ICE data appear the next business day)"
    for name in [*MACRO_LEVELS, *MACRO_DERIVED_FROM_TABLE, *MACRO_EXTRA]:
        add(FeatureSpec(name, "macro", "features_macro", 1, f"{name} (features_macro)", macro_rule))
    for name, (series, how, n) in MACRO_RELEASE.items():
        what = {"level": series, "diff": f"{series} change over {n} observations",
                "pct": f"{series} % change over {n} observations"}[how]  # fmt: skip
        rule = (f"vintage-aware: usable from max(realtime_start, observation date + {RELEASE_LAGS[series]} "
                "days); revisions only from their own realtime_start")  # fmt: skip
        add(FeatureSpec(name, "macro_release", "macro_series", 0, what, rule))
    for short, (code, rtype) in COT_MARKETS.items():
        for col, desc in COT_COLUMNS.items():
            add(FeatureSpec(f"cot_{short}_{col.removeprefix('net_spec_')}", "positioning", "features_positioning",
                            0, f"{desc} ({code}, {rtype})", COT_RULE))  # fmt: skip
    for name, desc in FLOW_FEATURES.items():
        add(FeatureSpec(name, "option_flow", "features_option_flow", 0, desc))
    for name, desc in {**SURFACE_COLUMNS, **SURFACE_DERIVED}.items():
        add(FeatureSpec(name, "surface", "features_surface", 0, desc))
    return out


REGISTRY: tuple[FeatureSpec, ...] = tuple(_specs())
BY_NAME: dict[str, FeatureSpec] = {s.name: s for s in REGISTRY}
assert len(BY_NAME) == len(REGISTRY), "duplicate feature names in the registry"


def spec(name: str) -> FeatureSpec:
    return BY_NAME[name]


def names(families: list[str] | None = None) -> list[str]:
    """Registry feature names (of ``families``), in registry order."""
    return [s.name for s in REGISTRY if families is None or s.family in families]


def is_registry_feature(name: str) -> bool:
    w = _window_channel(name)
    return name in BY_NAME or (w is not None and w[0] in BY_NAME)


def describe(selected: list[str] | None = None) -> pd.DataFrame:
    """The registry as a table (``name, family, source, lag, lag_rule, required, monitor, description``)."""
    rows = [asdict(s) for s in REGISTRY if selected is None or s.name in set(selected)]
    cols = ["name", "family", "source", "lag", "lag_rule", "required", "monitor", "description"]
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------------------------- sequence windows
WINDOW_SEP = "__t"


def window_column(channel: str, k: int) -> str:
    """Column holding ``channel`` ``k`` sessions before the row (the sequence model's input window)."""
    return channel if k == 0 else f"{channel}{WINDOW_SEP}{k}"


def window_columns(channels: list[str], window: int) -> list[str]:
    """Columns of a ``window``-bar sequence over ``channels``, oldest first per channel."""
    return [window_column(c, k) for c in channels for k in range(window - 1, -1, -1)]


def _window_channel(name: str) -> tuple[str, int] | None:
    base, sep, k = name.rpartition(WINDOW_SEP)
    if not sep or not k.isdigit() or not base:
        return None
    return base, int(k)


def split_inputs(columns: list[str]) -> tuple[list[str], tuple[list[str], int] | None]:
    """A model's input columns -> (plain feature columns, the sequence window ``(channels, n)`` or None)."""
    plain: list[str] = []
    channels: dict[str, int] = {}
    for c in columns:
        w = _window_channel(c)
        if w is None:
            plain.append(c)
        else:
            channels[w[0]] = max(channels.get(w[0], 0), w[1])
    if not channels:
        return plain, None
    return [c for c in plain if c not in channels] + [c for c in channels if c in plain], (list(channels), max(channels.values()) + 1)
