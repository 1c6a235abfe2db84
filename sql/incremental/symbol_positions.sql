-- Where each affected symbol's incremental recomputation starts.  Input `affected` (symbol, first_date):
-- the first bar that changed.  Parameter $warmup: bars of history to read before it.
--   rows_before  bars before first_date;  prev_date  the last of them (whose stored feature row holds the
--   recursion state to resume from);  hl_before  how many of them have high and low;
--   warm_from    the date of the $warmup-th bar before first_date (NULL when there are fewer).
-- One hash aggregation (the $warmup latest dates kept per symbol by max(date, n)), no sort of the history.
WITH positions AS (
    SELECT b.symbol,
           any_value(a.first_date) AS first_date,
           count(*) FILTER (WHERE b.date < a.first_date) AS rows_before,
           max(b.date) FILTER (WHERE b.date < a.first_date) AS prev_date,
           count(*) FILTER (WHERE b.date < a.first_date AND b.high IS NOT NULL AND b.low IS NOT NULL)
               AS hl_before,
           max(b.date, $warmup) FILTER (WHERE b.date < a.first_date) AS latest_before
    FROM equity_bars AS b
    JOIN affected AS a ON a.symbol = b.symbol
    WHERE b.close IS NOT NULL
    GROUP BY b.symbol
)
SELECT symbol, first_date, rows_before, prev_date, hl_before,
       CASE WHEN len(latest_before) = $warmup THEN latest_before[$warmup] END AS warm_from
FROM positions
ORDER BY symbol
