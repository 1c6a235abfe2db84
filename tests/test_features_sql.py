"""Feature families on small synthetic lakes, checked by hand or against independent computations:
option analytics (IV/Greeks vs features.pricing and the true vol, the rate curve by hand), put/call
ratios, macro vintages, COT positioning, settings, failure handling, the CLI and the Prefect flow."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features import sql_runner
from features.build import build_features, resolve_tables
from features.errors import FeatureBuildError, FeatureConfigError, UnknownFeatureTableError
from features.pricing import bs_greeks, bs_price, implied_vol
from features.settings import FeatureSettings
from quantlake.lake import Lake

D = dt.date
QD = D(2024, 3, 1)  # a Friday
S0 = 500.0
YIELDS = {"DGS3MO": 5.40, "DGS2": 4.60, "DGS10": 4.20}  # percent, bond-equivalent


def _bars(symbol: str, days: pd.DatetimeIndex, close: np.ndarray, ohlc: bool = True) -> pd.DataFrame:
    df = pd.DataFrame({"symbol": symbol, "date": days.date, "close": close, "source": "test"})
    if ohlc:
        df["open"], df["high"], df["low"] = close * 0.999, close * 1.01, close * 0.99
        df["adj_close"], df["volume"] = close, 1e6
    return df


def _macro(days: list[dt.date]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"series_id": s, "date": d, "realtime_start": d, "value": v, "source": "test"}
            for s, v in YIELDS.items()
            for d in days
        ]
    )


def _rate(t: float) -> float:
    """sql/features_options.sql's curve, written out: linear in T between 3m, 2y and 10y, continuous."""
    y3m, y2, y10 = YIELDS["DGS3MO"], YIELDS["DGS2"], YIELDS["DGS10"]
    y = (
        y3m
        if t <= 0.25
        else y3m + (y2 - y3m) * (t - 0.25) / 1.75
        if t <= 2
        else y2 + (y10 - y2) * (t - 2) / 8
    )
    return 2 * math.log(1 + y / 200)


@pytest.fixture()
def option_lake(lake: Lake) -> Lake:
    """SPY bars, the Treasury curve and an SPY chain priced by Black-Scholes at 20 % vol (bid/ask +-1 %)."""
    days = pd.bdate_range("2024-02-26", "2024-03-08")
    lake.merge("equity_bars", _bars("SPY", days, np.full(len(days), S0)))
    lake.merge("macro_series", _macro([d.date() for d in days]))
    rows = []
    for expiry in (D(2024, 3, 15), D(2024, 6, 21), D(2025, 12, 19), D(2027, 12, 17)):
        t = (expiry - QD).days / 365
        for k in (450.0, 500.0, 550.0):
            for right in ("C", "P"):
                px = float(bs_price(right, S0, k, t, _rate(t), 0.0, 0.20))
                rows.append({"quote_date": QD, "underlying": "SPY", "root": "SPY", "expiry": expiry, "strike": k, "right": right,
                             "bid": px * 0.99, "ask": px * 1.01, "volume": 10.0 if right == "C" else 30.0,
                             "open_interest": 100.0 if right == "C" else 50.0, "source": "test"})  # fmt: skip
    rows += [  # the last trade only; a price below intrinsic (no IV); no price at all
        {"quote_date": QD, "underlying": "SPY", "root": "SPY", "expiry": D(2024, 6, 21), "strike": 400.0, "right": "C",
         "last": 115.0, "underlying_price": S0, "source": "test"},
        {"quote_date": QD, "underlying": "SPY", "root": "SPY", "expiry": D(2024, 6, 21), "strike": 600.0, "right": "P",
         "bid": 50.0, "ask": 50.2, "source": "test"},
        {"quote_date": QD, "underlying": "SPY", "root": "SPY", "expiry": D(2024, 6, 21), "strike": 650.0, "right": "P",
         "source": "test"},
        {"quote_date": D(2024, 3, 4), "underlying": "SPY", "root": "SPY", "expiry": D(2024, 3, 15), "strike": 500.0, "right": "P",
         "bid": 4.0, "ask": 4.2, "volume": 7.0, "open_interest": 9.0, "source": "test"},
    ]  # fmt: skip
    lake.merge("option_quotes", pd.DataFrame(rows))
    return lake


