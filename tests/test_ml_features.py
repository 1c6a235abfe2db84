"""The ML feature registry: documented, >= 150 features from every feature table, no look-ahead over the
whole assembled frame, publication lags of macro series, hand-checked values, clear size errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from quantlake.lake import Lake

SYMBOLS = ("AAA", "BBB", "CCC")


def _bars(n: int = 560, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2016-01-04", periods=n)
    frames = []
    for i, s in enumerate((*SYMBOLS, "^GSPC", "^RUT", "^VIX")):
        if s == "^VIX":
            close = 15 + 5 * np.abs(np.sin(np.arange(n) / 40)) + rng.normal(0, 0.5, n)
        else:
            close = 40.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n)))
        high, low = close * (1 + rng.uniform(0, 0.01, n)), close * (1 - rng.uniform(0, 0.01, n))
        frames.append(pd.DataFrame({
            "symbol": s, "date": dates.date, "open": (high + low) / 2, "high": high, "low": low, "close": close,
            "adj_close": close, "volume": rng.integers(1_000_000, 5_000_000, n).astype(float), "source": "test",
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _macro(dates: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for sid, base in (("DGS10", 2.0), ("DGS2", 1.0), ("BAMLC0A0CM", 1.2), ("BAMLH0A0HYM2", 4.0), ("DFII10", 0.5)):
        for k, d in enumerate(dates):
            rows.append({"series_id": sid, "date": d.date(), "realtime_start": d.date(),
                         "value": base + 0.01 * np.sin(k / 9), "source": "test"})  # fmt: skip
    months = pd.date_range(dates[0] - pd.DateOffset(months=14), dates[-1], freq="MS")
    for k, d in enumerate(months):
        rows.append({"series_id": "UNRATE", "date": d.date(), "realtime_start": d.date(), "value": 5.0 + 0.1 * k,
                     "source": "test"})  # fmt: skip
    # a revision of an old UNRATE observation published later (ALFRED vintage)
    rev = months[len(months) // 2]
    rows.append({"series_id": "UNRATE", "date": rev.date(), "realtime_start": (rev + pd.Timedelta(days=100)).date(),
                 "value": 99.0, "source": "test"})  # fmt: skip
    return pd.DataFrame(rows)


def _side_tables(lake: Lake, dates: pd.DatetimeIndex) -> None:
    """Synthetic COT, option-flow and surface tables (their builders are tested elsewhere)."""
    from features.tables import OPTION_FLOW, POSITIONING, SURFACE

    tuesdays = [d for d in dates if d.day_of_week == 1]
    cot = pd.DataFrame({
        "market_code": "13874A", "report_type": "financial", "report_date": [d.date() for d in tuesdays],
        "available_date": [(d + pd.Timedelta(days=3)).date() for d in tuesdays], "market_name": "E-MINI S&P 500",
        "open_interest": 1e6, "spec_long": 1.0, "spec_short": 1.0, "net_spec": 0.0,
        "net_spec_pct_oi": np.arange(len(tuesdays), dtype=float), "net_spec_pct_oi_chg_1w": 1.0,
        "net_spec_z_156": np.nan,
    })  # fmt: skip
    lake.merge("features_positioning", cot, spec=POSITIONING)
    chain_days = dates[::3]
    flow = pd.DataFrame({
        "underlying": "AAA", "quote_date": chain_days.date, "n_calls": 10, "n_puts": 10,
        "call_volume": 100.0, "put_volume": np.linspace(50, 150, len(chain_days)), "put_call_volume_ratio": np.linspace(0.5, 1.5, len(chain_days)),
        "call_open_interest": 1000.0, "put_open_interest": 800.0, "put_call_oi_ratio": 0.8,
    })  # fmt: skip
    lake.merge("features_option_flow", flow, spec=OPTION_FLOW)
    surf = pd.DataFrame({"underlying": "AAA", "date": chain_days.date})
    for f in SURFACE.schema:
        if f.name not in surf:
            if f.name == "regime":
                surf[f.name] = "neutral"
            elif "expiry" in f.name:
                surf[f.name] = chain_days.date
            elif str(f.type).startswith("int"):
                surf[f.name] = 10
            else:
                surf[f.name] = np.linspace(0.1, 0.3, len(chain_days))
    lake.merge("features_surface", surf, spec=SURFACE)


@pytest.fixture(scope="module")
def full_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, pd.DataFrame]:
    from features.build import build_features

    lake = Lake(tmp_path_factory.mktemp("mlfeat") / "lake")
    bars = _bars()
    lake.merge("equity_bars", bars)
    dates = pd.bdate_range(bars["date"].min(), bars["date"].max())
    lake.merge("macro_series", _macro(dates))
    build_features(lake, tables=["features_technical", "features_regime", "features_macro"])
    _side_tables(lake, dates)
    return lake, bars


def test_registry_is_documented_and_large() -> None:
    from tracking.ml import feature_registry as fr

    doc = fr.describe()
    assert len(doc) >= 150 and doc["name"].is_unique
    assert set(doc["family"]) == {"technical", "bars", "lags", "cross_sectional", "market", "regime", "calendar",
                                  "macro", "macro_release", "positioning", "option_flow", "surface"}  # fmt: skip
    assert doc["description"].str.len().min() > 5 and doc["source"].str.len().min() > 3
    cot = doc[doc["family"] == "positioning"]
    assert (cot["source"] == "features_positioning").all() and cot["lag_rule"].str.contains("report_date \\+ 3").all()
    assert (doc.loc[doc["family"] == "macro", "lag"] == 1).all()
    assert (doc.loc[doc["name"] == "ret_1d_lag3", "lag"] == 3).all()


def test_assembled_frame_has_no_look_ahead(full_lake: tuple[Lake, pd.DataFrame], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every one of the assembled columns (sequence windows included) is unchanged when everything after a
    date is removed from every table (by the date each row became known) and the features are rebuilt."""
    from features.build import build_features
    from features.tables import OPTION_FLOW, POSITIONING, SURFACE
    from tracking.ml import feature_registry as fr
    from tracking.ml.assemble import assemble

    lake, bars = full_lake
    start = dt.date(2016, 9, 1)
    windows = (["ret_1d", "rsi_14", "rv_20"], 6)
    full = assemble(lake, list(SYMBOLS), start, None, windows=windows)
    assert len(full.features) == len(fr.REGISTRY)
    present = [c for c in full.features if full.frame[c].notna().any()]
    assert len(present) >= 150, sorted(set(full.features) - set(present))
    assert {"cot_es_pct_oi", "put_call_volume_ratio", "atm_iv_30", "unrate", "dgs10", "beta_60"} <= set(present)

    cut = pd.Timestamp("2017-06-14")
    trunc = Lake(tmp_path / "trunc")
    trunc.merge("equity_bars", bars[pd.to_datetime(bars["date"]) <= cut])
    macro = lake.read("macro_series")
    trunc.merge("macro_series", macro[pd.to_datetime(macro["realtime_start"]) <= cut])
    build_features(trunc, tables=["features_technical", "features_regime", "features_macro"])
    for name, spec, col in (("features_positioning", POSITIONING, "available_date"),
                            ("features_option_flow", OPTION_FLOW, "quote_date"), ("features_surface", SURFACE, "date")):  # fmt: skip
        t = lake.read(name)
        trunc.merge(name, t[pd.to_datetime(t[col]) <= cut], spec=spec)
    past = assemble(trunc, list(SYMBOLS), start, None, windows=windows).frame
    a = full.frame[full.frame["date"] <= cut].reset_index(drop=True)
    assert len(past) == len(a) > 500
    pd.testing.assert_frame_equal(past, a, check_exact=True)


