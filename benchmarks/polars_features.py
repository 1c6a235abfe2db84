"""The peer of ``bench_features.py``: ``features_technical`` and ``features_regime`` written in polars,
column for column after the definitions in the headers of ``sql/features_technical.sql`` and
``sql/features_regime.sql`` (not product code: the benchmark checks it against the build to 1e-9).

Polars has no SMA-seeded EMA, so a seeded EMA is ``ewm_mean(adjust=False)`` over the series whose first
``n - 1`` values are blanked and whose ``n``-th is replaced by the mean of the first ``n`` (the recursion
then starts from the seed, exactly the definition).  Rolling means and deviations are polars' own
(sliding sums): equal to the build's fixed-order sums to ~1e-12, not bitwise.
"""

from __future__ import annotations

import math

import polars as pl

SMA = (10, 20, 50, 100, 200)
EMA = (8, 12, 21, 26, 50)
RV = (5, 10, 20, 60, 120)
SYM = "symbol"


def _seeded(x: pl.Expr, n: int, alpha: float, first: pl.Expr) -> pl.Expr:
    """EMA with smoothing ``alpha`` seeded by the mean of the ``n`` values starting at row ``first`` of the
    symbol (the position of its first valid input); NULL before the seed and where ``x`` is NULL."""
    pos = pl.int_range(pl.len()).over(SYM)
    seed_row = first + n - 1
    seed = x.rolling_mean(n, min_samples=n).over(SYM)
    started = pl.when(pos < seed_row).then(None).when(pos == seed_row).then(seed).otherwise(x)
    out = started.ewm_mean(alpha=alpha, adjust=False, ignore_nulls=True).over(SYM)
    return pl.when((pos < seed_row) | x.is_null()).then(None).otherwise(out)


def _first_valid(x: pl.Expr) -> pl.Expr:
    """Row (within the symbol) of the first non-null value of ``x``."""
    pos = pl.int_range(pl.len()).over(SYM)
    return pl.when(x.is_not_null()).then(pos).otherwise(None).min().over(SYM)


