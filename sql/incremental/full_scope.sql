-- Scope of a full build of the per-symbol feature tables: every symbol, whole history, no resumed state.
-- Template values: ema_periods (the init_ema_N columns features_technical.sql reads).
SELECT DISTINCT symbol,
       NULL::DATE AS warm_from,
       NULL::DATE AS write_from,
{%- for n in ema_periods %}
       NULL::DOUBLE AS init_ema_{{ n }},
{%- endfor %}
       NULL::DOUBLE AS init_macd_fast, NULL::DOUBLE AS init_macd_slow, NULL::DOUBLE AS init_macd_signal,
       NULL::DOUBLE AS init_rsi_gain, NULL::DOUBLE AS init_rsi_loss, NULL::DOUBLE AS init_atr,
       NULL::DOUBLE AS init_adx_pdm, NULL::DOUBLE AS init_adx_mdm, NULL::DOUBLE AS init_adx
FROM equity_bars
WHERE close IS NOT NULL
ORDER BY symbol
