-- Where each affected symbol's incremental recomputation starts.  Input `affected` (symbol, first_date):
-- the first bar that changed.  Parameter $warmup: bars of history to read before it.
--   rows_before  bars before first_date;  prev_date  the last of them (whose stored feature row holds the
--   recursion state to resume from);  hl_before  how many of them have high and low;
--   warm_from    the date of the $warmup-th bar before first_date (NULL when there are fewer).
WITH ranked AS (
    SELECT b.symbol, b.date, b.high, b.low, a.first_date,
           row_number() OVER (PARTITION BY b.symbol ORDER BY b.date) AS rn
    FROM equity_bars AS b
    JOIN affected AS a ON a.symbol = b.symbol
    WHERE b.close IS NOT NULL
),
positions AS (
    SELECT symbol,
           any_value(first_date) AS first_date,
           count(*) FILTER (WHERE date < first_date) AS rows_before,
           max(date) FILTER (WHERE date < first_date) AS prev_date,
           count(*) FILTER (WHERE date < first_date AND high IS NOT NULL AND low IS NOT NULL) AS hl_before
    FROM ranked
    GROUP BY symbol
)
SELECT p.*, r.date AS warm_from
FROM positions AS p
LEFT JOIN ranked AS r ON r.symbol = p.symbol AND r.rn = p.rows_before - $warmup + 1
ORDER BY p.symbol