def test_hand_checked_values(full_lake: tuple[Lake, pd.DataFrame]) -> None:
    from tracking.ml.assemble import assemble

    lake, bars = full_lake
    f = assemble(lake, list(SYMBOLS), dt.date(2016, 9, 1), None).frame
    row = f[(f["symbol"] == "BBB") & (f["date"] == pd.Timestamp("2017-03-15"))].iloc[0]
    b = bars[bars["symbol"] == "BBB"].set_index(pd.to_datetime(bars.loc[bars["symbol"] == "BBB", "date"]))
    i = b.index.get_loc(pd.Timestamp("2017-03-15"))
    px = b["close"].to_numpy()
    assert row["ret_10d"] == pytest.approx(px[i] / px[i - 10] - 1, rel=1e-12)
    assert row["mom_12_1"] == pytest.approx(px[i - 21] / px[i - 252] - 1, rel=1e-12)
    assert row["gap"] == pytest.approx(b["open"].iloc[i] / px[i - 1] - 1, rel=1e-12)
    r = pd.Series(px).pct_change()
    m = bars[bars["symbol"] == "^GSPC"]["close"].pct_change().to_numpy()
    x, y = m[i - 59 : i + 1], r.to_numpy()[i - 59 : i + 1]
    assert row["beta_60"] == pytest.approx(np.cov(x, y, ddof=0)[0, 1] / np.var(x), rel=1e-8)
    day = f[f["date"] == pd.Timestamp("2017-03-15")]
    assert sorted(day["xs_rank_ret_20d"]) == [0.0, 0.5, 1.0]
    # calendar: 2017-03-15 is a Wednesday, two sessions before the March expiry (Friday 17th)
    assert row["dow_2"] == 1.0 and row["tdays_to_opex"] == 2.0 and row["opex_week"] == 1.0
    assert row["quad_witching_week"] == 1.0
    # macro as of the previous session (a yield of day t is published on t+1)
    macro = lake.read("features_macro")
    prev = macro[pd.to_datetime(macro["date"]) == pd.Timestamp("2017-03-14")].iloc[0]
    assert row["dgs10"] == prev["dgs10"]
    # COT: Tuesday 2017-03-14's positions are available on Friday the 17th, so on the 15th the previous week's
    cot = lake.read("features_positioning")
    known = cot[pd.to_datetime(cot["available_date"]) <= pd.Timestamp("2017-03-15")].iloc[-1]
    assert row["cot_es_pct_oi"] == known["net_spec_pct_oi"] and str(known["report_date"])[:10] == "2017-03-07"
    # the surface joins only the symbol's own chain on the same day
    assert f.loc[f["symbol"] == "BBB", "atm_iv_30"].isna().all()
    assert f.loc[f["symbol"] == "AAA", "atm_iv_30"].notna().sum() > 50