def test_option_analytics_against_pricing_library_and_hand_values(option_lake: Lake) -> None:
    report = build_features(option_lake, tables=["options", "option_flow"])
    assert [r.mode for r in report.results] == ["full", "full"]
    f = option_lake.read("features_options")
    f["expiry"], f["quote_date"] = (
        pd.to_datetime(f["expiry"]).dt.date,
        pd.to_datetime(f["quote_date"]).dt.date,
    )
    bs = f[(f["quote_date"] == QD) & f["strike"].isin([450.0, 500.0, 550.0])]
    assert len(bs) == 24 and (bs["mid_source"] == "bid_ask").all()
    t = np.array([(e - QD).days for e in bs["expiry"]]) / 365
    np.testing.assert_array_equal(bs["dte"], [(e - QD).days for e in bs["expiry"]])
    np.testing.assert_allclose(bs["t_years"], t, rtol=0, atol=1e-15)
    np.testing.assert_allclose(bs["rate"], [_rate(x) for x in t], rtol=1e-13)
    np.testing.assert_allclose(bs["underlying_price"], S0)  # no underlying_price on the quote: SPY's close
    np.testing.assert_allclose(bs["spread_pct"], 2.0, rtol=1e-12)
    np.testing.assert_allclose(bs["forward"], S0 * np.exp(bs["rate"] * t), rtol=1e-14)
    np.testing.assert_allclose(bs["log_moneyness_fwd"], np.log(bs["strike"] / bs["forward"]), rtol=1e-12)
    # the IV is features.pricing.implied_vol of the row's own inputs, and recovers the 20 % it was priced at
    iv = implied_vol(bs["mid"], bs["right"], S0, bs["strike"], t, bs["rate"], 0.0)
    np.testing.assert_array_equal(bs["iv"], iv)
    np.testing.assert_allclose(bs["iv"], 0.20, rtol=0, atol=1e-9)
    g = bs_greeks(bs["right"], S0, bs["strike"], t, bs["rate"], 0.0, bs["iv"])
    for name in ("delta", "gamma", "vega", "theta", "rho", "vega_1pct", "theta_per_day"):
        np.testing.assert_allclose(bs[name], g[name], rtol=1e-12, atol=1e-14, err_msg=name)
    intrinsic = np.where(
        bs["right"] == "C", np.maximum(S0 - bs["strike"], 0), np.maximum(bs["strike"] - S0, 0)
    )
    np.testing.assert_allclose(bs["intrinsic"], intrinsic)
    np.testing.assert_allclose(bs["time_value"], bs["mid"] - intrinsic, rtol=1e-12)
    assert (bs["theta"][bs["right"] == "C"] < 0).all() and (bs["vega"] > 0).all()

    odd = f[f["strike"].isin([400.0, 600.0, 650.0])].set_index("strike")
    assert odd.loc[400.0, "mid_source"] == "last" and odd.loc[400.0, "mid"] == 115.0
    assert pd.isna(odd.loc[400.0, "spread_pct"]) and 0.05 < odd.loc[400.0, "iv"] < 1.0
    assert odd.loc[600.0, "mid"] == pytest.approx(50.1) and odd.loc[600.0, "intrinsic"] == 100.0
    assert odd.loc[600.0, ["iv", "delta", "gamma", "vega"]].isna().all()  # below intrinsic: no IV, no Greeks
    assert pd.isna(odd.loc[650.0, "mid"]) and pd.isna(odd.loc[650.0, "iv"])

    flow = option_lake.read("features_option_flow").set_index("quote_date")
    first = flow.iloc[0]
    assert (first["n_calls"], first["n_puts"]) == (13, 14)
    assert (first["call_volume"], first["put_volume"]) == (120.0, 360.0)
    assert first["put_call_volume_ratio"] == 3.0 and first["put_call_oi_ratio"] == 0.5
    second = flow.iloc[1]
    assert second["n_calls"] == 0 and pd.isna(second["put_call_volume_ratio"])  # no calls: no ratio


