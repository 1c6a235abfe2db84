-- features_positioning: CFTC Commitments of Traders net speculative positioning.
--                                                         key (market_code, report_type, report_date)
-- Inputs: cot_positions.  No $parameters, no template values.
--
-- Speculators: managed money in the disaggregated report, leveraged funds in the traders-in-financial-
-- futures report (report_type 'financial').
--   spec_long, spec_short   their long and short contracts
--   net_spec                spec_long - spec_short
--   net_spec_pct_oi         100 x net_spec / open_interest
--   net_spec_pct_oi_chg_1w  change from the previous report of the same market and report type
--   net_spec_z_156          (net_spec_pct_oi - mean) / sample std over the last 156 reports (3 years of
--                           weekly reports) including this one; NULL until 156 reports
--
-- Availability: positions are as of Tuesday (report_date) but the CFTC releases them on Friday at 15:30
-- ET, so available_date = report_date + 3 days is the first date a strategy may use a row (join on
-- available_date <= t, never on report_date).  Releases delayed by US holidays (a Monday release) are not
-- modelled: the rule is exact for regular weeks and a few days optimistic for those.
WITH cot AS (
    SELECT report_date, market_code, report_type, market_name, open_interest,
           CASE report_type WHEN 'disaggregated' THEN managed_money_long
                            WHEN 'financial' THEN lev_money_long END AS spec_long,
           CASE report_type WHEN 'disaggregated' THEN managed_money_short
                            WHEN 'financial' THEN lev_money_short END AS spec_short
    FROM cot_positions
),
base AS (
    SELECT *,
           spec_long - spec_short AS net_spec,
           100 * (spec_long - spec_short) / NULLIF(open_interest, 0) AS net_spec_pct_oi
    FROM cot
),
series AS (
    SELECT market_code, report_type,
           list(report_date ORDER BY report_date) AS d,
           list(net_spec_pct_oi ORDER BY report_date) AS x
    FROM base
    GROUP BY market_code, report_type
),
kernels AS MATERIALIZED (  -- unnesting a list that is still an expression is quadratic: store it first
    SELECT market_code, report_type, d, ql_sma(x, 156) AS x_mean, ql_rolling_std(x, 156, 1) AS x_sd
    FROM series
),
stats AS (
    SELECT market_code, report_type,
           unnest(d) AS report_date,
           unnest(x_mean) AS x_mean,
           unnest(x_sd) AS x_sd
    FROM kernels
)
SELECT b.market_code, b.report_type, b.report_date,
       b.report_date + 3 AS available_date,
       b.market_name, b.open_interest, b.spec_long, b.spec_short, b.net_spec, b.net_spec_pct_oi,
       b.net_spec_pct_oi - lag(b.net_spec_pct_oi) OVER w AS net_spec_pct_oi_chg_1w,
       (b.net_spec_pct_oi - s.x_mean) / NULLIF(s.x_sd, 0) AS net_spec_z_156
FROM base AS b
JOIN stats AS s USING (market_code, report_type, report_date)
WINDOW w AS (PARTITION BY b.market_code, b.report_type ORDER BY b.report_date)
ORDER BY b.market_code, b.report_type, b.report_date
