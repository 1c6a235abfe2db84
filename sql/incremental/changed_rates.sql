-- The first date from which the Treasury yields the option features use (DGS3MO, DGS2, DGS10) can read
-- differently since a feature table was built (`prev_macro_series` = macro_series as of the recorded
-- version): the earliest usable date (max(observation date, realtime_start)) of any changed row.
WITH cur AS (
    SELECT series_id, date, realtime_start, value FROM macro_series
    WHERE series_id IN ('DGS3MO', 'DGS2', 'DGS10')
),
prev AS (
    SELECT series_id, date, realtime_start, value FROM prev_macro_series
    WHERE series_id IN ('DGS3MO', 'DGS2', 'DGS10')
),
diff AS (
    (SELECT * FROM cur EXCEPT SELECT * FROM prev)
    UNION ALL
    (SELECT * FROM prev EXCEPT SELECT * FROM cur)
)
SELECT min(greatest(date, realtime_start)) AS first_date FROM diff
