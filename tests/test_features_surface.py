"""features_surface on synthetic chains whose true implied vols are known in closed form.

The chains are priced with Black-Scholes (rate 0, no dividends) from a surface that is linear in strike,
``vol(K, T) = a_i + 0.10 T - 0.3 (K - S) / S`` with an ATM level ``a_i`` that moves day by day: so the IV
at the forward (= spot) of each expiry is exactly ``a_i + 0.10 T``, and every number of the table can be
written down independently here — the variance interpolation by hand, the 25-delta wing IVs and dealer gamma
with ``bs_greeks`` in pandas, IV rank/percentile and realized vol with pandas rolling windows.  Then: no
look-ahead (a build on the chains truncated at a date equals the full build up to it, bitwise) and
incremental = full.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.pricing import bs_greeks, bs_price
from features.settings import FeatureSettings
from quantlake.calendars import holidays, sessions
from quantlake.lake import Lake

D = dt.date
SKEW, SLOPE = -0.3, 0.10
N_DAYS = 262  # rank_window 252 observations and a few more
GAPS = (40, 41, 150)  # days missing from the chain history (multi-day returns)
STRIKES = 0.02 * np.arange(-5, 6)
WEEKLY = "XYZW"  # a second root on the same expiries: 5 strikes at IV + 5 points (never the IV source: fewer
#                  strikes), counted in the dealer gamma like any contract


def atm_level(i: int) -> float:
    return 0.15 + 0.05 * math.sin((i + 70) / 23.0)


def true_vol(i: int, spot: float, strike: np.ndarray, t: float) -> np.ndarray:
    return atm_level(i) + SLOPE * t + SKEW * (strike - spot) / spot


def synthetic_chains(underlying: str = "XYZ") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quotes of every Friday expiry 7..99 days out, 11 strikes within +-10 %, on N_DAYS business days
    (less GAPS); and the day table (date, i, spot)."""
    all_days = sessions("2022-01-03", "2023-12-29")[: N_DAYS + len(GAPS)]  # NYSE trading days
    rng = np.random.default_rng(7)
    daily_sd = np.where(np.arange(len(all_days)) < 130, 0.004, 0.016)  # calm, then rough: HV/IV moves
    spots = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1.0, len(all_days)) * daily_sd))
    keep = [k for k in range(len(all_days)) if k not in GAPS]
    rows = []
    for i in keep:
        d, s = all_days[i].date(), float(spots[i])
        for e in (d + dt.timedelta(days=k) for k in range(7, 100)):
            if e.weekday() != 4:
                continue
            t = (e - d).days / 365.0
            k = np.round(s * (1 + STRIKES), 2)
            vol = true_vol(i, s, k, t)
            for root, shift, listed in ((underlying, 0.0, range(k.size)), (WEEKLY, 0.05, range(3, 8))):
                for right in ("C", "P"):
                    px = np.asarray(bs_price(right, s, k, t, 0.0, 0.0, vol + shift))
                    for j in listed:
                        oi = 100 * (j + 1) if right == "C" else 150 * (11 - j)
                        rows.append((d, underlying, root, e, float(k[j]), right, px[j] * 0.99, px[j] * 1.01,
                                     float(10 + j + (right == "P")), float(oi), float(vol[j] + shift) + 0.01, s))
    cols = ["quote_date", "underlying", "root", "expiry", "strike", "right", "bid", "ask", "volume",
            "open_interest", "vendor_iv", "underlying_price"]
    q = pd.DataFrame(rows, columns=cols)
    q["last"], q["source"] = np.nan, "test"
    q["settlement"] = "PM"
    q["contract"] = (q["root"] + q["expiry"].map(lambda e: e.strftime("%y%m%d")) + q["right"]
                     + (q["strike"] * 1000).round().astype(int).astype(str).str.zfill(8))
    days = pd.DataFrame({"date": [all_days[i].date() for i in keep], "i": keep, "spot": spots[keep]})
    return q, days


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, pd.DataFrame, pd.DataFrame]:
    quotes, days = synthetic_chains()
    lake = Lake(tmp_path_factory.mktemp("surface") / "lake")
    lake.merge("option_quotes", quotes)
    vix = pd.DataFrame({"symbol": "^VIX", "date": days["date"], "open": 20.0, "high": 20.0, "low": 20.0,
                        "close": 20.0, "adj_close": 20.0, "volume": 0.0, "source": "test"})
    lake.merge("equity_bars", vix)  # a VIX in the lake must never stand in for the underlying's IV rank
    report = build_features(lake, tables=["surface"])
    assert [r.table for r in report.results] == ["features_option_flow", "features_options", "features_surface"]
    table = lake.arrow("features_surface").to_pandas().sort_values("date").reset_index(drop=True)
    return lake, table, days


