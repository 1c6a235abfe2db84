"""Assemble the registry's point-in-time features (:mod:`tracking.ml.feature_registry`) per (symbol, date).

Every family is read through the :class:`~quantlake.lake.Lake` (so a tracked run records, and a reproduction
pins, the version of each table), joined to the symbols' trading days without look-ahead:

* per-symbol tables (technical, regime, option flow, surface) on the same ``(symbol, date)``;
* market-wide daily tables on the date: the market index's bars; ``features_macro`` **as of the previous
  session** (a yield or spread of day t is published on t+1);
* ``macro_series`` by publication: an observation is usable from ``max(realtime_start, date + release
  delay)`` and a revision only from its own ``realtime_start`` (:data:`~tracking.ml.feature_registry.
  RELEASE_LAGS`), so monthly data is never used in the month it describes;
* ``features_positioning`` as of its ``available_date`` (the Friday release of Tuesday's positions);
* the calendar (known in advance).

Rolling and lagged values are computed on each symbol's own rows over a look-back before ``start``
(:data:`LOOKBACK_DAYS`), so a row's value does not depend on the requested start once the look-back covers
its windows, nor on any later row.  Cross-sectional ranks use the symbols asked for (the universe) on that
date only.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantlake import calendars
from quantlake.lake import Lake, symbol_date_filter
from tracking.ml import feature_registry as reg

KEYS = ["symbol", "date"]
LOOKBACK_DAYS = 420  # calendar days: covers 252 sessions (52-week, 12-1 momentum) with room for holidays
ANN = float(np.sqrt(252.0))


@dataclass
class Assembled:
    frame: pd.DataFrame  # symbol, date (datetime64), the features
    features: list[str]  # registry names present as columns (NaN where a source has no row)
    unavailable: dict[str, str] = field(default_factory=dict)  # feature -> why it is all-missing
    tables: list[str] = field(default_factory=list)  # lake tables read


def _dates(frame: pd.DataFrame, col: str = "date") -> pd.Series:
    return pd.to_datetime(frame[col]).astype("datetime64[ns]")


def _read(lake: Lake, table: str, columns: list[str], where: str | None, params: list[object]) -> pd.DataFrame:
    schema = {f.name for f in lake.dataset(table).schema}
    return lake.read(table, columns=[c for c in columns if c in schema], where=where, params=params)


# ---------------------------------------------------------------------------------------------- per family
def _bars(lake: Lake, symbols: list[str] | None, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    where, params = symbol_date_filter(symbols, start, end)
    cols = ["symbol", "date", "open", "high", "low", "close", "adj_close", "volume"]
    bars = _read(lake, "equity_bars", cols, where, params)
    for c in cols[2:]:
        if c not in bars:
            bars[c] = np.nan
    bars["date"] = _dates(bars)
    bars = bars.sort_values(KEYS, kind="mergesort").reset_index(drop=True)
    bars["px"] = bars["adj_close"].fillna(bars["close"]).astype(float)
    return bars


def _roll(g: pd.core.groupby.SeriesGroupBy, n: int, how: str) -> pd.Series:
    r = g.rolling(n, min_periods=n)
    out = getattr(r, how)()
    return out.reset_index(level=0, drop=True)


def bars_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The ``bars`` family from OHLCV rows sorted by (symbol, date)."""
    out = bars[KEYS].copy()
    sym = bars["symbol"]
    px = bars["px"]
    gpx = px.groupby(sym, sort=False)
    for k in (2, 3, 10, 120, 250):
        out[f"ret_{k}d"] = gpx.pct_change(k, fill_method=None)
    out["mom_12_1"] = gpx.shift(21) / gpx.shift(252) - 1
    ret = gpx.pct_change(fill_method=None)
    gret = ret.groupby(sym, sort=False)
    sd20 = _roll(gret, 20, "std")
    out["ret_z_20"] = ret / sd20.where(sd20 > 0)
    out["skew_60"] = _roll(gret, 60, "skew")
    out["kurt_60"] = _roll(gret, 60, "kurt")
    down = ret.clip(upper=0.0)
    out["down_vol_20"] = np.sqrt(_roll((down * down).groupby(sym, sort=False), 20, "mean")) * ANN
    out["up_share_20"] = _roll((ret > 0).astype(float).where(ret.notna()).groupby(sym, sort=False), 20, "mean")
    out["drawdown_60"] = px / _roll(gpx, 60, "max") - 1
    out["rally_60"] = px / _roll(gpx, 60, "min") - 1
    close = bars["close"].astype(float)
    prev_close = close.groupby(sym, sort=False).shift(1)
    high, low, open_ = (bars[c].astype(float) for c in ("high", "low", "open"))
    rng = (high - low).where(high > low)
    out["gap"] = open_ / prev_close - 1
    out["range_pct"] = (high - low) / close
    out["close_loc"] = (close - low) / rng
    out["body_pct"] = close / open_ - 1
    hl = np.log(high / low) ** 2
    out["parkinson_20"] = np.sqrt(_roll(hl.groupby(sym, sort=False), 20, "mean") / (4 * np.log(2))) * ANN
    vol = bars["volume"].astype(float).where(bars["volume"] > 0)
    out["log_dollar_volume"] = np.log(close * vol)
    lv = np.log(vol)
    glv = lv.groupby(sym, sort=False)
    sdv = _roll(glv, 20, "std")
    out["volume_z_20"] = (lv - _roll(glv, 20, "mean")) / sdv.where(sdv > 0)
    return out


