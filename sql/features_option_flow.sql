-- features_option_flow: put/call volume and open-interest ratios per underlying and quote date.
--                                                                      key (underlying, quote_date)
-- Inputs: option_quotes.  Parameters: $from_date (first quote date to compute; incremental builds).
--
--   n_calls, n_puts           quotes on the date (all expiries and strikes)
--   call_volume, put_volume   summed contract volume (NULL when no quote carries a volume)
--   put_call_volume_ratio     put_volume / call_volume
--   call_open_interest, put_open_interest, put_call_oi_ratio   the same for open interest
-- Ratios are NULL when the call side is 0 or missing.  Uses only the quotes of that date.
WITH agg AS (
    SELECT underlying, quote_date,
           count(*) FILTER (WHERE "right" = 'C') AS n_calls,
           count(*) FILTER (WHERE "right" = 'P') AS n_puts,
           sum(volume) FILTER (WHERE "right" = 'C') AS call_volume,
           sum(volume) FILTER (WHERE "right" = 'P') AS put_volume,
           sum(open_interest) FILTER (WHERE "right" = 'C') AS call_open_interest,
           sum(open_interest) FILTER (WHERE "right" = 'P') AS put_open_interest
    FROM option_quotes
    WHERE quote_date >= $from_date
    GROUP BY underlying, quote_date
)
SELECT underlying, quote_date, n_calls, n_puts,
       call_volume, put_volume, put_volume / NULLIF(call_volume, 0) AS put_call_volume_ratio,
       call_open_interest, put_open_interest,
       put_open_interest / NULLIF(call_open_interest, 0) AS put_call_oi_ratio
FROM agg
ORDER BY underlying, quote_date