def expiries(d: dt.date) -> list[dt.date]:
    return [d + dt.timedelta(days=k) for k in range(7, 100) if (d + dt.timedelta(days=k)).weekday() == 4]


def around(d: dt.date, days: int) -> tuple[float, float]:
    """(T1, T2): the expiries at or before and at or after ``days`` (years)."""
    ts = np.array([(e - d).days for e in expiries(d)], dtype=float) / 365.0
    tau = days / 365.0
    return float(ts[ts <= tau].max()), float(ts[ts >= tau].min())


def var_interp(d: dt.date, days: int, vol_at: object) -> float:
    t1, t2 = around(d, days)
    tau = days / 365.0
    v1, v2 = vol_at(t1), vol_at(t2)  # type: ignore[operator]
    if t1 == t2:
        return float(v1)
    w = (v1**2 * t1 * (t2 - tau) + v2**2 * t2 * (tau - t1)) / (t2 - t1)
    return math.sqrt(w / tau)


def test_atm_iv_30_60_and_vendor_are_variance_interpolated(world) -> None:  # type: ignore[no-untyped-def]
    _, table, days = world
    assert len(table) == len(days) == N_DAYS
    exp30 = [var_interp(r.date, 30, lambda t, i=r.i: atm_level(i) + SLOPE * t) for r in days.itertuples()]
    exp60 = [var_interp(r.date, 60, lambda t, i=r.i: atm_level(i) + SLOPE * t) for r in days.itertuples()]
    vend = [var_interp(r.date, 30, lambda t, i=r.i: atm_level(i) + SLOPE * t + 0.01) for r in days.itertuples()]
    np.testing.assert_allclose(table["atm_iv_30"], exp30, rtol=0, atol=1e-8)
    np.testing.assert_allclose(table["atm_iv_60"], exp60, rtol=0, atol=1e-8)
    np.testing.assert_allclose(table["atm_iv_30_vendor"], vend, rtol=0, atol=1e-8)
    np.testing.assert_allclose(table["term_slope"], np.array(exp60) - np.array(exp30), rtol=0, atol=1e-8)
    np.testing.assert_allclose(table["spot"], days["spot"], rtol=1e-12)
    first = days.iloc[0]["date"]  # 2022-01-03, a Monday: Fridays 25 and 32 days out bracket 30
    assert (table.iloc[0]["expiry_before_30"], table.iloc[0]["expiry_after_30"]) == (D(2022, 1, 28), D(2022, 2, 4))
    assert first == D(2022, 1, 3)


def test_atm_interpolation_by_hand_on_one_day(world) -> None:  # type: ignore[no-untyped-def]
    """Written out for the first day: a = 0.15 + 0.05 sin(70/23) = 0.1548979, T1 = 25/365, T2 = 32/365,
    tau = 30/365."""
    _, table, _ = world
    t1, t2, tau = 25 / 365, 32 / 365, 30 / 365
    v1, v2 = 0.154897852659 + 0.10 * t1, 0.154897852659 + 0.10 * t2
    w = (v1 * v1 * t1 * (t2 - tau) + v2 * v2 * t2 * (tau - t1)) / (t2 - t1)
    assert table.iloc[0]["atm_iv_30"] == pytest.approx(math.sqrt(w / tau), abs=1e-9)
    assert table.iloc[0]["atm_iv_30"] == pytest.approx(0.1632104, abs=1e-7)


def _wing_iv(i: int, spot: float, d: dt.date, t: float, right: str) -> float:
    """The IV at |delta| 0.25, linear in delta between the two listed options nearest on either side of it."""
    e = d + dt.timedelta(days=round(t * 365))
    k = np.round(spot * (1 + STRIKES), 2)
    tt = (e - d).days / 365.0
    vol = true_vol(i, spot, k, tt)
    delta = np.asarray(bs_greeks(right, spot, k, tt, 0.0, 0.0, vol)["delta"])
    df = pd.DataFrame({"delta": delta, "iv": vol})
    target = -0.25 if right == "P" else 0.25
    below = df[(df.delta <= target) & (df.delta != 0)]  # the nearest option on each side of the target delta
    above = df[(df.delta > target) & (df.delta != 0)]
    ra, rb = below.loc[below.delta.idxmax()], above.loc[above.delta.idxmin()]
    return float(ra.iv + (rb.iv - ra.iv) * (target - ra.delta) / (rb.delta - ra.delta))


