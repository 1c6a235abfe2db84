-- Input rows of the features_regime series pass (features/series.py): the bars of every symbol in `scope`
-- from its warm_from (NULL = its first bar), sorted by symbol and date, with write_from (rows before it are
-- warm-up for the windows and are not written).  px = adj_close when the bar has one, else close.
SELECT b.symbol, b.date, b.close, coalesce(b.adj_close, b.close) AS px, s.write_from
FROM equity_bars AS b
JOIN scope AS s ON s.symbol = b.symbol
WHERE b.close IS NOT NULL AND (s.warm_from IS NULL OR b.date >= s.warm_from)
ORDER BY b.symbol, b.date
