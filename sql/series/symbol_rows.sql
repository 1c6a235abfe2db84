-- Bars each symbol of `scope` reads in the series pass (the filter of series/technical_bars.sql and
-- series/regime_bars.sql): sizes the parts a build is cut into (features.series.scope_parts).  Only a
-- size: a part holding more or fewer rows than this says is still computed correctly.
SELECT b.symbol, count(*) AS n
FROM equity_bars AS b
JOIN scope AS s ON s.symbol = b.symbol
WHERE b.close IS NOT NULL AND (s.warm_from IS NULL OR b.date >= s.warm_from)
GROUP BY b.symbol
ORDER BY b.symbol