def test_option_settings_and_incremental_quote_dates(option_lake: Lake) -> None:
    build_features(option_lake, tables=["options"])
    fixed = FeatureSettings.parse({"options": {"risk_free": 0.01, "dividend_yield": 0.015}})
    report = build_features(option_lake, tables=["options"], settings=fixed)
    assert report.results[0].detail == "settings or code changed"
    f = option_lake.read("features_options")
    assert (f["rate"] == 0.01).all() and (f["div_yield"] == 0.015).all()
    v = option_lake.version("features_options")
    # a new quote date: only that date is recomputed; an unchanged lake commits nothing
    new = {"quote_date": D(2024, 3, 5), "underlying": "SPY", "root": "SPY", "expiry": D(2024, 3, 15), "strike": 505.0,
           "right": "C", "bid": 3.0, "ask": 3.1, "source": "test"}  # fmt: skip
    option_lake.merge("option_quotes", pd.DataFrame([new]))
    r = build_features(option_lake, tables=["options"], settings=fixed).results[0]
    assert (r.mode, r.rows, r.detail, r.version) == ("incremental", 1, "quote dates from 2024-03-05", v + 1)
    assert build_features(option_lake, tables=["options"], settings=fixed).results[0].mode == "up to date"


# ----------------------------------------------------------------------------------------------- macro
def test_macro_uses_only_vintages_known_on_each_date(lake: Lake) -> None:
    days = [d.date() for d in pd.bdate_range("2023-01-02", periods=300)]
    rng = np.random.default_rng(5)
    rows = []
    for sid, base, every in (
        ("DGS10", 4.0, 5),
        ("DGS2", 4.5, 1),
        ("BAMLC0A0CM", 1.2, 1),
        ("BAMLH0A0HYM2", 4.0, 1),
    ):
        vals = base + np.cumsum(rng.normal(0, 0.03, len(days)))
        rows += [{"series_id": sid, "date": d, "realtime_start": d, "value": round(float(v), 4), "source": "t"}
                 for d, v in list(zip(days, vals, strict=True))[::every]]  # fmt: skip
    d10 = {r["date"]: r["value"] for r in rows if r["series_id"] == "DGS10"}  # weekly: days 0, 5, 10, ...
    d2 = {r["date"]: r["value"] for r in rows if r["series_id"] == "DGS2"}
    rows.append({"series_id": "DGS10", "date": days[100], "realtime_start": days[102],
                 "value": d10[days[100]] + 1.0, "source": "t"})  # day 100's value revised on day 102  # fmt: skip
    late = next(r for r in rows if r["series_id"] == "DGS2" and r["date"] == days[200])
    late["realtime_start"] = days[203]  # day 200's DGS2 published three days late
    lake.merge("macro_series", pd.DataFrame(rows))
    build_features(lake, tables=["macro"])
    m = lake.read("features_macro")
    m["date"] = pd.to_datetime(m["date"]).dt.date
    m = m.set_index("date")
    assert list(m.index) == days  # one row per publication day
    # DGS10 holds its last observation between releases, in the vintage known on each day
    assert [m.loc[days[k], "dgs10"] for k in range(99, 106)] == [d10[days[95]]] + [d10[days[100]]] * 2 + [
        d10[days[100]] + 1.0
    ] * 3 + [d10[days[105]]]
    # the late DGS2 value is invisible before it was published; by then newer observations exist
    assert m.loc[days[200], "dgs2"] == d2[days[199]]
    assert [m.loc[days[k], "dgs2"] for k in (201, 202, 203)] == [d2[days[k]] for k in (201, 202, 203)]
    # derived columns against pandas
    s = m["slope_10y2y"]
    np.testing.assert_allclose(s, m["dgs10"] - m["dgs2"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(m["slope_10y2y_chg_5d"].iloc[5:], (s - s.shift(5)).iloc[5:], atol=1e-12)
    z = (s - s.rolling(252).mean()) / s.rolling(252).std()
    np.testing.assert_allclose(m["slope_10y2y_z_252"].iloc[251:], z.iloc[251:], rtol=1e-9, atol=1e-9)
    assert m["slope_10y2y_z_252"].iloc[:251].isna().all() and m["slope_10y3m"].isna().all()  # no DGS3MO
    hy = m["hy_oas"]
    np.testing.assert_allclose(m["hy_oas_z_252"].iloc[251:],
                               ((hy - hy.rolling(252).mean()) / hy.rolling(252).std()).iloc[251:], atol=1e-9)  # fmt: skip


# ----------------------------------------------------------------------------------------------- positioning
def test_cot_positioning_by_hand(lake: Lake) -> None:
    days = pd.date_range("2020-01-07", periods=170, freq="7D").date
    rng = np.random.default_rng(9)
    oi = rng.uniform(1e5, 2e5, len(days)).round()
    lo, sh = rng.uniform(1e4, 5e4, len(days)).round(), rng.uniform(1e4, 5e4, len(days)).round()
    lake.merge("cot_positions", pd.DataFrame({
        "report_date": days, "market_code": "13874A", "report_type": "financial", "market_name": "E-MINI S&P",
        "open_interest": oi, "lev_money_long": lo, "lev_money_short": sh,
        "managed_money_long": 1.0, "managed_money_short": 99.0, "source": "t",
    }))  # fmt: skip
    build_features(lake, tables=["positioning"])
    p = lake.read("features_positioning")
    np.testing.assert_array_equal(p["net_spec"], lo - sh)  # leveraged funds in the financial report
    pct = 100 * (lo - sh) / oi
    np.testing.assert_allclose(p["net_spec_pct_oi"], pct, rtol=1e-14)
    np.testing.assert_allclose(p["net_spec_pct_oi_chg_1w"].iloc[1:], np.diff(pct), rtol=1e-12)
    z = (pd.Series(pct) - pd.Series(pct).rolling(156).mean()) / pd.Series(pct).rolling(156).std()
    assert p["net_spec_z_156"].iloc[:155].isna().all()
    np.testing.assert_allclose(p["net_spec_z_156"].iloc[155:], z.iloc[155:], rtol=1e-9, atol=1e-9)
    assert (pd.to_datetime(p["available_date"]) - pd.to_datetime(p["report_date"])).dt.days.eq(3).all()


# ----------------------------------------------------------------------------------------------- settings, errors
@pytest.fixture()
def small_lake(lake: Lake) -> Lake:
    days = pd.bdate_range("2020-01-01", periods=320)
    rng = np.random.default_rng(1)
    lake.merge("equity_bars", pd.concat([
        _bars("AAA", days, 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))),
        _bars("^VIX", days, np.clip(18 + np.cumsum(rng.normal(0, 0.8, len(days))), 9, 80), ohlc=False),
    ]))  # fmt: skip
    return lake