def test_macro_release_lags_and_vintages() -> None:
    from tracking.ml.assemble import release_states

    rows = pd.DataFrame({
        "date": ["2020-01-01", "2020-02-01", "2020-03-01", "2020-01-01"],
        "realtime_start": ["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-20"],  # a later revision of January
        "value": [3.5, 3.6, 4.4, 3.0],
    })  # fmt: skip
    s = release_states(rows, 35, "level", 0)
    # January's first value counts from Feb 5 (35 days), not from Jan 1
    assert list(s["usable"].dt.strftime("%Y-%m-%d")) == ["2020-02-05", "2020-03-07", "2020-04-05", "2020-04-20"]
    assert list(s["value"]) == [3.5, 3.6, 4.4, 4.4]  # the revision of an old month does not change the latest
    d = release_states(rows, 35, "diff", 1)
    assert np.isnan(d["value"].iloc[0]) and d["value"].iloc[1] == pytest.approx(0.1)
    assert d["value"].iloc[3] == pytest.approx(4.4 - 3.6)


def test_training_size_errors_say_the_numbers(lake) -> None:  # type: ignore[no-untyped-def]
    from quantlake.errors import UserInputError
    from tracking.ml.train import TrainConfig, train

    small = _bars(70)
    lake.merge("equity_bars", small[small["symbol"].isin(["AAA", "BBB"])])
    cfg = TrainConfig(feature_table=None, regime_table=None, families=["logistic"], n_splits=3, optuna_trials=1)
    with pytest.raises(UserInputError) as err:
        train(cfg, lake)
    msg = str(err.value)
    assert "training window too small" in msg
    # 2 symbols x (70 - 6) labeled days; sma50_ratio needs 50 bars, so 15 dates x 2 symbols are usable
    assert "gives 30 usable labeled rows on 15 dates (128 labeled, 98 before the features' warm-up)" in msg
    assert "needs at least 150 rows and 6 dates" in msg
