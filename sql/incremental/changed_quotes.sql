-- Option quote dates that changed since a feature table was built (`prev_option_quotes` = option_quotes
-- as of the recorded version): the first changed quote date and whether any quote was removed.
WITH cols AS (
    SELECT quote_date, underlying, root, expiry, strike, "right", bid, ask, "last", volume, open_interest,
           vendor_iv, underlying_price, no_market, source
    FROM option_quotes
),
prev AS (
    SELECT quote_date, underlying, root, expiry, strike, "right", bid, ask, "last", volume, open_interest,
           vendor_iv, underlying_price, no_market, source
    FROM prev_option_quotes
),
added AS (
    SELECT * FROM cols EXCEPT SELECT * FROM prev
),
removed AS (
    SELECT quote_date, underlying, root, expiry, strike, "right" FROM prev
    EXCEPT SELECT quote_date, underlying, root, expiry, strike, "right" FROM cols
)
SELECT min(quote_date) AS first_date, count(*) FILTER (WHERE is_removed) > 0 AS has_removed, count(*) AS n
FROM (
    SELECT quote_date, false AS is_removed FROM added
    UNION ALL
    SELECT quote_date, true AS is_removed FROM removed
)
