-- features_surface: the implied-volatility surface of each underlying, one row a day.
--                                                                          key (underlying, date)
-- Inputs (registered by features/surface.py):
--   surface_quotes   features_options rows with quote_date >= $from_date (the IV of each quote solved from
--                    its mid with features.pricing.implied_vol, its Greeks at that IV, the vendor's IV)
--   surface_flow     features_option_flow rows with quote_date >= $from_date (put/call ratios: reused, not
--                    recomputed here)
--   surface_history  stored features_surface rows before $from_date (underlying, date, spot, atm_iv_30):
--                    the history the rolling columns need (empty on a full build)
--   surface_gaps     (underlying, date, gap): XNYS trading days since the underlying's previous quote date
--                    (quantlake.calendars), for every date of surface_quotes and surface_history
-- Parameters: $from_date, $min_dte (shortest expiry used, days), $expansion_hv_iv, $expansion_rank,
--   $contraction_hv_iv, $high_rank, $low_rank (the HV/IV regime rule set).
-- Template values (validated integers only): rank_window (observations in the IV rank and percentile,
--   default 252), hv_window (returns in the realized vol, default 20).
-- A row at date t reads the quotes of t and the stored rows before t only (no look-ahead).
--
-- Quotes used: mid from bid/ask (features_options.mid_source 'bid_ask'; a last trade only where the
-- underlying has no bid/ask quote that day), an IV, dte >= $min_dte.  Where two OCC roots list the same
-- expiry (SPX and SPXW), the root quoting the most strikes that day is used for the IV columns (ties: the
-- alphabetically first); every root counts towards the gamma exposure.
--
-- Per expiry (T = dte / 365, ACT/365):
--   forward F       put-call parity at the strike K* where |call mid - put mid| is smallest:
--                   F = K* + exp(r T) (C(K*) - P(K*))  (the VIX white paper's rule; no dividend input)
--   ATM IV          the IV at F, linear in strike between the two listed strikes around F; the IV of a
--                   strike is the mean of its call and put IVs (one of them where only one is quoted)
--   25-delta IVs    the put IV at delta -0.25 and the call IV at +0.25, linear in delta between the two
--                   options of that right whose deltas are nearest on either side of it (on a coarse strike
--                   grid the one beyond may be the at-the-money option)
-- Per underlying and date:
--   spot            the chain's underlying level (median of the quotes' underlying_price)
--   atm_iv_30, atm_iv_60   ATM IV at 30 / 60 calendar days, variance-interpolated between the expiries
--                   around it: with w = IV^2 T, w(tau) = w1 + (w2 - w1)(tau - T1)/(T2 - T1), IV = sqrt(w(tau)/tau);
--                   an expiry exactly at tau is used as it is; NULL unless expiries (>= $min_dte) bracket tau
--   atm_iv_30_vendor       the same from the vendor's IVs (NULL where the vendor gives none)
--   expiry_before_30, expiry_after_30   the two expiries atm_iv_30 interpolates between
--   iv_put_25d_30, iv_call_25d_30       the 25-delta IVs at 30 days (variance-interpolated the same way)
--   skew_25d        iv_put_25d_30 - iv_call_25d_30 (vol points as a decimal: 0.05 = 5 points)
--   term_slope      atm_iv_60 - atm_iv_30 (> 0: contango)
--   iv_rank_252     100 (atm_iv_30 - min) / (max - min) over the underlying's last rank_window atm_iv_30
--                   observations including today (0..100); NULL until there are that many: never the VIX
--   iv_pctl_252     100 x (how many of the previous rank_window - 1 values are strictly below today's) /
--                   (rank_window - 1)
--   hv_20           realized vol of spot: sample standard deviation of the last hv_window log returns
--                   between quote dates, each divided by the square root of the exchange trading days it
--                   spans (surface_gaps: a gap in the chain history is not a one-day return), times
--                   sqrt(252); NULL until hv_window returns.  With consecutive trading days this is
--                   features_regime's rv_20 (the same ql_rolling_std kernel).
--   hv_iv_ratio     hv_20 / atm_iv_30
--   put_call_volume_ratio, put_call_oi_ratio   from features_option_flow (same underlying and date)
--   gex_1pct        dealer gamma exposure: the change of dealers' delta, in money, for a 1 % rise of the
--                   underlying: sum over every quote with gamma and open interest of
--                   sign x gamma x open_interest x 100 x spot^2 x 0.01.  Sign convention (the usual public
--                   one): dealers are long the calls and short the puts in open interest (customers write
--                   calls and buy puts), so calls count +1, puts -1.  > 0: dealers long gamma (they sell
--                   rallies and buy dips, damping moves); < 0: they chase moves.
--   regime          the HV/IV rule set, the first rule that holds (NULL without atm_iv_30 and hv_iv_ratio):
--                     iv_expansion    hv_iv_ratio > $expansion_hv_iv and iv_rank_252 > $expansion_rank
--                     iv_contraction  hv_iv_ratio < $contraction_hv_iv
--                     high_vol        iv_rank_252 >= $high_rank
--                     low_vol         iv_rank_252 <= $low_rank
--                     neutral         otherwise
--                   While iv_rank_252 is still NULL only iv_contraction can be decided: the label is NULL
--                   otherwise (unknown, not neutral: as features_regime's VIX rules without a VIX rank).
--   n_quotes, n_expiries   quotes and expiries used for the IV columns
WITH base AS (
    SELECT *,
           bool_or(mid_source = 'bid_ask') OVER (PARTITION BY underlying, quote_date) AS day_has_bid_ask
    FROM surface_quotes
    WHERE quote_date >= $from_date
),
usable AS (
    SELECT quote_date, underlying, root, expiry, strike, "right", mid, iv,
           CASE WHEN vendor_iv > 0 THEN vendor_iv END AS vendor_iv,
           delta, rate, t_years, dte
    FROM base
    WHERE iv > 0 AND mid > 0 AND dte >= $min_dte
      AND (mid_source = 'bid_ask' OR NOT day_has_bid_ask)
),
root_rank AS (
    SELECT quote_date, underlying, expiry, root,
           row_number() OVER (PARTITION BY quote_date, underlying, expiry
                              ORDER BY count(DISTINCT strike) DESC, root) AS pick
    FROM usable
    GROUP BY quote_date, underlying, expiry, root
),
q AS (
    SELECT u.*
    FROM usable AS u
    JOIN root_rank AS r USING (quote_date, underlying, expiry, root)
    WHERE r.pick = 1
),
strikes AS (
    SELECT quote_date, underlying, expiry, strike,
           any_value(t_years) AS t, any_value(rate) AS r,
           max(mid) FILTER (WHERE "right" = 'C') AS c_mid,
           max(mid) FILTER (WHERE "right" = 'P') AS p_mid,
           avg(iv) AS k_iv,
           avg(vendor_iv) AS k_vendor_iv
    FROM q
    GROUP BY quote_date, underlying, expiry, strike
),
forwards AS (
    SELECT quote_date, underlying, expiry, any_value(t) AS t,
           arg_min(strike + exp(r * t) * (c_mid - p_mid), abs(c_mid - p_mid))
               FILTER (WHERE c_mid IS NOT NULL AND p_mid IS NOT NULL) AS fwd
    FROM strikes
    GROUP BY quote_date, underlying, expiry
),
bracket AS (
    SELECT f.quote_date, f.underlying, f.expiry, f.t, f.fwd,
           arg_max(s.strike, s.strike) FILTER (WHERE s.strike <= f.fwd) AS k_lo,
           arg_max(s.k_iv, s.strike) FILTER (WHERE s.strike <= f.fwd) AS iv_lo,
           arg_max(s.k_vendor_iv, s.strike) FILTER (WHERE s.strike <= f.fwd) AS viv_lo,
           arg_min(s.strike, s.strike) FILTER (WHERE s.strike > f.fwd) AS k_hi,
           arg_min(s.k_iv, s.strike) FILTER (WHERE s.strike > f.fwd) AS iv_hi,
           arg_min(s.k_vendor_iv, s.strike) FILTER (WHERE s.strike > f.fwd) AS viv_hi
    FROM forwards AS f
    JOIN strikes AS s USING (quote_date, underlying, expiry)
    WHERE f.fwd > 0
    GROUP BY f.quote_date, f.underlying, f.expiry, f.t, f.fwd
),
wings AS (
    SELECT quote_date, underlying, expiry,
           arg_max(iv, delta) FILTER (WHERE "right" = 'P' AND delta <= -0.25) AS p_iv_a,
           max(delta) FILTER (WHERE "right" = 'P' AND delta <= -0.25) AS p_d_a,
           arg_min(iv, delta) FILTER (WHERE "right" = 'P' AND delta > -0.25 AND delta < 0) AS p_iv_b,
           min(delta) FILTER (WHERE "right" = 'P' AND delta > -0.25 AND delta < 0) AS p_d_b,
           arg_max(iv, delta) FILTER (WHERE "right" = 'C' AND delta > 0 AND delta <= 0.25) AS c_iv_a,
           max(delta) FILTER (WHERE "right" = 'C' AND delta > 0 AND delta <= 0.25) AS c_d_a,
           arg_min(iv, delta) FILTER (WHERE "right" = 'C' AND delta > 0.25) AS c_iv_b,
           min(delta) FILTER (WHERE "right" = 'C' AND delta > 0.25) AS c_d_b
    FROM q
    GROUP BY quote_date, underlying, expiry
),
per_expiry AS (
    SELECT b.quote_date, b.underlying, b.expiry, b.t,
           CASE WHEN b.k_lo = b.fwd THEN b.iv_lo
                WHEN b.k_lo IS NOT NULL AND b.k_hi IS NOT NULL
                    THEN b.iv_lo + (b.iv_hi - b.iv_lo) * (b.fwd - b.k_lo) / (b.k_hi - b.k_lo) END AS atm_iv,
           CASE WHEN b.k_lo = b.fwd THEN b.viv_lo
                WHEN b.k_lo IS NOT NULL AND b.k_hi IS NOT NULL
                    THEN b.viv_lo + (b.viv_hi - b.viv_lo) * (b.fwd - b.k_lo) / (b.k_hi - b.k_lo) END AS atm_viv,
           CASE WHEN w.p_d_a = -0.25 THEN w.p_iv_a
                WHEN w.p_d_a IS NOT NULL AND w.p_d_b IS NOT NULL
                    THEN w.p_iv_a + (w.p_iv_b - w.p_iv_a) * (-0.25 - w.p_d_a) / (w.p_d_b - w.p_d_a) END AS put25,
           CASE WHEN w.c_d_a = 0.25 THEN w.c_iv_a
                WHEN w.c_d_a IS NOT NULL AND w.c_d_b IS NOT NULL
                    THEN w.c_iv_a + (w.c_iv_b - w.c_iv_a) * (0.25 - w.c_d_a) / (w.c_d_b - w.c_d_a) END AS call25
    FROM bracket AS b
    JOIN wings AS w USING (quote_date, underlying, expiry)
),
tenors AS (
    SELECT * FROM (VALUES (30), (60)) AS v(days)
),
around AS (
    -- for each tenor: the expiry at or before it (largest T <= tau) and the one at or after it
    SELECT d.quote_date, d.underlying, n.days, n.days / 365.0 AS tau,
           arg_max(e.expiry, e.t) FILTER (WHERE e.t <= n.days / 365.0) AS e1,
           arg_min(e.expiry, e.t) FILTER (WHERE e.t >= n.days / 365.0) AS e2
    FROM (SELECT DISTINCT quote_date, underlying FROM per_expiry) AS d
    CROSS JOIN tenors AS n
    JOIN per_expiry AS e ON e.quote_date = d.quote_date AND e.underlying = d.underlying
    GROUP BY d.quote_date, d.underlying, n.days
),
interp AS (
    SELECT a.quote_date, a.underlying, a.days, a.e1, a.e2,
           -- total variance linear in T; an expiry exactly at tau (e1 = e2) is used as it is
           CASE WHEN a.e1 = a.e2 THEN x1.atm_iv
                ELSE sqrt(((x1.atm_iv ^ 2 * x1.t) * (x2.t - a.tau) + (x2.atm_iv ^ 2 * x2.t) * (a.tau - x1.t))
                          / (x2.t - x1.t) / a.tau) END AS atm_iv,
           CASE WHEN a.e1 = a.e2 THEN x1.atm_viv
                ELSE sqrt(((x1.atm_viv ^ 2 * x1.t) * (x2.t - a.tau) + (x2.atm_viv ^ 2 * x2.t) * (a.tau - x1.t))
                          / (x2.t - x1.t) / a.tau) END AS atm_viv,
           CASE WHEN a.e1 = a.e2 THEN x1.put25
                ELSE sqrt(((x1.put25 ^ 2 * x1.t) * (x2.t - a.tau) + (x2.put25 ^ 2 * x2.t) * (a.tau - x1.t))
                          / (x2.t - x1.t) / a.tau) END AS put25,
           CASE WHEN a.e1 = a.e2 THEN x1.call25
                ELSE sqrt(((x1.call25 ^ 2 * x1.t) * (x2.t - a.tau) + (x2.call25 ^ 2 * x2.t) * (a.tau - x1.t))
                          / (x2.t - x1.t) / a.tau) END AS call25
    FROM around AS a
    LEFT JOIN per_expiry AS x1 ON x1.quote_date = a.quote_date AND x1.underlying = a.underlying AND x1.expiry = a.e1
    LEFT JOIN per_expiry AS x2 ON x2.quote_date = a.quote_date AND x2.underlying = a.underlying AND x2.expiry = a.e2
),
days AS (
    SELECT underlying, quote_date AS date,
           median(underlying_price) AS spot,
           -- summed in a fixed order (a plain sum's order, hence its last bits, varies between runs)
           list_sum(list(CASE WHEN "right" = 'C' THEN 1 ELSE -1 END * gamma * open_interest * 100
                         * underlying_price * underlying_price * 0.01 ORDER BY root, expiry, strike, "right")
                    FILTER (WHERE gamma IS NOT NULL AND open_interest IS NOT NULL)) AS gex_1pct
    FROM base
    GROUP BY underlying, quote_date
),
today AS (
    SELECT d.underlying, d.date, d.spot, d.gex_1pct,
           i30.atm_iv AS atm_iv_30, i60.atm_iv AS atm_iv_60, i30.atm_viv AS atm_iv_30_vendor,
           i30.e1 AS expiry_before_30, i30.e2 AS expiry_after_30,
           i30.put25 AS iv_put_25d_30, i30.call25 AS iv_call_25d_30,
           coalesce(c.n_quotes, 0) AS n_quotes, coalesce(c.n_expiries, 0) AS n_expiries
    FROM days AS d
    LEFT JOIN (SELECT underlying, quote_date, count(*) AS n_quotes, count(DISTINCT expiry) AS n_expiries
               FROM q GROUP BY underlying, quote_date) AS c
        ON c.underlying = d.underlying AND c.quote_date = d.date
    LEFT JOIN interp AS i30 ON i30.underlying = d.underlying AND i30.quote_date = d.date AND i30.days = 30
    LEFT JOIN interp AS i60 ON i60.underlying = d.underlying AND i60.quote_date = d.date AND i60.days = 60
),
series AS (
    SELECT underlying, date, spot, atm_iv_30 FROM surface_history WHERE date < $from_date
    UNION ALL
    SELECT underlying, date, spot, atm_iv_30 FROM today
),
returns AS (
    SELECT s.underlying, s.date, ln(s.spot / lag(s.spot) OVER w) / sqrt(g.gap) AS r_day
    FROM series AS s
    JOIN surface_gaps AS g USING (underlying, date)
    WINDOW w AS (PARTITION BY s.underlying ORDER BY s.date)
),
hv_series AS (
    SELECT underlying, list(date ORDER BY date) AS d, list(r_day ORDER BY date) AS r
    FROM returns
    GROUP BY underlying
),
-- the rolling deviation of features_regime's rv_N (ql_rolling_std: exact on truncated or resumed history);
-- MATERIALIZED: unnesting a list that is still an expression copies it once per output chunk
hv_kernel AS MATERIALIZED (
    SELECT underlying, d, ql_rolling_std(r, {{ hv_window }}, 1) AS sd
    FROM hv_series
),
hv AS (
    SELECT underlying, unnest(d) AS date, unnest(sd) * sqrt(252) AS hv_20
    FROM hv_kernel
),
ranked AS (
    SELECT underlying, date,
           CASE WHEN count(*) OVER w = {{ rank_window }}
                THEN 100 * (atm_iv_30 - min(atm_iv_30) OVER w)
                     / NULLIF(max(atm_iv_30) OVER w - min(atm_iv_30) OVER w, 0) END AS iv_rank_252,
           CASE WHEN count(*) OVER w = {{ rank_window }}
                THEN CAST(100 * (rank(ORDER BY atm_iv_30) OVER w - 1) AS DOUBLE) / {{ rank_window - 1 }}
                END AS iv_pctl_252
    FROM series
    WHERE atm_iv_30 IS NOT NULL
    WINDOW w AS (PARTITION BY underlying ORDER BY date ROWS BETWEEN {{ rank_window - 1 }} PRECEDING AND CURRENT ROW)
),
labeled AS (
    SELECT t.*, r.iv_rank_252, r.iv_pctl_252, h.hv_20, h.hv_20 / t.atm_iv_30 AS hv_iv_ratio
    FROM today AS t
    LEFT JOIN ranked AS r USING (underlying, date)
    LEFT JOIN hv AS h USING (underlying, date)
)
SELECT l.underlying, l.date, l.spot, l.atm_iv_30, l.atm_iv_60, l.atm_iv_30_vendor,
       l.expiry_before_30, l.expiry_after_30, l.iv_put_25d_30, l.iv_call_25d_30,
       l.iv_put_25d_30 - l.iv_call_25d_30 AS skew_25d,
       l.atm_iv_60 - l.atm_iv_30 AS term_slope,
       l.iv_rank_252, l.iv_pctl_252, l.hv_20, l.hv_iv_ratio,
       f.put_call_volume_ratio, f.put_call_oi_ratio, l.gex_1pct,
       CASE
           WHEN l.hv_iv_ratio IS NULL THEN NULL
           WHEN l.hv_iv_ratio > $expansion_hv_iv AND l.iv_rank_252 > $expansion_rank THEN 'iv_expansion'
           WHEN l.hv_iv_ratio < $contraction_hv_iv THEN 'iv_contraction'
           WHEN l.iv_rank_252 IS NULL THEN NULL
           WHEN l.iv_rank_252 >= $high_rank THEN 'high_vol'
           WHEN l.iv_rank_252 <= $low_rank THEN 'low_vol'
           ELSE 'neutral'
       END AS regime,
       l.n_quotes, l.n_expiries
FROM labeled AS l
LEFT JOIN surface_flow AS f ON f.underlying = l.underlying AND f.quote_date = l.date
ORDER BY l.underlying, l.date
