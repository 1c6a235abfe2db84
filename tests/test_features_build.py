"""The feature tables built from the sample lake, checked against independent references.

* Recursive indicators (EMA, Wilder RSI, ATR, ADX, MACD) against plain-Python loops written from the
  textbook definitions (Wilder's ``(prev * (n - 1) + x) / n`` form, not the kernels' ``alpha`` form), at 1e-9.
* Window indicators (SMA, Bollinger, stochastic, 52-week range, volume ratio, returns, realized vol, VIX
  rank/percentile) against pandas rolling windows.
* The regime label against an independent pandas implementation of the rules.
* No look-ahead: every table rebuilt on the lake truncated at a date equals, up to that date, the table built
  on the whole lake (bitwise).
* Incremental = full: the truncated lake grown back, then revised, rebuilt incrementally, equals a full
  build bitwise, and only the changed symbols/dates are recomputed.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.settings import FeatureSettings
from features.tables import FEATURE_TABLES
from quantlake.lake import Lake

D = dt.date
CUT = D(2018, 4, 25)  # inside the sample's option-quote week, so option tables have rows on both sides
OHLC = ("AAPL", "GOOG", "INTC", "SPY")
KEYS = {
    "features_technical": ["symbol", "date"],
    "features_regime": ["symbol", "date"],
    "features_macro": ["date"],
    "features_positioning": ["market_code", "report_type", "report_date"],
    "features_option_flow": ["underlying", "quote_date"],
    "features_options": ["quote_date", "underlying", "expiry", "strike", "right"],
    "features_surface": ["underlying", "date"],
}
DATE_COL = {
    "features_technical": "date",
    "features_regime": "date",
    "features_macro": "date",
    "features_positioning": "report_date",
    "features_option_flow": "quote_date",
    "features_options": "quote_date",
    "features_surface": "date",
}


# ----------------------------------------------------------------------------------------------- fixtures
def synthetic_cot() -> pd.DataFrame:
    """Weekly COT reports (Tuesdays 2014-2019) for two markets: one disaggregated, one financial."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2014-01-07", "2019-12-31", freq="7D").date
    frames = []
    for code, kind, name in (
        ("067651", "disaggregated", "CRUDE OIL"),
        ("13874A", "financial", "E-MINI S&P 500"),
    ):
        oi = rng.uniform(4e5, 6e5, len(days)).round()
        long_, short = rng.uniform(2e4, 1.5e5, len(days)).round(), rng.uniform(2e4, 1.5e5, len(days)).round()
        prefix = "managed_money" if kind == "disaggregated" else "lev_money"
        cols = (f"{prefix}_long", f"{prefix}_short")
        frames.append(
            pd.DataFrame(
                {
                    "report_date": days,
                    "market_code": code,
                    "report_type": kind,
                    "market_name": name,
                    "open_interest": oi,
                    cols[0]: long_,
                    cols[1]: short,
                    "source": "test",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _core_frames(lake: Lake) -> dict[str, pd.DataFrame]:
    return {
        t: lake.arrow(t).drop_columns(["ingested_at"]).to_pandas()
        for t in ("equity_bars", "macro_series", "option_quotes", "cot_positions")
    }


def _until(frames: dict[str, pd.DataFrame], cut: dt.date) -> dict[str, pd.DataFrame]:
    """What was known at the close of ``cut``."""
    m = frames["macro_series"]
    return {
        "equity_bars": frames["equity_bars"][frames["equity_bars"]["date"] <= cut],
        "macro_series": m[(m["date"] <= cut) & (m["realtime_start"] <= cut)],
        "option_quotes": frames["option_quotes"][frames["option_quotes"]["quote_date"] <= cut],
        "cot_positions": frames["cot_positions"][frames["cot_positions"]["report_date"] <= cut],
    }


def _table(lake: Lake, name: str) -> pd.DataFrame:
    df = lake.arrow(name).to_pandas()
    return df.sort_values(KEYS[name], kind="mergesort").reset_index(drop=True)


@pytest.fixture(scope="module")
def full_lake(sample_lake_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The sample lake plus synthetic COT reports, every feature table built once (read-only for tests)."""
    root = tmp_path_factory.mktemp("features_full") / "lake"
    shutil.copytree(sample_lake_dir, root)
    lake = Lake(root)
    lake.merge("cot_positions", synthetic_cot())
    report = build_features(lake)
    assert [r.mode for r in report.results] == ["full"] * len(FEATURE_TABLES)
    return lake


@pytest.fixture(scope="module")
def truncated_lake(full_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Every input as known at the close of CUT, with all feature tables built (read-only for tests)."""
    lake = Lake(tmp_path_factory.mktemp("features_truncated") / "lake")
    for name, frame in _until(_core_frames(full_lake), CUT).items():
        lake.merge(name, frame)
    build_features(lake)
    return lake


@pytest.fixture(scope="module")
def tech(full_lake: Lake) -> pd.DataFrame:
    return _table(full_lake, "features_technical")


@pytest.fixture(scope="module")
def bars(full_lake: Lake) -> dict[str, pd.DataFrame]:
    """equity_bars per symbol, sorted by date."""
    df = full_lake.arrow("equity_bars").to_pandas().sort_values(["symbol", "date"])
    return {str(s): g.reset_index(drop=True) for s, g in df.groupby("symbol")}


# ----------------------------------------------------------------------------------------------- references
def ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    """EMA with alpha 2/(n+1) seeded by the mean of the first n values (first value at index n-1)."""
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    prev = float(np.mean(x[:n]))
    out[n - 1] = prev
    alpha = 2.0 / (n + 1.0)
    for i in range(n, len(x)):
        prev = prev + alpha * (x[i] - prev)
        out[i] = prev
    return out


def ref_wilder(x: np.ndarray, n: int, first: int) -> np.ndarray:
    """Wilder's smoothing of x[first:]: seed = mean of the first n values, then (prev*(n-1) + x)/n."""
    out = np.full(len(x), np.nan)
    if len(x) - first < n:
        return out
    prev = float(np.mean(x[first : first + n]))
    out[first + n - 1] = prev
    for i in range(first + n, len(x)):
        prev = (prev * (n - 1) + x[i]) / n
        out[i] = prev
    return out


def ref_rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    chg = np.diff(close, prepend=np.nan)
    gain, loss = np.where(chg > 0, chg, 0.0), np.where(chg < 0, -chg, 0.0)
    ag, al = ref_wilder(gain, n, 1), ref_wilder(loss, n, 1)
    out = np.full(len(close), np.nan)
    for i in range(len(close)):
        if math.isnan(ag[i]):
            continue
        out[i] = (
            50.0 if ag[i] == 0 and al[i] == 0 else 100.0 if al[i] == 0 else 100 - 100 / (1 + ag[i] / al[i])
        )
    return out


def ref_adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> dict[str, np.ndarray]:
    m = len(close)
    tr, pdm, mdm = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    for i in range(1, m):
        tr[i] = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        up, down = high[i] - high[i - 1], low[i - 1] - low[i]
        pdm[i] = up if (up > down and up > 0) else 0.0
        mdm[i] = down if (down > up and down > 0) else 0.0
    atr, sp, sm = ref_wilder(tr, n, 1), ref_wilder(pdm, n, 1), ref_wilder(mdm, n, 1)
    pdi, mdi = 100 * sp / atr, 100 * sm / atr
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(pdi + mdi > 0, 100 * np.abs(pdi - mdi) / (pdi + mdi), 0.0)
    dx[np.isnan(atr)] = np.nan
    return {"atr_14": atr, "plus_di": pdi, "minus_di": mdi, "adx_14": ref_wilder(dx, n, n)}


def _close(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray, tol: float = 1e-9) -> None:
    """Equal NULL pattern (a reference's +-inf counts as NULL) and |a - b| <= tol * max(1, |b|)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    b = np.where(np.isfinite(b), b, np.nan)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(b)
    np.testing.assert_allclose(a[ok], b[ok], rtol=tol, atol=tol)


# ----------------------------------------------------------------------------------------------- technical
def test_ema_and_wilder_rsi_match_plain_reference_loops(tech: pd.DataFrame) -> None:
    checked = 0
    for sym, g in tech.groupby("symbol"):
        c = g["close"].to_numpy()
        for n in FeatureSettings().technical.ema_periods:
            _close(g[f"ema_{n}"], ref_ema(c, n))
        _close(g["rsi_14"], ref_rsi(c))
        assert g["rsi_14"].first_valid_index() - g.index[0] == 14, sym  # first RSI on the 15th bar
        checked += len(g)
    assert checked == len(tech) == 44_983


def test_macd_matches_pandas_ewm(tech: pd.DataFrame) -> None:
    for _, g in tech.groupby("symbol"):
        c = g["close"].reset_index(drop=True)

        def ema(s: pd.Series, n: int) -> pd.Series:  # pandas recursion, started from the SMA seed
            start = s.first_valid_index()
            seeded = pd.concat([pd.Series([s.iloc[start : start + n].mean()]), s.iloc[start + n :]])
            out = seeded.ewm(alpha=2 / (n + 1), adjust=False).mean()
            out.index = range(start + n - 1, start + n - 1 + len(out))
            return out.reindex(s.index)

        macd = ema(c, 12) - ema(c, 26)
        signal = ema(macd, 9)
        _close(g["macd"], macd)
        _close(g["macd_signal"], signal)
        _close(g["macd_hist"], macd - signal)
        _close(g["ema_ratio"], ema(c, 12) / ema(c, 26) - 1)
        assert g["macd_signal"].notna().sum() == len(g) - 33  # first signal on bar 34


def test_atr_adx_match_wilder_loops_and_close_only_series_are_null(
    tech: pd.DataFrame, bars: dict[str, pd.DataFrame]
) -> None:
    for sym in OHLC:
        g, b = tech[tech["symbol"] == sym], bars[sym]
        assert list(g["date"]) == list(b["date"])
        ref = ref_adx(b["high"].to_numpy(), b["low"].to_numpy(), b["close"].to_numpy())
        for col, want in ref.items():
            _close(g[col], want)
        assert g["adx_14"].notna().sum() == len(g) - 27  # first ADX on bar 28
    msft = tech[tech["symbol"] == "MSFT"]  # close-only series: no high/low/volume
    assert msft[["atr_14", "adx_14", "plus_di", "stoch_k", "stoch_d", "volume_ratio_20"]].isna().all().all()
    assert msft["rsi_14"].notna().sum() == len(msft) - 14


def _sliding(x: np.ndarray, n: int, fn: str, ddof: int = 0) -> np.ndarray:
    """Trailing-window statistic by numpy (two-pass std), NaN before n values."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        w = np.lib.stride_tricks.sliding_window_view(x, n)
        out[n - 1 :] = w.std(axis=1, ddof=ddof) if fn == "std" else getattr(w, fn)(axis=1)
    return out


def test_window_indicators_match_pandas_and_numpy(tech: pd.DataFrame, bars: dict[str, pd.DataFrame]) -> None:
    settings = FeatureSettings().technical
    for sym, b in bars.items():
        g = tech[tech["symbol"] == sym].reset_index(drop=True)
        c = b["close"]
        px = b["adj_close"].fillna(b["close"])
        for k in (1, 5, 20, 60):
            _close(g[f"ret_{k}d"], px / px.shift(k) - 1)
        assert set(g["ret_basis"]) == {"adj_close" if b["adj_close"].notna().all() else "close"}
        for n in settings.sma_periods:
            _close(g[f"sma_{n}"], c.rolling(n).mean())
        mid, sd = _sliding(c.to_numpy(), 20, "mean"), _sliding(c.to_numpy(), 20, "std")  # population std
        _close(g["bb_mid"], mid)
        _close(g["bb_upper"], mid + 2 * sd)
        _close(g["bb_lower"], mid - 2 * sd)
        _close(g["bb_pctb"], (c - (mid - 2 * sd)) / (4 * sd), tol=1e-8)
        _close(g["bb_width"], 4 * sd / mid)
        hi, lo = b["high"].fillna(b["close"]), b["low"].fillna(b["close"])
        _close(g["high_52w"], hi.rolling(252).max())
        _close(g["low_52w"], lo.rolling(252).min())
        _close(g["dist_52w_high"], c / hi.rolling(252).max() - 1)
        _close(g["dist_52w_low"], c / lo.rolling(252).min() - 1)
        if sym in OHLC:
            ll, hh = b["low"].rolling(14).min(), b["high"].rolling(14).max()
            k = 100 * (c - ll) / (hh - ll)
            _close(g["stoch_k"], k)
            _close(g["stoch_d"], k.rolling(3).mean())
            _close(g["volume_ratio_20"], b["volume"] / b["volume"].rolling(20).mean())
    # spot values by hand: SPY's 2017-12-29 close against its 52-week high (2017-12-18 high 268.60)
    spy = tech[(tech["symbol"] == "SPY")].iloc[-1]
    assert spy["high_52w"] == pytest.approx(268.600006, abs=1e-6)
    assert spy["dist_52w_high"] == pytest.approx(spy["close"] / 268.600006 - 1, abs=1e-8)


# ----------------------------------------------------------------------------------------------- regime
def ref_regime(vix_bars: pd.DataFrame, rules: object) -> pd.DataFrame:
    """The regime rules of sql/features_regime.sql, written again in pandas/numpy."""
    v = vix_bars.loc[vix_bars["close"] > 0, ["date", "close"]].rename(columns={"close": "vix"})
    v = v.reset_index(drop=True)
    x = v["vix"].to_numpy()
    rank, pctl = np.full(len(x), np.nan), np.full(len(x), np.nan)
    w = np.lib.stride_tricks.sliding_window_view(x, 252)
    rank[251:] = 100 * (x[251:] - w.min(axis=1)) / (w.max(axis=1) - w.min(axis=1))
    pctl[251:] = 100 * (w[:, :-1] < x[251:, None]).sum(axis=1) / 251
    v["vix_rank_252"], v["vix_pctl_252"] = rank, pctl
    v["vix_chg_5d"] = v["vix"] / v["vix"].shift(5) - 1
    r5, v5, chg = v["vix_rank_252"].shift(5), v["vix"].shift(5), v["vix_chg_5d"]
    r = rules
    label = np.select(
        [
            v["vix_rank_252"].isna(),
            (chg >= r.expansion_change) & (r5 < r.high_rank) & (v5 < r.high_level),  # type: ignore[attr-defined]
            (chg <= r.contraction_change) & ((r5 >= r.elevated_rank) | (v5 >= r.elevated_level)),  # type: ignore[attr-defined]
            (v["vix_rank_252"] >= r.high_rank) | (v["vix"] >= r.high_level),  # type: ignore[attr-defined]
            (v["vix_rank_252"] <= r.low_rank) & (v["vix"] < r.low_level),  # type: ignore[attr-defined]
        ],
        ["", "iv_expansion", "iv_contraction", "high_vol", "low_vol"],
        "neutral",
    )
    v["regime"] = pd.Series(label, dtype=object).replace("", None)
    run = (v["regime"] != v["regime"].shift()).cumsum()
    v["days_in_regime"] = (v.groupby(run).cumcount() + 1).where(v["regime"].notna())
    return v.rename(columns={"date": "vix_date"})


def test_regime_matches_independent_reference(full_lake: Lake, bars: dict[str, pd.DataFrame]) -> None:
    reg = _table(full_lake, "features_regime")
    vix = ref_regime(bars["^VIX"], FeatureSettings().regime)
    for sym, b in bars.items():
        g = reg[reg["symbol"] == sym].reset_index(drop=True)
        px = b["adj_close"].fillna(b["close"])
        lr = np.log(px / px.shift())
        for n in (5, 10, 20, 60, 120):
            _close(g[f"rv_{n}"], _sliding(lr.to_numpy(), n, "std", ddof=1) * math.sqrt(252))
        sma200 = b["close"].rolling(200).mean()
        want_trend = (b["close"] > sma200).where(sma200.notna())
        assert (
            g["above_sma200"].astype(object).fillna("-").tolist()
            == want_trend.astype(object).fillna("-").tolist()
        )
        left = pd.DataFrame({"date": pd.to_datetime(b["date"])})
        right = vix.assign(vix_date=pd.to_datetime(vix["vix_date"]))
        m = pd.merge_asof(left, right, left_on="date", right_on="vix_date", direction="backward")
        fresh = (m["date"] - m["vix_date"]).dt.days <= 7
        for col in ("vix", "vix_chg_5d", "vix_rank_252", "vix_pctl_252", "days_in_regime"):
            _close(g[col], m[col].where(fresh))
        _close(g["hv_iv_ratio"], (g["rv_20"] / (m["vix"] / 100)).where(fresh))
        assert (
            g["regime"].astype(object).fillna("-").tolist() == m["regime"].where(fresh).fillna("-").tolist()
        )
    v = reg[reg["symbol"] == "^VIX"].set_index("date")
    v.index = pd.to_datetime(v.index)
    assert set(v["regime"].dropna()) == {"low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral"}
    assert v.loc[pd.Timestamp("2008-10-10"), "regime"] == "high_vol"  # VIX 69.95
    assert v.loc[pd.Timestamp("2018-02-05"), "regime"] == "iv_expansion"  # +170 % in 5 days from ~14
    assert (
        v.loc[pd.Timestamp("2017-06-01") : pd.Timestamp("2017-08-01"), "regime"] == "low_vol"
    ).mean() > 0.7


def test_regime_thresholds_come_from_settings(
    full_lake: Lake, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    shutil.copytree(full_lake.root, lake.root)
    rules = {"high_rank": 80, "high_level": 25, "low_rank": 30, "low_level": 14, "expansion_change": 0.3,
             "contraction_change": -0.2, "elevated_rank": 60, "elevated_level": 22, "vix_max_stale_days": 3}  # fmt: skip
    settings = FeatureSettings.parse({"regime": rules})
    r = build_features(lake, tables=["regime"], settings=settings).results[0]
    assert (r.mode, r.detail) == ("full", "12 symbol(s); settings or code changed")
    ref = ref_regime(bars["^VIX"], settings.regime)
    new, old = _table(lake, "features_regime"), _table(full_lake, "features_regime")
    for sym in ("^VIX", "SPY", "^GSPC"):
        g = new[new["symbol"] == sym].reset_index(drop=True)
        left = pd.DataFrame({"date": pd.to_datetime(bars[sym]["date"])})
        m = pd.merge_asof(left, ref.assign(vix_date=pd.to_datetime(ref["vix_date"])), left_on="date",
                          right_on="vix_date", direction="backward")  # fmt: skip
        fresh = (m["date"] - m["vix_date"]).dt.days <= 3
        assert (
            g["regime"].astype(object).fillna("-").tolist() == m["regime"].where(fresh).fillna("-").tolist()
        )
    changed = (new["regime"].astype(object).fillna("-") != old["regime"].astype(object).fillna("-")).mean()
    assert 0.05 < changed < 0.6


# ----------------------------------------------------------------------------------------------- no look-ahead
def _upto(df: pd.DataFrame, col: str, cut: dt.date) -> pd.DataFrame:
    return df[pd.to_datetime(df[col]) <= pd.Timestamp(cut)].reset_index(drop=True)


@pytest.mark.slow
def test_no_look_ahead_every_table(full_lake: Lake, truncated_lake: Lake) -> None:
    """Every feature table rebuilt on the inputs known at the close of CUT has exactly the rows (bitwise)
    that the build on the whole history has up to CUT: nothing after a date reaches a row of that date."""
    for name in FEATURE_TABLES:
        full, trunc = _table(full_lake, name), _table(truncated_lake, name)
        col = DATE_COL[name]
        assert len(full) > len(_upto(full, col, CUT)), f"{name}: the future must exist for the test to bite"
        want = _upto(full, col, CUT)
        assert len(want) > 0
        pd.testing.assert_frame_equal(trunc, want, check_exact=True, obj=name)


# ----------------------------------------------------------------------------------------------- incremental
def _assert_same_tables(lake: Lake, ref: Lake) -> None:
    for name in FEATURE_TABLES:
        pd.testing.assert_frame_equal(_table(lake, name), _table(ref, name), check_exact=True, obj=name)


@pytest.mark.slow
def test_incremental_build_equals_full_build(full_lake: Lake, truncated_lake: Lake, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "grown")
    shutil.copytree(truncated_lake.root, lake.root)
    frames = _core_frames(full_lake)
    for name, frame in frames.items():  # the days after CUT arrive: new rows only
        assert lake.merge(name, frame).inserted > 0
    report = build_features(lake)
    modes = {r.table: r.mode for r in report.results}
    assert modes == {
        "features_technical": "incremental",
        "features_regime": "incremental",
        "features_macro": "full",  # small: recomputed whole
        "features_positioning": "full",
        "features_option_flow": "incremental",
        "features_options": "incremental",
        "features_surface": "incremental",
    }
    new_bars = len(frames["equity_bars"]) - len(_until(frames, CUT)["equity_bars"])
    assert report["features_technical"].rows == new_bars < 10_000
    _assert_same_tables(lake, full_lake)

    # revisions of old values: one SPY bar, one VIX close, a later vintage of a yield, one option quote
    eb = frames["equity_bars"]
    spy = eb[(eb["symbol"] == "SPY") & (eb["date"] == D(2015, 3, 2))].copy()
    spy[["close", "adj_close"]] *= 1.01
    vix = eb[(eb["symbol"] == "^VIX") & (eb["date"] == D(2016, 6, 1))].copy()
    vix["close"] *= 1.1
    lake.merge("equity_bars", pd.concat([spy, vix]))
    y = frames["macro_series"]
    y10 = y[(y["series_id"] == "DGS10") & (y["date"] == D(2018, 4, 16))].copy()
    y10["realtime_start"], y10["value"] = D(2018, 4, 24), y10["value"] + 0.25
    lake.merge("macro_series", y10)
    q = frames["option_quotes"]
    lake.merge(
        "option_quotes", q[q["quote_date"] == D(2018, 4, 26)].head(1).assign(last=lambda d: d["last"] + 1)
    )
    report = build_features(lake)
    assert {r.table: r.mode for r in report.results}["features_technical"] == "incremental"
    assert report["features_technical"].detail == "2 symbol(s), 2 resumed from stored state/warm-up"
    spy_rows = int((eb[eb["symbol"] == "SPY"]["date"] >= D(2015, 3, 2)).sum())
    assert (
        report["features_technical"].rows
        == spy_rows + (eb[eb["symbol"] == "^VIX"]["date"] >= D(2016, 6, 1)).sum()
    )
    assert report["features_options"].detail == "quote dates from 2018-04-24"  # the new vintage's first day
    assert report["features_surface"].detail == "quote dates from 2018-04-24"
    ref = Lake(tmp_path / "reference")
    shutil.copytree(lake.root, ref.root)
    build_features(ref, full=True)
    _assert_same_tables(lake, ref)

    versions = {t: lake.version(t) for t in FEATURE_TABLES}
    again = build_features(lake)
    assert {r.mode for r in again.results} == {"up to date"}
    assert {t: lake.version(t) for t in FEATURE_TABLES} == versions
    # readers filter feature tables by symbol after incremental commits (no string_view Parquet files)
    assert len(lake.read("features_regime", where="symbol = ? AND date <= ?", params=["SPY", D(2016, 1, 4)]))


def test_parts_computed_on_threads_keep_order_and_raise_where_production_failed() -> None:
    from features.series import computed_in_order

    made: list[_Ctx] = []

    def ctx() -> _Ctx:
        made.append(_Ctx())
        return made[-1]

    def work(x: int, c: _Ctx) -> int:
        if x == 4:
            raise ValueError("part 4 failed")
        time.sleep(0.01 * (x % 3))  # later items can finish first: the order still holds
        c.used += 1
        return x * 10

    got: list[int] = []
    with pytest.raises(ValueError, match="part 4 failed"):
        for p in computed_in_order(range(1, 10), work, ctx, workers=2):
            got.append(p)
    assert got == [10, 20, 30]
    assert made and all(c.closed for c in made) and len(made) <= 2  # one context per thread, all closed
    stream = computed_in_order(iter(range(1000)), work, ctx, workers=2)
    assert next(stream) == 0
    stream.close()  # nothing left running or queued
    assert not [t for t in threading.enumerate() if t.name.startswith("quantlake-part")]


class _Ctx:
    def __init__(self) -> None:
        self.used, self.closed = 0, False

    def close(self) -> None:
        self.closed = True


def test_a_build_cut_into_many_parts_equals_the_one_part_build(
    full_lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts are computed two at a time on their own cursors and written as files of one version: cutting the
    sample's symbols into parts of ~3,000 bars (most symbols alone, two in flight at once) changes no value."""
    import features.build_state

    monkeypatch.setattr(features.build_state, "PART_ROWS", 3_000)
    lake = Lake(tmp_path / "lake")
    lake.merge("equity_bars", full_lake.read("equity_bars"))
    report = build_features(lake, tables=["technical", "regime"])
    assert [r.mode for r in report.results] == ["full", "full"]
    files = len(lake.delta("features_technical").file_uris())
    assert files > 5  # many parts, one file each
    for name in ("features_technical", "features_regime"):
        assert _table(lake, name).equals(_table(full_lake, name)), name