def technical_features(lake: Lake, symbols: list[str] | None, start: dt.date | None,
                       end: dt.date | None) -> pd.DataFrame | None:  # fmt: skip
    if not lake.exists("features_technical"):
        return None
    needed = set(reg.TECH_COLUMNS) | {x for a, b, _ in reg.TECH_RATIOS.values() for x in (a, b)}
    where, params = symbol_date_filter(symbols, start, end)
    t = _read(lake, "features_technical", [*KEYS, *sorted(needed)], where, params)
    t["date"] = _dates(t)
    out = t[KEYS].copy()
    for c in reg.TECH_COLUMNS:
        out[c] = t[c].astype(float) if c in t else np.nan
    for name, (a, b, off) in reg.TECH_RATIOS.items():
        if a in t and b in t:
            den = t[b].astype(float)
            out[name] = t[a].astype(float) / den.where(den != 0) - off
        else:
            out[name] = np.nan
    return out


def regime_features(lake: Lake, symbols: list[str] | None, start: dt.date | None,
                    end: dt.date | None) -> pd.DataFrame | None:  # fmt: skip
    if not lake.exists("features_regime"):
        return None
    where, params = symbol_date_filter(symbols, start, end)
    r = _read(lake, "features_regime", [*KEYS, *reg.REGIME_COLUMNS, "regime"], where, params)
    r["date"] = _dates(r)
    out = r[KEYS].copy()
    for c in reg.REGIME_COLUMNS:
        out[c] = pd.to_numeric(r[c], errors="coerce").astype(float) if c in r else np.nan
    for name, (a, b) in reg.REGIME_RATIOS.items():
        out[name] = out[a] / out[b].where(out[b] > 0)
    label = r["regime"].astype(object) if "regime" in r else pd.Series(None, index=r.index, dtype=object)
    for name in reg.REGIMES:
        out[f"regime_{name}"] = np.where(label.isna(), np.nan, (label == name).astype(float))
    return out


