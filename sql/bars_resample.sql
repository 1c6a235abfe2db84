-- Resample OHLCV bars from a finer to a coarser interval, aligned to the session (24/7: to UTC days).
--
-- Inputs (registered by features.bars.resample):
--   src          bars of ONE source interval for symbols of ONE calendar:
--                symbol, ts (bar open, UTC), date (session date), open, high, low, close, adj_close, volume
--   cal_sessions that calendar's sessions covering src: date, open, close (UTC instants; 24/7: UTC days)
-- Parameters:
--   $step_us      target bar length in microseconds; 0 = one bar per session (1d)
--   $weekly       one bar per calendar week (Monday-based), from its first session's open to its last close
--   $src_step_us  source bar length in microseconds (a source bar covers [ts, ts + src_step))
--   $as_of        instant the result is as of: a bar is emitted only once it has closed by then
--   $interval     label of the target interval (e.g. '1h')
--
-- Buckets: intraday targets start at the session open and step by the target length; the last bucket of a
-- session ends at the close (NYSE at 1h: 9:30, 10:30, ..., 15:30-16:00; early closes end earlier).  Source
-- bars outside the regular session (pre/after market) are not aggregated.
-- Aggregates: open = first open, high = max, low = min, close = last close, adj_close = last, volume = sum,
-- n_bars = source bars in the bucket; date = the session date of the bucket's start (weekly: the week's first
-- session).  Missing source bars are NOT filled: a bucket holds what exists
-- (see bars_gaps.sql for what is missing).
-- A bucket is emitted only when it is closed: its end is <= $as_of and <= the end of the symbol's last
-- source bar (the partial last bar is excluded until the data covers its whole span).
WITH s AS (
    SELECT date, open AS s_open, close AS s_close, date_trunc('week', date) AS week FROM cal_sessions
),
wk AS (
    SELECT week, min(date) AS w_date, min(s_open) AS w_open, max(s_close) AS w_close FROM s GROUP BY week
),
b AS (
    SELECT src.*, s.s_open, s.s_close, s.week
    FROM src JOIN s ON src.date = s.date
    WHERE src.ts >= s.s_open AND src.ts < s.s_close
),
k AS (
    SELECT
        b.*,
        CASE WHEN $weekly THEN wk.w_date ELSE b.date END AS bucket_date,
        CASE
            WHEN $weekly THEN wk.w_open
            WHEN $step_us = 0 THEN b.s_open
            ELSE b.s_open + to_microseconds(((epoch_us(b.ts) - epoch_us(b.s_open)) // $step_us) * $step_us)
        END AS bucket,
        CASE
            WHEN $weekly THEN wk.w_close
            WHEN $step_us = 0 THEN b.s_close
            ELSE least(
                b.s_open + to_microseconds(((epoch_us(b.ts) - epoch_us(b.s_open)) // $step_us + 1) * $step_us),
                b.s_close
            )
        END AS bucket_end
    FROM b JOIN wk USING (week)
),
agg AS (
    SELECT
        symbol,
        bucket,
        bucket_end,
        min(bucket_date) AS date,
        arg_min(open, ts) AS open,
        max(high) AS high,
        min(low) AS low,
        arg_max(close, ts) AS close,
        arg_max(adj_close, ts) AS adj_close,
        sum(volume) AS volume,
        count(*) AS n_bars
    FROM k
    GROUP BY symbol, bucket, bucket_end
),
data_end AS (
    SELECT symbol, max(ts) + to_microseconds($src_step_us) AS data_end FROM src GROUP BY symbol
)
SELECT
    agg.symbol,
    CAST($interval AS VARCHAR) AS interval,
    agg.bucket AS ts,
    agg.date,
    agg.open,
    agg.high,
    agg.low,
    agg.close,
    agg.adj_close,
    agg.volume,
    agg.n_bars,
    agg.bucket_end AS close_ts
FROM agg JOIN data_end USING (symbol)
WHERE agg.bucket_end <= data_end.data_end AND agg.bucket_end <= $as_of
ORDER BY agg.symbol, agg.bucket
