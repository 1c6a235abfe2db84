-- Bars missing inside sessions: every expected bar start of a symbol's interval, between its first and last
-- stored bar, that has no stored bar.  Consecutive missing bars of a session form one gap.  Nothing is filled
-- in anywhere: this only reports.
--
-- Inputs (registered by features.bars.gaps):
--   src          stored bars of ONE interval for symbols of ONE calendar: symbol, ts (bar open, UTC)
--   cal_sessions that calendar's sessions: date, open, close (UTC; 24/7: UTC days)
-- Parameters:
--   $step_us      the interval in microseconds (expected bar starts: open, open + step, ... < close)
--   $interval     its label
WITH span AS (
    SELECT symbol, min(ts) AS first_ts, max(ts) AS last_ts FROM src GROUP BY symbol
),
expected AS (
    SELECT span.symbol, s.date, unnest(range(s.open, s.close, to_microseconds($step_us))) AS ts, span.first_ts, span.last_ts
    FROM span JOIN cal_sessions s ON s.close > span.first_ts AND s.open <= span.last_ts
),
missing AS (
    SELECT e.symbol, e.date, e.ts
    FROM expected e
    WHERE e.ts BETWEEN e.first_ts AND e.last_ts
      AND NOT EXISTS (SELECT 1 FROM src WHERE src.symbol = e.symbol AND src.ts = e.ts)
),
runs AS (
    SELECT *, epoch_us(ts) // $step_us - row_number() OVER (PARTITION BY symbol, date ORDER BY ts) AS grp
    FROM missing
)
SELECT
    symbol,
    CAST($interval AS VARCHAR) AS interval,
    date,
    min(ts) AS gap_start,
    max(ts) + to_microseconds($step_us) AS gap_end,
    count(*) AS missing_bars
FROM runs
GROUP BY symbol, date, grp
ORDER BY symbol, gap_start
