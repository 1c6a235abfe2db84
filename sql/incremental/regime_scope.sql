-- Scope of an incremental features_regime build (see sql/features_regime.sql): symbols with at least
-- $warmup bars before their first changed bar resume from a warm-up window (no recursive state: every
-- column is a window, a lag or a VIX-series value); the others are recomputed from their first bar.
SELECT symbol,
       CASE WHEN rows_before >= $warmup THEN warm_from END AS warm_from,
       CASE WHEN rows_before >= $warmup THEN first_date END AS write_from
FROM positions
ORDER BY symbol