def test_settings_change_periods_and_rebuild(small_lake: Lake) -> None:
    build_features(small_lake, tables=["technical"])
    custom = FeatureSettings.parse({"technical": {"ema_periods": [30, 10], "sma_periods": [15]}})
    assert custom.technical.ema_periods == (10, 30)
    r = build_features(small_lake, tables=["technical"], settings=custom).results[0]
    assert (r.mode, r.detail) == ("full", "2 symbol(s); settings or code changed")
    cols = set(small_lake.arrow("features_technical").column_names)
    assert {"ema_10", "ema_30", "sma_15"} <= cols and not {"ema_8", "sma_200"} & cols
    assert build_features(small_lake, tables=["technical"], settings=custom).results[0].mode == "up to date"


def test_bad_settings_and_table_names_are_user_errors() -> None:
    with pytest.raises(FeatureConfigError, match=r"features\.technical\.ema_periods"):
        FeatureSettings.parse({"technical": {"ema_periods": [1, 20]}})
    with pytest.raises(FeatureConfigError, match=r"features\.regime.*low_rank"):
        FeatureSettings.parse({"regime": {"low_rank": 80, "high_rank": 70}})
    with pytest.raises(FeatureConfigError, match=r"features\.regime\.vix_symbol"):
        FeatureSettings.parse({"regime": {"vix_symbol": "x'; drop"}})
    with pytest.raises(FeatureConfigError, match=r"features\.colour"):
        FeatureSettings.parse({"colour": "red"})
    with pytest.raises(UnknownFeatureTableError, match="known: features_technical"):
        resolve_tables(["technical", "volume_profile"])
    assert resolve_tables(["Technical", "features_regime", "technical"]) == [
        "features_technical",
        "features_regime",
    ]


