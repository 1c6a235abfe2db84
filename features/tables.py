"""Contracts (key + Arrow schema) of the feature tables, registered with :mod:`quantlake.tables`.

``features_technical`` has one ``sma_N``/``ema_N`` column per configured period, so its spec is built from
:class:`~features.settings.TechnicalSettings`; the default spec is registered on import.
Column meanings and units are documented in the header of each ``sql/<table>.sql``.
"""

from __future__ import annotations

import pyarrow as pa

from features.settings import TechnicalSettings
from quantlake.tables import TableSpec, register

F64 = pa.float64()


def _schema(cols: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema([pa.field(name, typ) for name, typ in cols])


def technical_spec(settings: TechnicalSettings | None = None) -> TableSpec:
    s = settings or TechnicalSettings()
    cols: list[tuple[str, pa.DataType]] = [
        ("symbol", pa.string()),
        ("date", pa.date32()),
        ("close", F64),
        ("ret_basis", pa.string()),
        *[(f"ret_{k}d", F64) for k in (1, 5, 20, 60)],
        *[(f"sma_{n}", F64) for n in s.sma_periods],
        *[(f"ema_{n}", F64) for n in s.ema_periods],
        *[(c, F64) for c in ("rsi_14", "macd", "macd_signal", "macd_hist", "ema_ratio", "atr_14")],
        *[(c, F64) for c in ("bb_mid", "bb_upper", "bb_lower", "bb_pctb", "bb_width")],
        *[(c, F64) for c in ("stoch_k", "stoch_d", "adx_14", "plus_di", "minus_di")],
        *[(c, F64) for c in ("high_52w", "low_52w", "dist_52w_high", "dist_52w_low", "volume_ratio_20")],
        # recursion state for exact incremental builds (not features)
        *[(c, F64) for c in ("st_macd_fast", "st_macd_slow", "st_rsi_gain", "st_rsi_loss")],
        *[(c, F64) for c in ("st_adx_pdm", "st_adx_mdm")],
    ]
    return TableSpec(
        name="features_technical",
        keys=("symbol", "date"),
        schema=_schema(cols),
        date_column="date",
        description="Technical indicators per symbol and day (sql/features_technical.sql).",
    )


REGIME = TableSpec(
    name="features_regime",
    keys=("symbol", "date"),
    schema=_schema(
        [
            ("symbol", pa.string()),
            ("date", pa.date32()),
            ("close", F64),
            *[(f"rv_{n}", F64) for n in (5, 10, 20, 60, 120)],
            ("vix", F64),
            ("vix_date", pa.date32()),
            ("vix_chg_5d", F64),
            ("vix_rank_252", F64),
            ("vix_pctl_252", F64),
            ("hv_iv_ratio", F64),
            ("above_sma200", pa.bool_()),
            ("regime", pa.string()),
            ("days_in_regime", pa.int64()),
        ]
    ),
    date_column="date",
    description="Realized vol, VIX level/rank/percentile, trend filter and the regime label (sql/features_regime.sql).",
)

_MACRO_LEVELS = ("dgs10", "dgs2", "dgs3mo", "slope_10y2y", "slope_10y3m", "ig_oas", "hy_oas")
_MACRO_DERIVED = ("slope_10y2y", "slope_10y3m", "ig_oas", "hy_oas")

MACRO = TableSpec(
    name="features_macro",
    keys=("date",),
    schema=_schema(
        [
            ("date", pa.date32()),
            *[(c, F64) for c in _MACRO_LEVELS],
            *[(f"{c}_chg_{k}d", F64) for c in _MACRO_DERIVED for k in (5, 20)],
            *[(f"{c}_z_252", F64) for c in _MACRO_DERIVED],
        ]
    ),
    date_column="date",
    description="Yield-curve slopes and credit spreads as known on each date (sql/features_macro.sql).",
)

POSITIONING = TableSpec(
    name="features_positioning",
    keys=("market_code", "report_type", "report_date"),
    schema=_schema(
        [
            ("market_code", pa.string()),
            ("report_type", pa.string()),
            ("report_date", pa.date32()),
            ("available_date", pa.date32()),
            ("market_name", pa.string()),
            ("open_interest", F64),
            ("spec_long", F64),
            ("spec_short", F64),
            ("net_spec", F64),
            ("net_spec_pct_oi", F64),
            ("net_spec_pct_oi_chg_1w", F64),
            ("net_spec_z_156", F64),
        ]
    ),
    date_column="report_date",
    description="CFTC COT net speculative positioning, % of open interest and 3-year z-score (sql/features_positioning.sql).",
)

OPTION_FLOW = TableSpec(
    name="features_option_flow",
    keys=("underlying", "quote_date"),
    schema=_schema(
        [
            ("underlying", pa.string()),
            ("quote_date", pa.date32()),
            ("n_calls", pa.int64()),
            ("n_puts", pa.int64()),
            ("call_volume", F64),
            ("put_volume", F64),
            ("put_call_volume_ratio", F64),
            ("call_open_interest", F64),
            ("put_open_interest", F64),
            ("put_call_oi_ratio", F64),
        ]
    ),
    date_column="quote_date",
    description="Put/call volume and open-interest ratios per underlying and day (sql/features_option_flow.sql).",
)

OPTIONS = TableSpec(
    name="features_options",
    keys=("quote_date", "underlying", "root", "expiry", "strike", "right"),
    schema=_schema(
        [
            ("quote_date", pa.date32()),
            ("underlying", pa.string()),
            ("root", pa.string()),
            ("expiry", pa.date32()),
            ("strike", F64),
            ("right", pa.string()),
            ("settlement", pa.string()),
            ("source", pa.string()),
            ("bid", F64),
            ("ask", F64),
            ("last", F64),
            ("mid", F64),
            ("mid_source", pa.string()),
            ("spread_pct", F64),
            ("underlying_price", F64),
            ("dte", pa.int32()),
            ("t_years", F64),
            ("rate", F64),
            ("div_yield", F64),
            ("forward", F64),
            ("moneyness", F64),
            ("log_moneyness_fwd", F64),
            ("iv", F64),
            ("vendor_iv", F64),
            *[(g, F64) for g in ("delta", "gamma", "vega", "theta", "rho", "vega_1pct", "theta_per_day")],
            ("intrinsic", F64),
            ("time_value", F64),
            ("volume", F64),
            ("open_interest", F64),
        ]
    ),
    date_column="quote_date",
    description="Per-quote option analytics: mid, spread, moneyness, T, IV and Greeks (sql/features_options.sql).",
)

SURFACE = TableSpec(
    name="features_surface",
    keys=("underlying", "date"),
    schema=_schema(
        [
            ("underlying", pa.string()),
            ("date", pa.date32()),
            ("spot", F64),
            ("atm_iv_30", F64),
            ("atm_iv_60", F64),
            ("atm_iv_30_vendor", F64),
            ("expiry_before_30", pa.date32()),
            ("expiry_after_30", pa.date32()),
            ("iv_put_25d_30", F64),
            ("iv_call_25d_30", F64),
            ("skew_25d", F64),
            ("term_slope", F64),
            ("iv_rank_252", F64),
            ("iv_pctl_252", F64),
            ("hv_20", F64),
            ("hv_iv_ratio", F64),
            ("put_call_volume_ratio", F64),
            ("put_call_oi_ratio", F64),
            ("gex_1pct", F64),
            ("regime", pa.string()),
            ("n_quotes", pa.int64()),
            ("n_expiries", pa.int64()),
        ]
    ),
    date_column="date",
    description="Per-underlying implied-vol surface: 30/60-day ATM IV, IV rank, 25-delta skew, term slope, "
    "HV/IV, put/call ratios, dealer gamma, HV/IV regime (sql/features_surface.sql).",
)

TECHNICAL = technical_spec()

FEATURE_TABLES: tuple[str, ...] = (
    "features_technical",
    "features_regime",
    "features_macro",
    "features_positioning",
    "features_option_flow",
    "features_options",
    "features_surface",
)

for _spec in (TECHNICAL, REGIME, MACRO, POSITIONING, OPTION_FLOW, OPTIONS, SURFACE):
    register(_spec)