def technical(bars: pl.DataFrame) -> pl.DataFrame:
    """``features_technical`` (without the recursion-state columns' role, but with their values)."""
    b = bars.sort(SYM, "date").with_columns(
        px=pl.coalesce("adj_close", "close"),
        ret_basis=pl.when(pl.col("adj_close").is_null()).then(pl.lit("close")).otherwise(pl.lit("adj_close")),
    )
    c, h, lo = pl.col("close"), pl.col("high"), pl.col("low")
    prev_c = c.shift(1).over(SYM)
    chg = c - prev_c
    up, down = h - h.shift(1).over(SYM), lo.shift(1).over(SYM) - lo
    b = b.with_columns(
        gain=pl.when(chg > 0).then(chg).otherwise(pl.when(chg.is_null()).then(None).otherwise(0.0)),
        loss=pl.when(chg < 0).then(-chg).otherwise(pl.when(chg.is_null()).then(None).otherwise(0.0)),
        tr=pl.max_horizontal(h - lo, (h - prev_c).abs(), (lo - prev_c).abs()).pipe(
            lambda e: pl.when(h.is_null() | lo.is_null() | prev_c.is_null()).then(None).otherwise(e)
        ),
        pdm=pl.when(up.is_null() | down.is_null())
        .then(None)
        .when((up > down) & (up > 0))
        .then(up)
        .otherwise(0.0),
        mdm=pl.when(up.is_null() | down.is_null())
        .then(None)
        .when((down > up) & (down > 0))
        .then(down)
        .otherwise(0.0),
    )
    zero = pl.lit(0)
    one = pl.lit(1)
    b = b.with_columns(
        *[c.rolling_mean(n, min_samples=n).over(SYM).alias(f"sma_{n}") for n in SMA],
        *[_seeded(c, n, 2 / (n + 1), zero).alias(f"ema_{n}") for n in EMA],
        st_macd_fast=_seeded(c, 12, 2 / 13, zero),
        st_macd_slow=_seeded(c, 26, 2 / 27, zero),
        st_rsi_gain=_seeded(pl.col("gain"), 14, 1 / 14, one),
        st_rsi_loss=_seeded(pl.col("loss"), 14, 1 / 14, one),
        atr_14=_seeded(pl.col("tr"), 14, 1 / 14, _first_valid(pl.col("tr"))),
        st_adx_pdm=_seeded(pl.col("pdm"), 14, 1 / 14, _first_valid(pl.col("pdm"))),
        st_adx_mdm=_seeded(pl.col("mdm"), 14, 1 / 14, _first_valid(pl.col("mdm"))),
        bb_mid=c.rolling_mean(20, min_samples=20).over(SYM),
        bb_sigma=c.rolling_std(20, min_samples=20, ddof=0).over(SYM),
        volume_sma_20=pl.col("volume").rolling_mean(20, min_samples=20).over(SYM),
        low_14=lo.rolling_min(14, min_samples=14).over(SYM),
        high_14=h.rolling_max(14, min_samples=14).over(SYM),
        high_52w=pl.coalesce(h, c).rolling_max(252, min_samples=252).over(SYM),
        low_52w=pl.coalesce(lo, c).rolling_min(252, min_samples=252).over(SYM),
        **{
            f"ret_{k}d": pl.col("px") / pl.col("px").shift(k).over(SYM).replace(0, None) - 1
            for k in (1, 5, 20, 60)
        },
    )
    macd = pl.col("st_macd_fast") - pl.col("st_macd_slow")
    s_tr, s_p, s_m = pl.col("atr_14"), pl.col("st_adx_pdm"), pl.col("st_adx_mdm")
    pdi, mdi = 100 * s_p / s_tr, 100 * s_m / s_tr
    dx = (
        pl.when(s_tr > 0)
        .then(pl.when(pdi + mdi > 0).then(100 * (pdi - mdi).abs() / (pdi + mdi)).otherwise(0.0))
        .when(s_tr == 0)
        .then(0.0)
        .otherwise(None)
    )
    b = b.with_columns(
        macd=macd,
        dx=dx,
        stoch_k=100 * (c - pl.col("low_14")) / (pl.col("high_14") - pl.col("low_14")).replace(0, None),
    )
    b = b.with_columns(
        macd_signal=_seeded(pl.col("macd"), 9, 2 / 10, _first_valid(pl.col("macd"))),
        adx_14=_seeded(pl.col("dx"), 14, 1 / 14, _first_valid(pl.col("dx"))),
        stoch_d=pl.col("stoch_k").rolling_mean(3, min_samples=3).over(SYM),
    )
    g, lo_ = pl.col("st_rsi_gain"), pl.col("st_rsi_loss")
    sigma, mid = pl.col("bb_sigma"), pl.col("bb_mid")
    return b.select(
        SYM, "date", "close", "ret_basis", "ret_1d", "ret_5d", "ret_20d", "ret_60d",
        *[f"sma_{n}" for n in SMA], *[f"ema_{n}" for n in EMA],
        rsi_14=pl.when(lo_ == 0).then(pl.when(g == 0).then(50.0).otherwise(100.0)).otherwise(100 - 100 / (1 + g / lo_)),
        macd=pl.col("macd"),
        macd_signal=pl.col("macd_signal"),
        macd_hist=pl.col("macd") - pl.col("macd_signal"),
        ema_ratio=pl.col("st_macd_fast") / pl.col("st_macd_slow").replace(0, None) - 1,
        atr_14=s_tr,
        bb_mid=mid,
        bb_upper=mid + 2 * sigma,
        bb_lower=mid - 2 * sigma,
        bb_pctb=(c - (mid - 2 * sigma)) / (4 * sigma).replace(0, None),
        bb_width=4 * sigma / mid.replace(0, None),
        stoch_k=pl.col("stoch_k"),
        stoch_d=pl.col("stoch_d"),
        adx_14=pl.col("adx_14"),
        plus_di=100 * s_p / s_tr.replace(0, None),
        minus_di=100 * s_m / s_tr.replace(0, None),
        high_52w=pl.col("high_52w"),
        low_52w=pl.col("low_52w"),
        dist_52w_high=c / pl.col("high_52w").replace(0, None) - 1,
        dist_52w_low=c / pl.col("low_52w").replace(0, None) - 1,
        volume_ratio_20=pl.col("volume") / pl.col("volume_sma_20").replace(0, None),
        st_macd_fast=pl.col("st_macd_fast"),
        st_macd_slow=pl.col("st_macd_slow"),
        st_rsi_gain=g,
        st_rsi_loss=lo_,
        st_adx_pdm=s_p,
        st_adx_mdm=s_m,
    )  # fmt: skip