def test_25_delta_skew_against_a_pandas_reference(world) -> None:  # type: ignore[no-untyped-def]
    _, table, days = world
    rows = days.iloc[::37]
    for r in rows.itertuples():
        put = var_interp(r.date, 30, lambda t, r=r: _wing_iv(r.i, r.spot, r.date, t, "P"))
        call = var_interp(r.date, 30, lambda t, r=r: _wing_iv(r.i, r.spot, r.date, t, "C"))
        got = table.set_index("date").loc[r.date]
        assert got["iv_put_25d_30"] == pytest.approx(put, abs=1e-8)
        assert got["iv_call_25d_30"] == pytest.approx(call, abs=1e-8)
        assert got["skew_25d"] == pytest.approx(put - call, abs=1e-8)
        assert put - call > 0.01  # the put wing is richer on this surface (skew -0.3)


def test_iv_rank_percentile_null_until_252_observations_never_the_vix(world) -> None:  # type: ignore[no-untyped-def]
    _, table, _ = world
    iv = table["atm_iv_30"]
    roll = iv.rolling(252)
    rank = 100 * (iv - roll.min()) / (roll.max() - roll.min())
    pctl = iv.rolling(252).apply(lambda w: 100 * (w[:-1] < w[-1]).sum() / 251, raw=True)
    assert table["iv_rank_252"].iloc[:251].isna().all() and table["iv_pctl_252"].iloc[:251].isna().all()
    np.testing.assert_allclose(table["iv_rank_252"].iloc[251:], rank.iloc[251:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(table["iv_pctl_252"].iloc[251:], pctl.iloc[251:], rtol=0, atol=1e-9)


def test_realized_vol_scales_multi_day_returns_by_trading_days(world) -> None:  # type: ignore[no-untyped-def]
    _, table, days = world
    dates = pd.to_datetime(days["date"])
    closed = np.array(holidays(dates.min(), dates.max()), dtype="datetime64[D]")
    weekdays = np.array([np.busday_count((a + pd.Timedelta(days=1)).date(), (b + pd.Timedelta(days=1)).date(),
                                         holidays=closed) for a, b in itertools.pairwise(dates)])
    assert weekdays.max() == 3  # the gaps are there (two missing days in a row)
    r = np.log(days["spot"].to_numpy()[1:] / days["spot"].to_numpy()[:-1]) / np.sqrt(weekdays)
    hv = pd.Series(r).rolling(20).std(ddof=1).to_numpy() * math.sqrt(252)
    expected = np.concatenate([[np.nan], hv])
    assert table["hv_20"].iloc[:20].isna().all()
    np.testing.assert_allclose(table["hv_20"].iloc[20:], expected[20:], rtol=1e-10)
    np.testing.assert_allclose(table["hv_iv_ratio"], table["hv_20"] / table["atm_iv_30"], rtol=1e-12)


def test_dealer_gamma_and_flow_ratios(world) -> None:  # type: ignore[no-untyped-def]
    lake, table, days = world
    q = lake.arrow("option_quotes").to_pandas()
    flow = lake.arrow("features_option_flow").to_pandas().set_index("quote_date")
    for r in days.iloc[[0, 100, 261]].itertuples():
        day = q[q["quote_date"] == r.date]
        t = (pd.to_datetime(day["expiry"]) - pd.Timestamp(r.date)).dt.days.to_numpy() / 365.0
        vol = true_vol(r.i, r.spot, day["strike"].to_numpy(), t) + 0.05 * (day["root"] == WEEKLY).to_numpy()
        gamma = np.asarray(bs_greeks(day["right"].to_numpy(), r.spot, day["strike"].to_numpy(), t, 0.0, 0.0,
                                     vol)["gamma"])
        sign = np.where(day["right"] == "C", 1.0, -1.0)
        gex = float(np.sum(sign * gamma * day["open_interest"].to_numpy() * 100 * r.spot**2 * 0.01))
        got = table.set_index("date").loc[r.date]
        assert got["gex_1pct"] == pytest.approx(gex, rel=1e-7)
        puts, calls = day[day["right"] == "P"], day[day["right"] == "C"]
        assert got["put_call_volume_ratio"] == pytest.approx(puts["volume"].sum() / calls["volume"].sum())
        assert (day["root"] == WEEKLY).sum() == 2 * 5 * len(expiries(r.date))  # both roots were in the sum
        assert got["put_call_oi_ratio"] == pytest.approx(flow.loc[r.date, "put_call_oi_ratio"])


def test_hv_iv_regime_rule_set(world) -> None:  # type: ignore[no-untyped-def]
    _, table, _ = world
    s = FeatureSettings().surface
    for row in table.itertuples():
        if pd.isna(row.hv_iv_ratio):
            want = None
        elif row.hv_iv_ratio > s.expansion_hv_iv and row.iv_rank_252 > s.expansion_rank:
            want = "iv_expansion"
        elif row.hv_iv_ratio < s.contraction_hv_iv:
            want = "iv_contraction"  # holds whatever the rank (expansion needs HV/IV > 0.9)
        elif pd.isna(row.iv_rank_252):
            want = None  # the other rules need the rank: unknown, not neutral (as features_regime's VIX rules)
        elif row.iv_rank_252 >= s.high_rank:
            want = "high_vol"
        elif row.iv_rank_252 <= s.low_rank:
            want = "low_vol"
        else:
            want = "neutral"
        assert (row.regime if isinstance(row.regime, str) else None) == want, row.date
    assert {"iv_contraction", "iv_expansion"} <= set(table["regime"].dropna())
    no_rank = table[table["iv_rank_252"].isna() & (table["hv_iv_ratio"] >= s.contraction_hv_iv)]
    assert len(no_rank) and no_rank["regime"].isna().all()


def _surface(lake: Lake) -> pd.DataFrame:
    return lake.arrow("features_surface").to_pandas().sort_values(["underlying", "date"]).reset_index(drop=True)


def test_no_look_ahead_and_incremental_equals_full(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lake, table, days = world
    quotes = lake.arrow("option_quotes").to_pandas().drop(columns=["ingested_at"])
    cut = days["date"].iloc[200]
    part = Lake(tmp_path / "part")
    part.merge("option_quotes", quotes[quotes["quote_date"] <= cut])
    build_features(part, tables=["surface"])
    pd.testing.assert_frame_equal(_surface(part), table[table["date"] <= cut].reset_index(drop=True),
                                  check_exact=True)
    # the rest arrives: recomputed from the first new date only, equal to the full build bitwise
    part.merge("option_quotes", quotes[quotes["quote_date"] > cut])
    report = build_features(part, tables=["surface"])
    nxt = days["date"].iloc[201]
    assert (report["features_surface"].mode, report["features_surface"].detail) == (
        "incremental", f"quote dates from {nxt}")
    assert report["features_surface"].rows == len(days) - 201
    pd.testing.assert_frame_equal(_surface(part), table, check_exact=True)
    # a revised quote in the past: recomputed from its date on, still equal to a full rebuild
    day = days["date"].iloc[120]
    fix = quotes[(quotes["quote_date"] == day)].head(3).assign(open_interest=lambda d: d["open_interest"] + 7)
    part.merge("option_quotes", fix)
    report = build_features(part, tables=["surface"])
    assert report["features_surface"].detail == f"quote dates from {day}"
    ref = Lake(tmp_path / "ref")
    shutil.copytree(part.root, ref.root)
    build_features(ref, tables=["surface"], full=True)
    pd.testing.assert_frame_equal(_surface(part), _surface(ref), check_exact=True)
    assert not _surface(part)["gex_1pct"].equals(table["gex_1pct"])  # the revision reached the table


def test_features_build_help_names_every_table() -> None:
    """``features build -t`` accepts every feature table; its help lists each (``surface`` was missing)."""
    from typer.testing import CliRunner

    from features.cli import features_app
    from features.tables import FEATURE_TABLES

    out = CliRunner().invoke(features_app, ["build", "--help"], env={"COLUMNS": "400"}).output
    listed = " ".join(out.split())  # rich wraps the help text
    missing = [t for t in FEATURE_TABLES if t.removeprefix("features_") not in listed.replace(",", " ").split()]
    assert not missing, (missing, listed)
