-- features_macro: yield-curve slopes and credit spreads as they were KNOWN on each date.   key (date)
--
-- Inputs: macro_series (FRED/ALFRED rows: series_id, date = observation date, realtime_start = first day
--   that value was published, value in percent).  Series: DGS10, DGS2, DGS3MO (10y/2y/3m Treasury
--   constant-maturity yields), BAMLC0A0CM (ICE BofA US corporate IG option-adjusted spread), BAMLH0A0HYM2
--   (US high-yield OAS).  No $parameters, no template values.
--
-- Point in time (vintages honoured): the rows are the dates on which any of these series published
-- something (an observation's usable date = max(observation date, first realtime_start)).  On date d each
-- series contributes the value of its latest observation usable by d, in the latest vintage whose
-- realtime_start <= d (two ASOF joins).  A later revision of an old observation therefore never leaks into
-- earlier rows.  FRED files without vintages carry realtime_start = observation date: each value counts
-- as known on its own date.  Values stay at their last known level until the series publishes again.
--
-- Columns (percentage points, as FRED publishes them)
--   dgs10, dgs2, dgs3mo, ig_oas, hy_oas   levels as known on the date
--   slope_10y2y = dgs10 - dgs2;  slope_10y3m = dgs10 - dgs3mo (NULL while DGS3MO has not been ingested —
--                 the sample data has no DGS3MO; `quantlake ingest macro --series DGS3MO` adds it)
--   <x>_chg_5d / _chg_20d   x - x five / twenty rows earlier (rows = publication days of this table)
--   <x>_z_252   (x - mean) / sample std over the last 252 rows including today (NULL until 252 rows or
--               with a missing value inside the window)
WITH obs AS (
    SELECT series_id, date, realtime_start, value
    FROM macro_series
    WHERE series_id IN ('DGS10', 'DGS2', 'DGS3MO', 'BAMLC0A0CM', 'BAMLH0A0HYM2') AND value IS NOT NULL
),
usable AS (
    SELECT series_id, date, greatest(date, min(realtime_start)) AS known_from
    FROM obs
    GROUP BY series_id, date
),
latest AS (
    SELECT series_id, known_from,
           max(max(date)) OVER (PARTITION BY series_id ORDER BY known_from
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS obs_date
    FROM usable
    GROUP BY series_id, known_from
),
spine AS (
    SELECT DISTINCT known_from AS date FROM usable
),
pairs AS (
    SELECT s.date, k.series_id
    FROM spine AS s
    CROSS JOIN (SELECT DISTINCT series_id FROM obs) AS k
),
pick_obs AS (
    SELECT p.date, p.series_id, l.obs_date
    FROM pairs AS p
    ASOF JOIN latest AS l ON l.series_id = p.series_id AND p.date >= l.known_from
),
pick_vintage AS (
    SELECT a.date, a.series_id, o.value
    FROM pick_obs AS a
    ASOF JOIN obs AS o ON o.series_id = a.series_id AND o.date = a.obs_date AND a.date >= o.realtime_start
),
wide AS (
    SELECT s.date,
           max(v.value) FILTER (WHERE v.series_id = 'DGS10') AS dgs10,
           max(v.value) FILTER (WHERE v.series_id = 'DGS2') AS dgs2,
           max(v.value) FILTER (WHERE v.series_id = 'DGS3MO') AS dgs3mo,
           max(v.value) FILTER (WHERE v.series_id = 'BAMLC0A0CM') AS ig_oas,
           max(v.value) FILTER (WHERE v.series_id = 'BAMLH0A0HYM2') AS hy_oas
    FROM spine AS s
    LEFT JOIN pick_vintage AS v ON v.date = s.date
    GROUP BY s.date
),
levels AS (
    SELECT *, dgs10 - dgs2 AS slope_10y2y, dgs10 - dgs3mo AS slope_10y3m
    FROM wide
),
series AS (
    SELECT list(date ORDER BY date) AS d,
           list(slope_10y2y ORDER BY date) AS s2,
           list(slope_10y3m ORDER BY date) AS s3,
           list(ig_oas ORDER BY date) AS ig,
           list(hy_oas ORDER BY date) AS hy
    FROM levels
),
kernels AS MATERIALIZED (  -- unnesting a list that is still an expression is quadratic: store it first
    SELECT d,
           ql_sma(s2, 252) AS s2_mean, ql_rolling_std(s2, 252, 1) AS s2_sd,
           ql_sma(s3, 252) AS s3_mean, ql_rolling_std(s3, 252, 1) AS s3_sd,
           ql_sma(ig, 252) AS ig_mean, ql_rolling_std(ig, 252, 1) AS ig_sd,
           ql_sma(hy, 252) AS hy_mean, ql_rolling_std(hy, 252, 1) AS hy_sd
    FROM series
),
stats AS (
    SELECT unnest(d) AS date,
           unnest(s2_mean) AS s2_mean, unnest(s2_sd) AS s2_sd,
           unnest(s3_mean) AS s3_mean, unnest(s3_sd) AS s3_sd,
           unnest(ig_mean) AS ig_mean, unnest(ig_sd) AS ig_sd,
           unnest(hy_mean) AS hy_mean, unnest(hy_sd) AS hy_sd
    FROM kernels
)
SELECT l.date, l.dgs10, l.dgs2, l.dgs3mo, l.slope_10y2y, l.slope_10y3m, l.ig_oas, l.hy_oas,
       l.slope_10y2y - lag(l.slope_10y2y, 5) OVER w AS slope_10y2y_chg_5d,
       l.slope_10y2y - lag(l.slope_10y2y, 20) OVER w AS slope_10y2y_chg_20d,
       l.slope_10y3m - lag(l.slope_10y3m, 5) OVER w AS slope_10y3m_chg_5d,
       l.slope_10y3m - lag(l.slope_10y3m, 20) OVER w AS slope_10y3m_chg_20d,
       l.ig_oas - lag(l.ig_oas, 5) OVER w AS ig_oas_chg_5d,
       l.ig_oas - lag(l.ig_oas, 20) OVER w AS ig_oas_chg_20d,
       l.hy_oas - lag(l.hy_oas, 5) OVER w AS hy_oas_chg_5d,
       l.hy_oas - lag(l.hy_oas, 20) OVER w AS hy_oas_chg_20d,
       (l.slope_10y2y - s.s2_mean) / NULLIF(s.s2_sd, 0) AS slope_10y2y_z_252,
       (l.slope_10y3m - s.s3_mean) / NULLIF(s.s3_sd, 0) AS slope_10y3m_z_252,
       (l.ig_oas - s.ig_mean) / NULLIF(s.ig_sd, 0) AS ig_oas_z_252,
       (l.hy_oas - s.hy_mean) / NULLIF(s.hy_sd, 0) AS hy_oas_z_252
FROM levels AS l
JOIN stats AS s ON s.date = l.date
WINDOW w AS (ORDER BY l.date)
ORDER BY l.date
