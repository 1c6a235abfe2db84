-- Input rows of the features_technical series pass (features/series.py): the bars of every symbol in `scope`
-- from its warm_from (NULL = its first bar), sorted by symbol and date, with write_from (rows before it are
-- warm-up: they feed windows and lags but are not written; recursions resume after them from `scope`'s state).
--   px         adj_close when the bar has one (split and dividend adjusted), else close
--   ret_basis  which of the two px is
SELECT b.symbol, b.date, b.high, b.low, b.close, b.volume,
       coalesce(b.adj_close, b.close) AS px,
       CASE WHEN b.adj_close IS NULL THEN 'close' ELSE 'adj_close' END AS ret_basis,
       s.write_from
FROM equity_bars AS b
JOIN scope AS s ON s.symbol = b.symbol
WHERE b.close IS NOT NULL AND (s.warm_from IS NULL OR b.date >= s.warm_from)
ORDER BY b.symbol, b.date
