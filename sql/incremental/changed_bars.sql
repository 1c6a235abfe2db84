-- Which symbols' bars changed since a feature table was built: `prev_equity_bars` is equity_bars as of
-- the version recorded in that table's last build note.  One row per changed symbol: the first changed
-- (inserted, updated or removed) date and whether any bar was removed.  Columns the features do not read
-- (source, ingested_at) are ignored.
WITH cur AS (
    SELECT symbol, date, open, high, low, close, adj_close, volume FROM equity_bars
),
prev AS (
    SELECT symbol, date, open, high, low, close, adj_close, volume FROM prev_equity_bars
),
added AS (
    SELECT * FROM cur EXCEPT SELECT * FROM prev
),
removed AS (
    SELECT symbol, date FROM prev EXCEPT SELECT symbol, date FROM cur
)
SELECT symbol, min(date) AS first_date, bool_or(is_removed) AS has_removed
FROM (
    SELECT symbol, date, false AS is_removed FROM added
    UNION ALL
    SELECT symbol, date, true AS is_removed FROM removed
)
GROUP BY symbol
ORDER BY symbol