def regime(bars: pl.DataFrame, rules: dict[str, float], vix_symbol: str = "^VIX") -> pl.DataFrame:
    """``features_regime`` with the rule thresholds of ``rules`` (``features.settings.RegimeRules`` fields)."""
    r = rules
    v = (
        bars.filter((pl.col(SYM) == vix_symbol) & (pl.col("close") > 0))
        .sort("date")
        .select(vix_date="date", vix="close")
    )
    x = pl.col("vix")
    lo, hi = x.rolling_min(252, min_samples=252), x.rolling_max(252, min_samples=252)
    v = v.with_columns(
        vix_chg_5d=x / x.shift(5) - 1,
        vix_rank_252=100 * (x - lo) / (hi - lo).replace(0, None),
        vix_pctl_252=100 * (x.rolling_rank(252, method="min", min_samples=252) - 1).cast(pl.Float64) / 251,
    )
    v = v.with_columns(vix_5ago=x.shift(5), rank_5ago=pl.col("vix_rank_252").shift(5))
    chg, rank = pl.col("vix_chg_5d"), pl.col("vix_rank_252")
    label = (
        pl.when(rank.is_null())
        .then(None)
        .when((chg >= r["expansion_change"]) & (pl.col("rank_5ago") < r["high_rank"]) & (pl.col("vix_5ago") < r["high_level"]))
        .then(pl.lit("iv_expansion"))
        .when((chg <= r["contraction_change"]) & ((pl.col("rank_5ago") >= r["elevated_rank"]) | (pl.col("vix_5ago") >= r["elevated_level"])))
        .then(pl.lit("iv_contraction"))
        .when((rank >= r["high_rank"]) | (x >= r["high_level"]))
        .then(pl.lit("high_vol"))
        .when((rank <= r["low_rank"]) & (x < r["low_level"]))
        .then(pl.lit("low_vol"))
        .otherwise(pl.lit("neutral"))
    )  # fmt: skip
    v = v.with_columns(regime=label)
    run = (pl.col("regime").ne_missing(pl.col("regime").shift(1))).cum_sum()
    v = v.with_columns(run=run).with_columns(
        days_in_regime=pl.when(pl.col("regime").is_not_null())
        .then(pl.int_range(1, pl.len() + 1).over("run"))
        .otherwise(None)
    )
    b = bars.sort(SYM, "date").with_columns(px=pl.coalesce("adj_close", "close"))
    px, prev = pl.col("px"), pl.col("px").shift(1).over(SYM)
    b = b.with_columns(log_ret=pl.when((px > 0) & (prev > 0)).then((px / prev).log()).otherwise(None))
    ann = math.sqrt(252)
    b = b.with_columns(
        *[
            (pl.col("log_ret").rolling_std(n, min_samples=n, ddof=1).over(SYM) * ann).alias(f"rv_{n}")
            for n in RV
        ],
        sma_200=pl.col("close").rolling_mean(200, min_samples=200).over(SYM),
    )
    j = b.sort("date").join_asof(v.drop("run", "vix_5ago", "rank_5ago"), left_on="date", right_on="vix_date")
    ok = pl.col("vix_date").is_not_null() & (
        (pl.col("date") - pl.col("vix_date")).dt.total_days() <= r["vix_max_stale_days"]
    )

    def fresh(e: pl.Expr) -> pl.Expr:
        return pl.when(ok).then(e).otherwise(None)

    return j.sort(SYM, "date").select(
        SYM, "date", "close", *[f"rv_{n}" for n in RV],
        vix=fresh(x), vix_date=fresh(pl.col("vix_date")), vix_chg_5d=fresh(chg), vix_rank_252=fresh(rank),
        vix_pctl_252=fresh(pl.col("vix_pctl_252")), hv_iv_ratio=fresh(pl.col("rv_20") / (x / 100)),
        above_sma200=pl.when(pl.col("sma_200").is_not_null()).then(pl.col("close") > pl.col("sma_200")),
        regime=fresh(pl.col("regime")), days_in_regime=fresh(pl.col("days_in_regime")),
    )  # fmt: skip