def market_features(lake: Lake, frame: pd.DataFrame, start: dt.date | None, end: dt.date | None,
                    market: str = reg.MARKET_SYMBOL) -> pd.DataFrame:  # fmt: skip
    """Market-wide columns on each date, and each symbol's returns relative to the market."""
    idx = _bars(lake, [market, reg.SMALL_CAP_SYMBOL], start, end)
    out = frame[KEYS].copy()
    m = idx[idx["symbol"] == market].set_index("date")["px"]
    small = idx[idx["symbol"] == reg.SMALL_CAP_SYMBOL].set_index("date")["px"]
    mk = pd.DataFrame(index=m.index)
    mret = m.pct_change(fill_method=None)
    for k in (1, 5, 20, 60):
        mk[f"mkt_ret_{k}d"] = m.pct_change(k, fill_method=None)
    mk["mkt_rv_20"] = mret.rolling(20).std() * ANN
    mk["mkt_px_sma_200"] = m / m.rolling(200).mean() - 1
    mk["mkt_drawdown_252"] = m / m.rolling(252).max() - 1
    mk["size_spread_20d"] = small.pct_change(20, fill_method=None).reindex(mk.index) - mk["mkt_ret_20d"]
    mk["_mret"] = mret
    out = out.merge(mk.reset_index(), on="date", how="left")
    sym = frame["symbol"].to_numpy()
    for k in (5, 20, 60):
        out[f"rel_ret_{k}d"] = frame[f"ret_{k}d"].to_numpy() - out[f"mkt_ret_{k}d"].to_numpy()
    # beta / correlation / residual vol over 60 days from rolling moments of each symbol's daily returns
    r = pd.Series(frame["_ret"].to_numpy(), index=out.index)
    x = out["_mret"]
    both = r.notna() & x.notna()
    r, x = r.where(both), x.where(both)
    g = pd.Series(sym, index=out.index)

    def mean(s: pd.Series) -> pd.Series:
        return _roll(s.groupby(g, sort=False), 60, "mean")

    mx, my = mean(x), mean(r)
    cov = mean(x * r) - mx * my
    vx = mean(x * x) - mx * mx
    vy = mean(r * r) - my * my
    out["beta_60"] = cov / vx.where(vx > 0)
    out["corr_60"] = cov / np.sqrt((vx * vy).where((vx > 0) & (vy > 0)))
    resid = (vy - out["beta_60"] * cov).clip(lower=0)
    out["idio_vol_60"] = np.sqrt(resid) * ANN
    return out.drop(columns="_mret")


