-- features_technical: technical indicators per symbol and trading day.          key (symbol, date)
--
-- Inputs: equity_bars; `scope` (registered by features/build.py): one row per symbol to compute, with
--   warm_from  first bar read (NULL = whole history), write_from  first row returned (NULL = all),
--   init_*     recursion state at the last bar before write_from (NULL = start fresh; see below).
-- Template values (validated integers only): sma_periods, ema_periods.  No $parameters.
--
-- A row at date t uses bars up to and including t only (no look-ahead).  NULL where undefined: before an
-- indicator's warm-up is complete, or where it needs high/low/volume that a close-only series lacks.
--
-- Price basis
--   ret_1d/5d/20d/60d   simple returns px_t / px_{t-k} - 1 on px = adj_close when the bar has one (split and
--                       dividend adjusted total return), else close; `ret_basis` says which per row.
--   all other columns   on close/high/low as stored (split-adjusted, not dividend-adjusted), so they share
--                       one scale with high/low (ATR, stochastic, ADX, 52-week range).
--
-- Definitions (N-row windows count trading days, i.e. rows of the symbol)
--   sma_N        mean of the last N closes (NULL until N bars)
--   ema_N        EMA, alpha = 2/(N+1), seeded with the SMA of the first N closes (first value at bar N)
--   rsi_14       Wilder: gains/losses of close-to-close changes, each smoothed with alpha = 1/14 seeded by
--                the mean of the first 14 changes (first value at bar 15);
--                RSI = 100 - 100/(1 + avg_gain/avg_loss); 100 when avg_loss = 0 < avg_gain, 50 when both 0
--   macd         EMA12 - EMA26 of close (SMA-seeded as above); macd_signal = EMA9 of macd seeded with the
--                mean of its first 9 values (first at bar 34); macd_hist = macd - macd_signal
--   ema_ratio    EMA12 / EMA26 - 1 (the scale-free trend of MACD; > 0 while EMA12 is above EMA26)
--   atr_14       Wilder average (alpha 1/14, SMA seed) of the true range
--                TR = max(high-low, |high-prev close|, |low-prev close|), defined from the 2nd bar
--   adx_14       Wilder: +DM = up move if up > down and up > 0 else 0 (up = high - prev high,
--                down = prev low - low; -DM symmetric); +DI = 100 Wilder(+DM)/ATR, -DI likewise;
--                DX = 100 |+DI - -DI| / (+DI + -DI) (0 when both are 0); ADX = Wilder average of DX seeded
--                with the mean of the first 14 DX (first value at bar 28).  Wilder's 1978 definition (the
--                first smoothed value is an average of N values; TA-Lib seeds +DM/TR with N-1 instead).
--   bb_*         Bollinger (20, 2): mid = sma_20, sigma = POPULATION standard deviation of the last 20
--                closes (Bollinger's and TA-Lib's definition), upper/lower = mid +/- 2 sigma,
--                bb_pctb = (close - lower)/(upper - lower), bb_width = (upper - lower)/mid
--   stoch_k/d    fast stochastic (14, 3): %K = 100 (close - lowest low 14)/(highest high 14 - lowest low 14),
--                NULL when the range is 0 or a high/low is missing; %D = mean of the last 3 %K
--   high_52w     highest high of the last 252 bars (closes for a close-only series); low_52w likewise;
--                dist_52w_high = close/high_52w - 1 (<= 0), dist_52w_low = close/low_52w - 1 (>= 0)
--   volume_ratio_20  volume / mean volume of the last 20 bars (including today); NULL without volume
--   st_*         recursion state (MACD's two EMAs, RSI's average gain/loss, ADX's smoothed +DM/-DM) kept so
--                an incremental build resumes each recursion exactly where the stored row left it.
--
-- Rolling means/deviations and all recursions run in features.kernels (numba) over each symbol's whole
-- series as a list: exact, fixed summation order, bitwise reproducible on truncated or resumed history.
WITH bars AS (
    SELECT b.symbol, b.date, b.high, b.low, b.close, b.volume,
           coalesce(b.adj_close, b.close) AS px,
           CASE WHEN b.adj_close IS NULL THEN 'close' ELSE 'adj_close' END AS ret_basis,
           s.write_from
    FROM equity_bars AS b
    JOIN scope AS s ON s.symbol = b.symbol
    WHERE b.close IS NOT NULL AND (s.warm_from IS NULL OR b.date >= s.warm_from)
),
moves AS (
    SELECT *,
           lag(close) OVER w AS prev_close,
           close - lag(close) OVER w AS chg,
           high - lag(high) OVER w AS up_move,
           lag(low) OVER w - low AS down_move
    FROM bars
    WINDOW w AS (PARTITION BY symbol ORDER BY date)
),
inputs AS (
    SELECT *,
           CASE WHEN chg IS NULL THEN NULL WHEN chg > 0 THEN chg ELSE 0.0::DOUBLE END AS gain,
           CASE WHEN chg IS NULL THEN NULL WHEN chg < 0 THEN -chg ELSE 0.0::DOUBLE END AS loss,
           CASE WHEN high IS NULL OR low IS NULL OR prev_close IS NULL THEN NULL
                ELSE greatest(high - low, abs(high - prev_close), abs(low - prev_close)) END AS tr,
           CASE WHEN up_move IS NULL OR down_move IS NULL THEN NULL
                WHEN up_move > down_move AND up_move > 0 THEN up_move ELSE 0.0::DOUBLE END AS pdm,
           CASE WHEN up_move IS NULL OR down_move IS NULL THEN NULL
                WHEN down_move > up_move AND down_move > 0 THEN down_move ELSE 0.0::DOUBLE END AS mdm
    FROM moves
),
series AS (
    SELECT symbol,
           any_value(write_from) AS write_from,
           count(*) FILTER (WHERE date < write_from) AS skip,
           list(date ORDER BY date) AS d,
           list(close ORDER BY date) AS c,
           list(px ORDER BY date) AS p,
           list(high ORDER BY date) AS h,
           list(low ORDER BY date) AS l,
           list(volume ORDER BY date) AS v,
           list(ret_basis ORDER BY date) AS rb,
           list(gain ORDER BY date) AS gain,
           list(loss ORDER BY date) AS loss,
           list(tr ORDER BY date) AS tr,
           list(pdm ORDER BY date) AS pdm,
           list(mdm ORDER BY date) AS mdm
    FROM inputs
    GROUP BY symbol
),
-- the kernels run once per symbol on whole lists; MATERIALIZED keeps their results as stored list columns,
-- because unnesting a list that is still an expression copies it once per output chunk (quadratic)
kernels AS MATERIALIZED (
    SELECT s.symbol, s.write_from, s.d, s.c, s.p, s.h, s.l, s.v, s.rb,
{%- for n in sma_periods %}
           ql_sma(s.c, {{ n }}) AS sma_{{ n }},
{%- endfor %}
{%- for n in ema_periods %}
           ql_ema(s.c, {{ n }}, sc.init_ema_{{ n }}, s.skip) AS ema_{{ n }},
{%- endfor %}
           ql_ema(s.c, 12, sc.init_macd_fast, s.skip) AS st_macd_fast,
           ql_ema(s.c, 26, sc.init_macd_slow, s.skip) AS st_macd_slow,
           ql_macd_signal(s.c, 12, 26, 9, sc.init_macd_fast, sc.init_macd_slow, sc.init_macd_signal, s.skip)
               AS macd_signal,
           ql_wilder(s.gain, 14, sc.init_rsi_gain, s.skip) AS st_rsi_gain,
           ql_wilder(s.loss, 14, sc.init_rsi_loss, s.skip) AS st_rsi_loss,
           ql_wilder(s.tr, 14, sc.init_atr, s.skip) AS atr_14,
           ql_wilder(s.pdm, 14, sc.init_adx_pdm, s.skip) AS st_adx_pdm,
           ql_wilder(s.mdm, 14, sc.init_adx_mdm, s.skip) AS st_adx_mdm,
           ql_adx(s.tr, s.pdm, s.mdm, 14, sc.init_atr, sc.init_adx_pdm, sc.init_adx_mdm, sc.init_adx, s.skip)
               AS adx_14,
           ql_sma(s.c, 20) AS bb_mid,
           ql_rolling_std(s.c, 20, 0) AS bb_sigma,
           ql_sma(s.v, 20) AS volume_sma_20
    FROM series AS s
    JOIN scope AS sc ON sc.symbol = s.symbol
),
calc AS (
    SELECT symbol, write_from,
           unnest(d) AS date,
           unnest(c) AS close,
           unnest(p) AS px,
           unnest(h) AS high,
           unnest(l) AS low,
           unnest(v) AS volume,
           unnest(rb) AS ret_basis,
{%- for n in sma_periods %}
           unnest(sma_{{ n }}) AS sma_{{ n }},
{%- endfor %}
{%- for n in ema_periods %}
           unnest(ema_{{ n }}) AS ema_{{ n }},
{%- endfor %}
           unnest(st_macd_fast) AS st_macd_fast,
           unnest(st_macd_slow) AS st_macd_slow,
           unnest(macd_signal) AS macd_signal,
           unnest(st_rsi_gain) AS st_rsi_gain,
           unnest(st_rsi_loss) AS st_rsi_loss,
           unnest(atr_14) AS atr_14,
           unnest(st_adx_pdm) AS st_adx_pdm,
           unnest(st_adx_mdm) AS st_adx_mdm,
           unnest(adx_14) AS adx_14,
           unnest(bb_mid) AS bb_mid,
           unnest(bb_sigma) AS bb_sigma,
           unnest(volume_sma_20) AS volume_sma_20
    FROM kernels
),
windows AS (
    SELECT *,
           px / NULLIF(lag(px, 1) OVER w, 0) - 1 AS ret_1d,
           px / NULLIF(lag(px, 5) OVER w, 0) - 1 AS ret_5d,
           px / NULLIF(lag(px, 20) OVER w, 0) - 1 AS ret_20d,
           px / NULLIF(lag(px, 60) OVER w, 0) - 1 AS ret_60d,
           CASE WHEN count(low) OVER w14 = 14 AND count(high) OVER w14 = 14
                THEN min(low) OVER w14 END AS low_14,
           CASE WHEN count(low) OVER w14 = 14 AND count(high) OVER w14 = 14
                THEN max(high) OVER w14 END AS high_14,
           CASE WHEN count(*) OVER w252 = 252 THEN max(coalesce(high, close)) OVER w252 END AS high_52w,
           CASE WHEN count(*) OVER w252 = 252 THEN min(coalesce(low, close)) OVER w252 END AS low_52w
    FROM calc
    WINDOW w AS (PARTITION BY symbol ORDER BY date),
           w14 AS (PARTITION BY symbol ORDER BY date ROWS BETWEEN 13 PRECEDING AND CURRENT ROW),
           w252 AS (PARTITION BY symbol ORDER BY date ROWS BETWEEN 251 PRECEDING AND CURRENT ROW)
),
stoch AS (
    SELECT *, 100 * (close - low_14) / NULLIF(high_14 - low_14, 0) AS stoch_k
    FROM windows
),
final AS (
    SELECT *, (stoch_k + lag(stoch_k, 1) OVER w + lag(stoch_k, 2) OVER w) / 3 AS stoch_d
    FROM stoch
    WINDOW w AS (PARTITION BY symbol ORDER BY date)
)
SELECT symbol, date, close, ret_basis,
       ret_1d, ret_5d, ret_20d, ret_60d,
{%- for n in sma_periods %}
       sma_{{ n }},
{%- endfor %}
{%- for n in ema_periods %}
       ema_{{ n }},
{%- endfor %}
       CASE WHEN st_rsi_loss = 0 THEN CASE WHEN st_rsi_gain = 0 THEN 50.0::DOUBLE ELSE 100.0::DOUBLE END
            ELSE 100 - 100 / (1 + st_rsi_gain / st_rsi_loss) END AS rsi_14,
       st_macd_fast - st_macd_slow AS macd,
       macd_signal,
       (st_macd_fast - st_macd_slow) - macd_signal AS macd_hist,
       st_macd_fast / NULLIF(st_macd_slow, 0) - 1 AS ema_ratio,
       atr_14,
       bb_mid,
       bb_mid + 2 * bb_sigma AS bb_upper,
       bb_mid - 2 * bb_sigma AS bb_lower,
       (close - (bb_mid - 2 * bb_sigma)) / NULLIF(4 * bb_sigma, 0) AS bb_pctb,
       4 * bb_sigma / NULLIF(bb_mid, 0) AS bb_width,
       stoch_k,
       stoch_d,
       adx_14,
       100 * st_adx_pdm / NULLIF(atr_14, 0) AS plus_di,
       100 * st_adx_mdm / NULLIF(atr_14, 0) AS minus_di,
       high_52w,
       low_52w,
       close / NULLIF(high_52w, 0) - 1 AS dist_52w_high,
       close / NULLIF(low_52w, 0) - 1 AS dist_52w_low,
       volume / NULLIF(volume_sma_20, 0) AS volume_ratio_20,
       st_macd_fast, st_macd_slow, st_rsi_gain, st_rsi_loss, st_adx_pdm, st_adx_mdm
FROM final
WHERE write_from IS NULL OR date >= write_from
ORDER BY symbol, date
