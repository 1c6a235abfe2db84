-- Scope of an incremental features_technical build (see sql/features_technical.sql).  Inputs: `positions`
-- (sql/incremental/symbol_positions.sql) and the stored features_technical.  Parameter $warmup.
--
-- A symbol resumes (reads only $warmup bars before its first changed bar and continues every recursion
-- from the state stored on the bar before) when that stored row exists, it has at least $warmup bars of
-- history, and every recursion there has a state — or, for the high/low based ones (ATR, ADX), never had
-- an input (close-only series).  Otherwise it is recomputed from its first bar.  Either way the result is
-- bitwise equal to a full rebuild.
WITH checked AS (
    SELECT p.symbol, p.first_date, p.warm_from,
           f.* EXCLUDE (symbol, date),
           (
               p.rows_before >= $warmup AND f.symbol IS NOT NULL AND p.warm_from IS NOT NULL
{%- for n in ema_periods %}
               AND f.ema_{{ n }} IS NOT NULL
{%- endfor %}
               AND f.st_macd_fast IS NOT NULL AND f.st_macd_slow IS NOT NULL AND f.macd_signal IS NOT NULL
               AND f.st_rsi_gain IS NOT NULL AND f.st_rsi_loss IS NOT NULL
               AND ((f.atr_14 IS NOT NULL AND f.st_adx_pdm IS NOT NULL AND f.st_adx_mdm IS NOT NULL
                     AND f.adx_14 IS NOT NULL) OR p.hl_before = 0)
           ) AS resume
    FROM positions AS p
    LEFT JOIN features_technical AS f ON f.symbol = p.symbol AND f.date = p.prev_date
)
SELECT symbol,
       CASE WHEN resume THEN warm_from END AS warm_from,
       CASE WHEN resume THEN first_date END AS write_from,
{%- for n in ema_periods %}
       CASE WHEN resume THEN ema_{{ n }} END AS init_ema_{{ n }},
{%- endfor %}
       CASE WHEN resume THEN st_macd_fast END AS init_macd_fast,
       CASE WHEN resume THEN st_macd_slow END AS init_macd_slow,
       CASE WHEN resume THEN macd_signal END AS init_macd_signal,
       CASE WHEN resume THEN st_rsi_gain END AS init_rsi_gain,
       CASE WHEN resume THEN st_rsi_loss END AS init_rsi_loss,
       CASE WHEN resume THEN atr_14 END AS init_atr,
       CASE WHEN resume THEN st_adx_pdm END AS init_adx_pdm,
       CASE WHEN resume THEN st_adx_mdm END AS init_adx_mdm,
       CASE WHEN resume THEN adx_14 END AS init_adx
FROM checked
ORDER BY symbol
