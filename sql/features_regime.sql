-- features_regime: realized volatility, VIX level/rank/percentile, trend filter and the market regime.
--                                                                               key (symbol, date)
-- Inputs: equity_bars (the VIX series as symbol $vix_symbol, default ^VIX); `regime_series` (registered by
--   features/build.py): one row per bar to write (symbol, date, close, sd_N, sma_200), produced by the
--   series pass of features/series.py over sql/series/regime_bars.sql (the bars of each symbol of `scope` from
--   its warm_from, sorted; warm-up rows before write_from feed the windows but are not written):
--   sd_N = sample standard deviation (ddof 1) of the last N daily log returns, sma_200 = mean of the last
--   200 closes, both NULL until the window is full (fixed summation order: bitwise reproducible).
-- Parameters: $vix_symbol, $vix_max_stale_days and the rule thresholds $high_rank, $high_level, $low_rank,
--   $low_level, $expansion_change, $contraction_change, $elevated_rank, $elevated_level.
-- Template values (validated integers only): rv_periods.
--
-- A row at date t uses bars and VIX closes up to and including t only (no look-ahead).
--
-- Per symbol
--   rv_N          close-to-close realized vol: SAMPLE standard deviation (ddof 1) of the last N daily log
--                 returns ln(px_t/px_{t-1}) times sqrt(252); px = adj_close when present, else close.
--                 NULL until N returns exist.
--   above_sma200  close > mean of the last 200 closes (the trend filter); NULL before 200 bars
--   hv_iv_ratio   rv_20 / (vix / 100)
-- From the VIX series (computed on VIX's own trading days, then attached to each symbol's date as the
-- latest VIX close on or before it, at most $vix_max_stale_days (7) calendar days old, else NULL)
--   vix           VIX close; vix_date the VIX day used
--   vix_chg_5d    vix_t / vix_{t-5 VIX days} - 1
--   vix_rank_252  100 (vix - min) / (max - min) over the last 252 VIX closes including today (0..100)
--   vix_pctl_252  100 x (how many of the previous 251 closes are strictly below today's) / 251 (0..100)
--   regime        the first rule that holds, in this order (NULL until vix_rank_252 exists):
--                   iv_expansion    vix_chg_5d >= +20% and 5 VIX days ago the level was not high
--                                   (rank then < 70 and VIX then < 30)
--                   iv_contraction  vix_chg_5d <= -15% and 5 VIX days ago the level was elevated
--                                   (rank then >= 50 or VIX then >= 20)
--                   high_vol        vix_rank_252 >= 70 or vix >= 30
--                   low_vol         vix_rank_252 <= 25 and vix < 16
--                   neutral         otherwise
--                 Transitions come first: a shock out of calm is the event an adaptive option strategy
--                 must see even when the level alone already reads high_vol.  The regime is market-wide (the
--                 same label for every symbol on a date).
--   days_in_regime  consecutive VIX days the current label has held, today included (1 on a change)
WITH vix_raw AS (
    SELECT date, close AS vix
    FROM equity_bars
    WHERE symbol = $vix_symbol AND close > 0
),
vix_windows AS (
    SELECT date, vix,
           vix / lag(vix, 5) OVER o - 1 AS vix_chg_5d,
           CASE WHEN count(*) OVER w = 252
                THEN 100 * (vix - min(vix) OVER w) / NULLIF(max(vix) OVER w - min(vix) OVER w, 0) END
               AS vix_rank_252,
           CASE WHEN count(*) OVER w = 252
                THEN CAST(100 * (rank(ORDER BY vix) OVER w - 1) AS DOUBLE) / 251 END AS vix_pctl_252
    FROM vix_raw
    WINDOW o AS (ORDER BY date),
           w AS (ORDER BY date ROWS BETWEEN 251 PRECEDING AND CURRENT ROW)
),
vix_before AS (
    SELECT *,
           lag(vix, 5) OVER o AS vix_5ago,
           lag(vix_rank_252, 5) OVER o AS rank_5ago
    FROM vix_windows
    WINDOW o AS (ORDER BY date)
),
vix_labels AS (
    SELECT *,
           CASE
               WHEN vix_rank_252 IS NULL THEN NULL
               WHEN vix_chg_5d >= $expansion_change AND rank_5ago < $high_rank AND vix_5ago < $high_level
                   THEN 'iv_expansion'
               WHEN vix_chg_5d <= $contraction_change
                    AND (rank_5ago >= $elevated_rank OR vix_5ago >= $elevated_level)
                   THEN 'iv_contraction'
               WHEN vix_rank_252 >= $high_rank OR vix >= $high_level THEN 'high_vol'
               WHEN vix_rank_252 <= $low_rank AND vix < $low_level THEN 'low_vol'
               ELSE 'neutral'
           END AS regime
    FROM vix_before
),
vix_changes AS (
    SELECT *, CASE WHEN regime IS DISTINCT FROM lag(regime) OVER o THEN 1 ELSE 0 END AS is_change
    FROM vix_labels
    WINDOW o AS (ORDER BY date)
),
vix_runs AS (
    SELECT *, sum(is_change) OVER (ORDER BY date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run_id
    FROM vix_changes
),
vix_final AS (
    SELECT date AS vix_date, vix, vix_chg_5d, vix_rank_252, vix_pctl_252, regime,
           CASE WHEN regime IS NOT NULL THEN row_number() OVER (PARTITION BY run_id ORDER BY date) END
               AS days_in_regime
    FROM vix_runs
),
joined AS (
    SELECT v.*, x.*
    FROM regime_series AS v
    ASOF LEFT JOIN vix_final AS x ON v.date >= x.vix_date
),
fresh AS (
    SELECT *, (vix_date IS NOT NULL AND date - vix_date <= $vix_max_stale_days) AS vix_ok
    FROM joined
)
SELECT symbol, date, close,
{%- for n in rv_periods %}
       sd_{{ n }} * sqrt(252) AS rv_{{ n }},
{%- endfor %}
       CASE WHEN vix_ok THEN vix END AS vix,
       CASE WHEN vix_ok THEN vix_date END AS vix_date,
       CASE WHEN vix_ok THEN vix_chg_5d END AS vix_chg_5d,
       CASE WHEN vix_ok THEN vix_rank_252 END AS vix_rank_252,
       CASE WHEN vix_ok THEN vix_pctl_252 END AS vix_pctl_252,
       CASE WHEN vix_ok THEN sd_20 * sqrt(252) / (vix / 100) END AS hv_iv_ratio,
       CASE WHEN sma_200 IS NOT NULL THEN close > sma_200 END AS above_sma200,
       CASE WHEN vix_ok THEN regime END AS regime,
       CASE WHEN vix_ok THEN days_in_regime END AS days_in_regime
FROM fresh
ORDER BY symbol, date