def lag_features(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.groupby("symbol", sort=False)
    return pd.DataFrame({f"{c}_lag{k}": g[c].shift(k) for c, k in reg.LAGGED if c in frame}, index=frame.index)


def cross_sectional(frame: pd.DataFrame) -> pd.DataFrame:
    """Percentile rank (0..1, ties averaged; 0.5 for a lone symbol) and demeaned values per date."""
    out = pd.DataFrame(index=frame.index)
    by_date = frame.groupby("date", sort=False)
    for c in reg.RANKED:
        ranks = by_date[c].rank(method="average")
        n = by_date[c].transform("count")
        out[f"xs_rank_{c}"] = ((ranks - 1) / (n - 1)).where(n > 1, 0.5).where(frame[c].notna())
    for c in reg.DEMEANED:
        out[f"xs_demean_{c}"] = frame[c] - by_date[c].transform("mean")
    return out


def calendar_features(dates: pd.Series) -> pd.DataFrame:
    """Calendar columns per date (NYSE sessions, holidays and early closes; known in advance)."""
    uniq = pd.DatetimeIndex(pd.unique(dates.dropna())).sort_values()
    if len(uniq) == 0:
        return pd.DataFrame(index=dates.index, columns=list(reg.CALENDAR_FEATURES), dtype=float)
    lo, hi = uniq[0] - pd.Timedelta(days=45), uniq[-1] + pd.Timedelta(days=75)
    sess = calendars.sessions(lo, hi)
    s = pd.DataFrame({"date": sess})
    s["ym"] = s["date"].dt.year * 12 + s["date"].dt.month
    s["tdom"] = s.groupby("ym").cumcount() + 1
    s["tdays_to_month_end"] = s.groupby("ym")["date"].transform("size") - s["tdom"]
    s["turn_of_month"] = ((s["tdays_to_month_end"] == 0) | (s["tdom"] <= 3)).astype(float)
    # monthly option expiry: the third Friday (the session before it when it is a holiday)
    firsts = pd.date_range(lo - pd.offsets.MonthBegin(1), hi, freq="MS")
    third = firsts + pd.to_timedelta((4 - firsts.day_of_week) % 7 + 14, unit="D")
    pos = np.searchsorted(sess.to_numpy(), third.to_numpy(dtype="datetime64[ns]"), side="right") - 1
    expiries = sess[np.clip(pos, 0, len(sess) - 1)].unique()
    exp_idx = np.searchsorted(sess.to_numpy(), expiries.to_numpy())
    nxt = np.searchsorted(exp_idx, np.arange(len(sess)))  # next expiry (this one included)
    s["tdays_to_opex"] = np.where(nxt < len(exp_idx), exp_idx[np.clip(nxt, 0, len(exp_idx) - 1)] - np.arange(len(sess)), np.nan)
    exp_week = pd.DatetimeIndex(expiries).to_period("W")
    s["opex_week"] = s["date"].dt.to_period("W").isin(exp_week).astype(float)
    s["quarter_end_month"] = s["date"].dt.month.isin([3, 6, 9, 12]).astype(float)
    s["quad_witching_week"] = s["opex_week"] * s["quarter_end_month"]
    hol = pd.DatetimeIndex(calendars.holidays(lo, hi))
    weekdays = pd.bdate_range(lo, hi)
    nxt_wd = weekdays[np.clip(np.searchsorted(weekdays, s["date"], side="right"), 0, len(weekdays) - 1)]
    prv_wd = weekdays[np.clip(np.searchsorted(weekdays, s["date"], side="left") - 1, 0, len(weekdays) - 1)]
    s["pre_holiday"] = pd.Index(nxt_wd).isin(hol).astype(float)
    s["post_holiday"] = pd.Index(prv_wd).isin(hol).astype(float)
    if len(hol):
        h_sess = np.searchsorted(sess.to_numpy(), hol.to_numpy())  # index of the first session after each holiday
        k = np.searchsorted(h_sess, np.arange(len(sess)), side="right")
        ahead = np.where(k < len(h_sess), h_sess[np.clip(k, 0, len(h_sess) - 1)] - np.arange(len(sess)), 30)
        s["tdays_to_holiday"] = np.minimum(ahead, 30).astype(float)
    else:
        s["tdays_to_holiday"] = 30.0
    times = calendars.session_times(calendars.NYSE, lo.date(), hi.date())
    dur = (times["close"] - times["open"]).dt.total_seconds().to_numpy()
    early = pd.Series(dur < 6 * 3600, index=pd.to_datetime(times["date"]))
    s["early_close"] = s["date"].map(early).astype(float)
    d = s["date"]
    for i in range(5):
        s[f"dow_{i}"] = (d.dt.day_of_week == i).astype(float)
    s["month_sin"] = np.sin(2 * np.pi * d.dt.month / 12)
    s["month_cos"] = np.cos(2 * np.pi * d.dt.month / 12)
    s["doy_sin"] = np.sin(2 * np.pi * d.dt.day_of_year / 365.25)
    s["doy_cos"] = np.cos(2 * np.pi * d.dt.day_of_year / 365.25)
    s["day_of_month"] = d.dt.day.astype(float)
    cols = list(reg.CALENDAR_FEATURES)
    table = s.set_index("date")[cols].astype(float)
    # a bar on a non-session day (a vendor's holiday print) gets NaN rather than a neighbour's values
    return table.reindex(pd.DatetimeIndex(dates)).reset_index(drop=True).set_axis(dates.index)


def macro_features(lake: Lake, dates: pd.Series) -> pd.DataFrame | None:
    """``features_macro`` as of the previous session of each date (plus level changes by publication row)."""
    if not lake.exists("features_macro"):
        return None
    cols = [*reg.MACRO_LEVELS, *reg.MACRO_DERIVED_FROM_TABLE]
    m = _read(lake, "features_macro", ["date", *cols], None, [])
    m["date"] = _dates(m)
    m = m.sort_values("date").reset_index(drop=True)
    for c in cols:
        m[c] = pd.to_numeric(m[c], errors="coerce").astype(float) if c in m else np.nan
    for name, (col, k) in reg.MACRO_EXTRA.items():
        m[name] = m[col] - m[col].shift(k)
    names = [*cols, *reg.MACRO_EXTRA]
    return _asof(dates, m.rename(columns={"date": "usable"})[["usable", *names]], names, shift_sessions=1)


def _prev_session(dates: pd.Series) -> pd.Series:
    uniq = pd.DatetimeIndex(pd.unique(dates.dropna())).sort_values()
    if len(uniq) == 0:
        return dates
    sess = calendars.sessions(uniq[0] - pd.Timedelta(days=10), uniq[-1])
    pos = np.searchsorted(sess.to_numpy(), dates.to_numpy(dtype="datetime64[ns]"), side="left") - 1
    prev = sess.to_numpy()[np.clip(pos, 0, len(sess) - 1)]
    return pd.Series(np.where(pos >= 0, prev, np.datetime64("NaT")), index=dates.index, dtype="datetime64[ns]")


def _asof(dates: pd.Series, table: pd.DataFrame, names: list[str], shift_sessions: int = 0) -> pd.DataFrame:
    """For each date, the last ``table`` row whose ``usable`` date is <= the date (or the session before)."""
    key = _prev_session(dates) if shift_sessions else dates
    left = pd.DataFrame({"k": key.to_numpy(dtype="datetime64[ns]"), "i": np.arange(len(dates))})
    ok = left["k"].notna()
    right = table.assign(usable=table["usable"].astype("datetime64[ns]")).sort_values("usable")
    right = right.drop_duplicates("usable", keep="last")
    joined = pd.merge_asof(left[ok].sort_values("k"), right, left_on="k", right_on="usable", direction="backward")
    out = pd.DataFrame(np.nan, index=np.arange(len(dates)), columns=names)
    out.loc[joined["i"].to_numpy(), names] = joined[names].to_numpy(dtype=float)
    return out.set_axis(dates.index)


def release_states(rows: pd.DataFrame, delay_days: int, how: str, n: int) -> pd.DataFrame:
    """Point-in-time states of one series: ``usable, value`` where ``value`` is ``how`` (level / diff / pct over
    ``n`` observations) of the latest observation known at ``usable``, computed from the values known then.

    Hand-written because no library applies publication delays and vintages together: each vintage row is an
    event usable from ``max(realtime_start, date + delay)``; events are replayed in that order."""
    r = rows.assign(
        date=_dates(rows), rt=_dates(rows, "realtime_start")
    ).sort_values(["date", "rt"])
    first_rt = r.groupby("date")["rt"].transform("min")
    delayed = r["date"] + pd.Timedelta(days=delay_days)
    # the first release waits for the publication delay; a revision counts from its own realtime_start
    r["usable"] = np.where(r["rt"] == first_rt, np.maximum(r["rt"], delayed), r["rt"])
    r = r.sort_values(["usable", "date"], kind="mergesort")
    known: dict[np.datetime64, float] = {}
    order: list[np.datetime64] = []  # observation dates known so far, sorted
    out_u, out_v = [], []
    for usable, obs, value in zip(r["usable"].to_numpy(), r["date"].to_numpy(), r["value"].to_numpy(float), strict=True):
        if obs not in known:
            bisect.insort(order, obs)
        known[obs] = value
        i = len(order) - 1  # the latest observation known now
        cur = known[order[i]]
        if how == "level":
            v = cur
        elif i >= n:
            past = known[order[i - n]]
            v = cur - past if how == "diff" else (cur / past - 1 if past else np.nan)
        else:
            v = np.nan
        out_u.append(usable)
        out_v.append(v)
    return pd.DataFrame({"usable": pd.to_datetime(out_u), "value": out_v})


def macro_release_features(lake: Lake, dates: pd.Series) -> pd.DataFrame | None:
    if not lake.exists("macro_series"):
        return None
    series = sorted(reg.RELEASE_LAGS)
    marks = ", ".join("?" for _ in series)
    rows = _read(lake, "macro_series", ["series_id", "date", "realtime_start", "value"],
                 f"series_id IN ({marks})", list(series))  # fmt: skip
    out = pd.DataFrame(np.nan, index=dates.index, columns=list(reg.MACRO_RELEASE))
    for name, (sid, how, n) in reg.MACRO_RELEASE.items():
        s = rows[rows["series_id"] == sid]
        if s.empty:
            continue
        states = release_states(s, reg.RELEASE_LAGS[sid], how, n).rename(columns={"value": name})
        out[name] = _asof(dates, states, [name])[name]
    return out


def positioning_features(lake: Lake, dates: pd.Series) -> pd.DataFrame | None:
    if not lake.exists("features_positioning"):
        return None
    p = _read(lake, "features_positioning",
              ["market_code", "report_type", "available_date", *reg.COT_COLUMNS], None, [])  # fmt: skip
    out = pd.DataFrame(np.nan, index=dates.index,
                       columns=[f"cot_{m}_{c.removeprefix('net_spec_')}" for m in reg.COT_MARKETS for c in reg.COT_COLUMNS])  # fmt: skip
    for short, (code, rtype) in reg.COT_MARKETS.items():
        rows = p[(p["market_code"] == code) & (p["report_type"] == rtype)]
        if rows.empty:
            continue
        names = {c: f"cot_{short}_{c.removeprefix('net_spec_')}" for c in reg.COT_COLUMNS}
        t = rows.rename(columns={"available_date": "usable", **names})[["usable", *names.values()]]
        out[list(names.values())] = _asof(dates, t, list(names.values())).to_numpy()
    return out


def option_features(lake: Lake, symbols: list[str] | None, start: dt.date | None,
                    end: dt.date | None, rv20: pd.Series | None, frame: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """The symbol's own option flow and surface on the same date (NaN where it has no chain that day)."""
    out = frame[KEYS].copy()
    extra: list[str] = []
    params: list[object] = []
    if symbols:
        extra.append("underlying IN (" + ", ".join("?" for _ in symbols) + ")")
        params += list(symbols)
    if lake.exists("features_option_flow"):
        w, p = _where(extra, params, "quote_date", start, end)
        f = _read(lake, "features_option_flow", ["underlying", "quote_date", "put_call_volume_ratio",
                  "put_call_oi_ratio", "call_volume", "put_volume", "call_open_interest", "put_open_interest"], w, p)  # fmt: skip
        f = f.rename(columns={"underlying": "symbol", "quote_date": "date"})
        f["date"] = _dates(f)
        num = {c: pd.to_numeric(f[c], errors="coerce") if c in f else pd.Series(np.nan, index=f.index)
               for c in ("call_volume", "put_volume", "call_open_interest", "put_open_interest")}  # fmt: skip
        f["log_option_volume"] = np.log1p(num["call_volume"].fillna(0) + num["put_volume"].fillna(0))
        f["log_open_interest"] = np.log1p(num["call_open_interest"].fillna(0) + num["put_open_interest"].fillna(0))
        out = out.merge(f[[*KEYS, *reg.FLOW_FEATURES]], on=KEYS, how="left")
    if lake.exists("features_surface"):
        w, p = _where(extra, params, "date", start, end)
        s = _read(lake, "features_surface", ["underlying", "date", *reg.SURFACE_COLUMNS, "hv_iv_ratio",
                  "gex_1pct", "regime"], w, p)  # fmt: skip
        s = s.rename(columns={"underlying": "symbol", "hv_iv_ratio": "surf_hv_iv_ratio"})
        s["date"] = _dates(s)
        gex = pd.to_numeric(s["gex_1pct"], errors="coerce") if "gex_1pct" in s else pd.Series(np.nan, index=s.index)
        s["gex_sign_log"] = np.sign(gex) * np.log1p(gex.abs())
        label = s["regime"].astype(object) if "regime" in s else pd.Series(None, index=s.index, dtype=object)
        for r in reg.REGIMES:
            s[f"surf_regime_{r}"] = np.where(label.isna(), np.nan, (label == r).astype(float))
        keep = [c for c in [*reg.SURFACE_COLUMNS, "surf_hv_iv_ratio", "gex_sign_log"] if c in s] + [
            f"surf_regime_{r}" for r in reg.REGIMES
        ]
        out = out.merge(s[[*KEYS, *keep]], on=KEYS, how="left")
        if "atm_iv_30" in out:
            out["iv_rv_spread"] = out["atm_iv_30"] - (rv20.to_numpy() if rv20 is not None else np.nan)
    return out


def _where(extra: list[str], params: list[object], col: str, start: dt.date | None,
           end: dt.date | None) -> tuple[str | None, list[object]]:  # fmt: skip
    clauses, p = list(extra), list(params)
    if start is not None:
        clauses.append(f"{col} >= ?")
        p.append(start)
    if end is not None:
        clauses.append(f"{col} <= ?")
        p.append(end)
    return (" AND ".join(clauses) or None), p


# ---------------------------------------------------------------------------------------------- assembly
def assemble(
    lake: Lake,
    symbols: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    wanted: list[str] | None = None,
    windows: tuple[list[str], int] | None = None,
) -> Assembled:
    """Every registry feature (or ``wanted`` ones) per (symbol, date) of ``equity_bars`` in [start, end].

    ``windows = (channels, n)`` adds the sequence model's input: each channel's values 1..n-1 sessions back
    (:func:`~tracking.ml.feature_registry.window_columns`).  Features whose source table is missing are
    NaN columns, listed in :attr:`Assembled.unavailable`."""
    read_from = None if start is None else start - dt.timedelta(days=LOOKBACK_DAYS)
    universe = [s for s in (symbols or []) if s not in (reg.MARKET_SYMBOL, reg.SMALL_CAP_SYMBOL)] or symbols
    bars = _bars(lake, universe, read_from, end)
    if symbols is None:  # every symbol except the market indexes and the VIX
        bars = bars[~bars["symbol"].str.startswith("^")].reset_index(drop=True)
    tables = ["equity_bars"]
    frame = bars[KEYS].copy()
    unavailable: dict[str, str] = {}
    tech = technical_features(lake, universe, read_from, end)
    if tech is not None:
        frame = frame.merge(tech, on=KEYS, how="left")
        tables.append("features_technical")
    else:
        for c in [*reg.TECH_COLUMNS, *reg.TECH_RATIOS]:
            frame[c] = np.nan
            unavailable[c] = "no features_technical table (quantlake features build)"
    bf = bars_features(bars)
    frame = pd.concat([frame, bf.drop(columns=KEYS)], axis=1)
    frame["_ret"] = bars["px"].groupby(bars["symbol"], sort=False).pct_change(fill_method=None)
    reg_f = regime_features(lake, universe, read_from, end)
    if reg_f is not None:
        frame = frame.merge(reg_f, on=KEYS, how="left")
        tables.append("features_regime")
    else:
        for s in reg.REGISTRY:
            if s.family == "regime":
                frame[s.name] = np.nan
                unavailable[s.name] = "no features_regime table (quantlake features build)"
    mk = market_features(lake, frame, read_from, end)
    frame = pd.concat([frame, mk.drop(columns=KEYS)], axis=1)
    frame = pd.concat([frame, lag_features(frame), cross_sectional(frame)], axis=1)
    dates = frame["date"]
    frame = pd.concat([frame, calendar_features(dates)], axis=1)
    for fam, fn, table in (
        ("macro", macro_features, "features_macro"),
        ("macro_release", macro_release_features, "macro_series"),
        ("positioning", positioning_features, "features_positioning"),
    ):
        part = fn(lake, dates)
        if part is None:
            part = pd.DataFrame(np.nan, index=frame.index, columns=reg.names([fam]))
            unavailable.update({n: f"no {table} table" for n in part.columns})
        else:
            tables.append(table)
        frame = pd.concat([frame, part], axis=1)
    opt = option_features(lake, universe, read_from, end, frame.get("rv_20"), frame)
    opt_cols = [*reg.FLOW_FEATURES, *reg.SURFACE_COLUMNS, *reg.SURFACE_DERIVED]
    frame = pd.concat(
        [frame, pd.DataFrame({c: opt[c].to_numpy() if c in opt else np.nan for c in opt_cols}, index=frame.index)],
        axis=1,
    )
    tables += [t for t in ("features_option_flow", "features_surface") if lake.exists(t)]
    if windows is not None:
        channels, n = windows
        g = frame.groupby("symbol", sort=False)
        shifted = {reg.window_column(c, k): g[c].shift(k) for c in channels for k in range(1, n)}
        frame = pd.concat([frame, pd.DataFrame(shifted, index=frame.index)], axis=1)
    if start is not None:
        frame = frame[frame["date"] >= pd.Timestamp(start)]
    names = wanted if wanted is not None else reg.names()
    extra = reg.window_columns(*windows) if windows else []
    cols = list(dict.fromkeys([*names, *extra]))
    frame = frame[[*KEYS, *cols]].reset_index(drop=True)
    for c in cols:
        if c not in unavailable and frame[c].isna().all():
            unavailable[c] = f"no {reg.BY_NAME[c].source if c in reg.BY_NAME else 'source'} rows for these symbols/dates"
    return Assembled(frame, [c for c in names], {k: v for k, v in unavailable.items() if k in cols}, tables)
