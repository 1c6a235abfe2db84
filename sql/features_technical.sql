-- features_technical: technical indicators per symbol and trading day.          key (symbol, date)
--
-- Inputs: `technical_series` (registered by features/build.py): one row per bar to write, produced by the
--   series pass of features/series.py over sql/series/technical_bars.sql (the bars of each symbol of `scope`
--   from its warm_from, sorted; warm-up rows before write_from feed windows, lags and recursions but are not
--   written; recursions resume from `scope`'s init_* state).  Its columns: symbol, date, close, high, low,
--   volume, px, ret_basis, sma_N, ema_N, st_*, macd_signal, atr_14, adx_14, bb_mid, bb_sigma (population
--   deviation of 20 closes), volume_sma_20, px_lag_K (px K bars earlier, NULL before), high_52w, low_52w,
--   stoch_k, stoch_d, each as defined below.
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
-- Every value that needs the symbol's earlier rows (lags, rolling windows, recursions) comes from the series
-- pass (numba over Arrow buffers, features.kernels): fixed summation order, exact extremes, recursions resumed
-- from stored state, so a row is bitwise the same on full, truncated or resumed history.  This statement
-- defines the rest, row by row.
SELECT symbol, date, close, ret_basis,
       px / NULLIF(px_lag_1, 0) - 1 AS ret_1d,
       px / NULLIF(px_lag_5, 0) - 1 AS ret_5d,
       px / NULLIF(px_lag_20, 0) - 1 AS ret_20d,
       px / NULLIF(px_lag_60, 0) - 1 AS ret_60d,
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
FROM technical_series
