-- features_options: per-quote option analytics.     key (quote_date, underlying, root, expiry, strike, right)
--
-- Inputs: option_quotes; equity_bars (the underlying's close when a quote has no underlying_price);
--   macro_series (Treasury yields for the rate).  Parameters: $from_date (first quote date to compute),
--   $risk_free (constant continuous rate, NULL = from the Treasury curve), $div_yield (continuous q).
-- Uses only data of the quote date (and macro values known by then): no look-ahead.
--
--   root, settlement  the OCC root (SPX and SPXW are different contracts) and its AM/PM settlement
--   mid          (bid + ask)/2 when 0 <= bid <= ask and ask > 0 (mid_source 'bid_ask'); else the last
--                trade (mid_source 'last') — the sample DAX chain has no bid/ask, so its mid IS its last
--                price; NULL when neither exists, and NULL for a no-market quote (bid = ask = 0: nobody
--                quotes it, so an old last trade is no price)
--   spread_pct   100 x (ask - bid) / mid (NULL without bid/ask)
--   underlying_price  the quote's underlying_price, else the underlying's close on the quote date
--   dte          calendar days to expiry; t_years = dte / 365 (ACT/365)
--   rate         continuously compounded, from the US Treasury constant-maturity curve as known on the
--                quote date (DGS3MO at 0.25y, DGS2 at 2y, DGS10 at 10y; linear in T between the points
--                present, flat outside): r = 2 ln(1 + y/200) turns the semiannual bond-equivalent yield y
--                (percent) into a continuous rate; 0 when no yield is known; $risk_free overrides it.
--                (The sample's DAX options are EUR: a US rate is only a stand-in there.)
--   div_yield    $div_yield (default 0)
--   forward      S exp((r - q) T); moneyness = K / S; log_moneyness_fwd = ln(K / F)
--   iv           Black-Scholes-Merton implied vol of mid (features.pricing.implied_vol as the Arrow UDF
--                ql_implied_vol); NULL where mid is outside the no-arbitrage bounds or T = 0
--   delta, gamma, vega, theta, rho   features.pricing.bs_greeks at iv, raw units (DESIGN §5: vega per 1.00
--                of vol, theta per year); vega_1pct = vega/100, theta_per_day = theta/365
--   intrinsic    max(S - K, 0) for calls, max(K - S, 0) for puts; time_value = mid - intrinsic
WITH quotes AS (
    SELECT o.quote_date, o.underlying, o.root, o.settlement, o.expiry, o.strike, o."right", o.source, o.bid,
           o.ask, o."last", o.volume, o.open_interest, o.vendor_iv, coalesce(o.no_market, false) AS no_market,
           coalesce(o.underlying_price, e.close) AS spot,
           CAST(o.expiry - o.quote_date AS INTEGER) AS dte
    FROM option_quotes AS o
    LEFT JOIN equity_bars AS e ON e.symbol = o.underlying AND e.date = o.quote_date
    WHERE o.quote_date >= $from_date
),
quote_days AS (
    SELECT DISTINCT quote_date AS date FROM quotes
),
obs AS (
    SELECT series_id, date, realtime_start, value
    FROM macro_series
    WHERE series_id IN ('DGS3MO', 'DGS2', 'DGS10') AND value IS NOT NULL
),
usable AS (
    SELECT series_id, date, greatest(date, min(realtime_start)) AS known_from
    FROM obs
    GROUP BY series_id, date
),
latest AS (
    SELECT series_id, known_from,
           max(max(date)) OVER (PARTITION BY series_id ORDER BY known_from
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS obs_date
    FROM usable
    GROUP BY series_id, known_from
),
pairs AS (
    SELECT q.date, k.series_id
    FROM quote_days AS q
    CROSS JOIN (SELECT DISTINCT series_id FROM obs) AS k
),
pick_obs AS (
    SELECT p.date, p.series_id, l.obs_date
    FROM pairs AS p
    ASOF JOIN latest AS l ON l.series_id = p.series_id AND p.date >= l.known_from
),
pick_vintage AS (
    SELECT a.date, a.series_id, o.value
    FROM pick_obs AS a
    ASOF JOIN obs AS o ON o.series_id = a.series_id AND o.date = a.obs_date AND a.date >= o.realtime_start
),
curve AS (
    SELECT q.date,
           max(v.value) FILTER (WHERE v.series_id = 'DGS3MO') AS y3m,
           max(v.value) FILTER (WHERE v.series_id = 'DGS2') AS y2,
           max(v.value) FILTER (WHERE v.series_id = 'DGS10') AS y10
    FROM quote_days AS q
    LEFT JOIN pick_vintage AS v ON v.date = q.date
    GROUP BY q.date
),
priced AS (
    SELECT q.*,
           CASE WHEN q.no_market THEN NULL
                WHEN q.bid >= 0 AND q.ask > 0 AND q.ask >= q.bid THEN (q.bid + q.ask) / 2
                WHEN q."last" > 0 THEN q."last" END AS mid,
           CASE WHEN q.no_market THEN NULL
                WHEN q.bid >= 0 AND q.ask > 0 AND q.ask >= q.bid THEN 'bid_ask'
                WHEN q."last" > 0 THEN 'last' END AS mid_source,
           CAST(q.dte AS DOUBLE) / 365 AS t_years,
           CASE
               WHEN q.dte / 365 <= 0.25 THEN coalesce(c.y3m, c.y2, c.y10)
               WHEN q.dte / 365 <= 2 THEN
                   CASE WHEN c.y3m IS NOT NULL AND c.y2 IS NOT NULL
                        THEN c.y3m + (c.y2 - c.y3m) * (q.dte / 365 - 0.25) / 1.75
                        ELSE coalesce(c.y2, c.y3m, c.y10) END
               WHEN q.dte / 365 <= 10 THEN
                   CASE WHEN c.y2 IS NOT NULL AND c.y10 IS NOT NULL
                        THEN c.y2 + (c.y10 - c.y2) * (q.dte / 365 - 2) / 8
                        ELSE coalesce(c.y10, c.y2, c.y3m) END
               ELSE coalesce(c.y10, c.y2, c.y3m)
           END AS yield_pct
    FROM quotes AS q
    LEFT JOIN curve AS c ON c.date = q.quote_date
),
rated AS (
    SELECT *,
           coalesce($risk_free::DOUBLE, 2 * ln(1 + yield_pct / 200), 0.0::DOUBLE) AS rate,
           $div_yield::DOUBLE AS div_yield
    FROM priced
),
with_iv AS (
    SELECT *,
           spot * exp((rate - div_yield) * t_years) AS forward,
           CASE WHEN t_years > 0 AND spot > 0 AND strike > 0 AND mid > 0
                THEN ql_implied_vol(mid, "right", spot, strike, t_years, rate, div_yield) END AS iv
    FROM rated
),
with_greeks AS (
    SELECT *,
           CASE WHEN iv IS NOT NULL THEN ql_bs_greeks("right", spot, strike, t_years, rate, div_yield, iv) END AS g,
           CASE WHEN spot IS NULL THEN NULL
                WHEN "right" = 'C' THEN greatest(spot - strike, 0)
                ELSE greatest(strike - spot, 0) END AS intrinsic
    FROM with_iv
)
SELECT quote_date, underlying, root, expiry, strike, "right", settlement, source, bid, ask, "last", mid,
       mid_source,
       CASE WHEN mid_source = 'bid_ask' THEN 100 * (ask - bid) / NULLIF(mid, 0) END AS spread_pct,
       spot AS underlying_price, dte, t_years, rate, div_yield, forward,
       strike / NULLIF(spot, 0) AS moneyness,
       CASE WHEN strike > 0 AND forward > 0 THEN ln(strike / forward) END AS log_moneyness_fwd,
       iv, vendor_iv,
       g.delta, g.gamma, g.vega, g.theta, g.rho,
       g.vega / 100 AS vega_1pct,
       g.theta / 365 AS theta_per_day,
       intrinsic,
       mid - intrinsic AS time_value,
       volume, open_interest
FROM with_greeks
ORDER BY quote_date, underlying, root, expiry, strike, "right"