def test_sql_runner_binds_parameters_and_refuses_text_templates() -> None:
    import duckdb

    con = duckdb.connect()
    con.register("option_quotes", pa.table({"quote_date": pa.array([], pa.date32())}))
    with pytest.raises(FeatureBuildError, match=r"missing \['from_date'\]"):
        sql_runner.run(con, "features_option_flow", {})
    with pytest.raises(FeatureBuildError, match="not a validated integer"):
        sql_runner.render("features_technical", {"sma_periods": ("1; DROP TABLE x",), "ema_periods": (5,)})
    with pytest.raises(FeatureBuildError, match="invalid SQL file name"):
        sql_runner.load_sql("../etc/passwd")


def test_failed_table_keeps_its_previous_version(small_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    build_features(small_lake, tables=["technical", "regime"])
    before = small_lake.version("features_regime")
    small_lake.merge(
        "equity_bars", _bars("BBB", pd.bdate_range("2020-01-01", periods=30), np.linspace(10, 12, 30))
    )
    real = sql_runner.load_sql

    def broken(name: str) -> str:
        sql = real(name)
        return sql.replace("FROM fresh\n", "FROM no_such_relation\n") if name == "features_regime" else sql

    monkeypatch.setattr(sql_runner, "load_sql", broken)
    with pytest.raises(FeatureBuildError, match=r"features_regime\.sql failed"):
        build_features(small_lake, tables=["technical", "regime"])
    assert small_lake.version("features_regime") == before  # untouched
    assert "BBB" in set(
        small_lake.arrow("features_technical").column("symbol").to_pylist()
    )  # built before it


def test_vacuumed_input_version_falls_back_to_full_build(small_lake: Lake) -> None:
    build_features(small_lake, tables=["technical"])
    small_lake.merge("equity_bars", _bars("AAA", pd.bdate_range("2021-03-22", periods=1), np.array([77.0])))
    small_lake.vacuum("equity_bars", retention_hours=0)
    r = build_features(small_lake, tables=["technical"]).results[0]
    assert (r.mode, r.detail) == ("full", "2 symbol(s); equity_bars version 0 is no longer readable")


# ----------------------------------------------------------------------------------------------- CLI, flow
def test_cli_build_and_list(small_lake: Lake, ql_home: Path) -> None:
    from typer.testing import CliRunner

    from quantlake.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["features", "build", "--no-flow", "--no-progress", "-t", "technical,regime"],
                        env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "features_technical" in res.output and "full" in res.output and "first build" in res.output
    res = runner.invoke(app, ["features", "list"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "equity_bars@0" in res.output and "not built" in res.output, res.output


def test_cli_user_errors_are_one_line_exit_2(ql_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text("technical:\n  ema_periods: [0, 20]\n")
    env = {**os.environ, "QUANTLAKE_HOME": str(ql_home), "COLUMNS": "200"}
    for args, msg in (
        (["-t", "volume_profile"], "unknown feature table 'volume_profile'"),
        (["--settings", str(bad)], "features.technical.ema_periods"),
    ):
        out = subprocess.run([sys.executable, "-m", "quantlake.cli", "features", "build", "--no-flow", *args],
                             capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert msg in out.stderr and "Traceback" not in out.stderr + out.stdout
        assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.integration
def test_prefect_flow(small_lake: Lake) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.build_features import build_features_flow

    # its own Prefect API: this test calls the flow directly in the test worker, whose earlier tests may
    # have pointed PREFECT_API_URL at an in-process API that is gone (order-dependent failure in CI)
    with prefect_test_harness(server_startup_timeout=120):
        out = build_features_flow(tables=["regime"], settings={"regime": {"high_level": 25}})
        assert isinstance(out, dict)
        assert [(r["table"], r["mode"], r["written"]) for r in out["results"]] == [
            ("features_regime", "full", 640)
        ]
        assert out["inputs"] == {"equity_bars": 0}
        with pytest.raises(FeatureConfigError):
            build_features_flow(settings={"regime": {"high_level": -1}})
