"""Option-book VaR by full revaluation over the lake's history (hand-checked on a small lake), next to the
delta-gamma figures; the Cornish-Fisher domain of validity and the report's warning."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kurtosis, norm, skew

from risk import metrics
from risk.book import Position
from risk.option_var import OptionVaRConfig, option_var
from risk.report import build_report
from risk.stress import StressConfig

AS_OF = dt.date(2021, 6, 30)
EXPIRY = dt.date(2021, 8, 20)


def bs_put(s: float, k: float, t: float, vol: float) -> float:
    d1 = (math.log(s / k) + vol * vol / 2 * t) / (vol * math.sqrt(t))
    return k * norm.cdf(-(d1 - vol * math.sqrt(t))) - s * norm.cdf(-d1)


def _bars(symbol: str, dates: pd.DatetimeIndex, closes: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "date": dates.date, "close": closes, "adj_close": closes,
                         "source": "test"})


def test_full_revaluation_var_by_hand(lake) -> None:  # type: ignore[no-untyped-def]
    """A short index put over 120 made-up days: every day's P&L is the put repriced by hand at that day's
    return and VIX change with one day gone; VaR is the order statistic of those P&Ls."""
    rng = np.random.default_rng(11)
    days = pd.bdate_range(end=AS_OF, periods=121)
    r = rng.standard_t(3, len(days) - 1) * 0.012
    spx = 4000 * np.concatenate([[1.0], np.cumprod(1 + r)])
    vix = 20 + np.concatenate([[0.0], np.cumsum(rng.normal(0, 1.0, len(days) - 1))])
    lake.merge("equity_bars", pd.concat([_bars("^GSPC", days, spx), _bars("^VIX", days, vix)]))
    put = Position(symbol="^GSPC", right="P", strike=4000, expiry=EXPIRY, qty=-2, price=60.0,
                   underlying_price=4000.0, iv=0.2)
    res = option_var([put], lake, StressConfig(as_of=AS_OF), OptionVaRConfig(lookback=120), equity=100_000)
    t0, t1 = (EXPIRY - AS_OF).days / 365, ((EXPIRY - AS_OF).days - 1) / 365
    dvix = np.diff(vix) / 100
    hand = np.array([-200 * (bs_put(4000 * (1 + ri), 4000, t1, 0.2 + dv) - bs_put(4000, 4000, t0, 0.2))
                     for ri, dv in zip(r, dvix, strict=True)])
    np.testing.assert_allclose(res.pnl["full"].to_numpy(), hand, rtol=1e-9)
    worst = np.sort(hand)
    assert res.table.loc["full revaluation", "var_95"] == pytest.approx(-worst[5], rel=1e-12)  # ceil(0.05·120)
    assert res.table.loc["full revaluation", "cvar_99"] == pytest.approx(metrics.cvar_historical(hand, 0.99))
    assert res.table.loc["difference", "var_99"] == pytest.approx(
        res.table.loc["full revaluation", "var_99"] - res.table.loc["delta-gamma", "var_99"])
    assert res.pct.loc["full revaluation", "var_95"] == pytest.approx(-worst[5] / 100_000)
    assert res.sources["^GSPC"] == "own" and res.sources["^VIX"] == "vol shock"


def test_cornish_fisher_domain_equals_monotone_quantiles() -> None:
    """The closed-form domain against a brute-force check that z_cf(z) increases on a fine grid of the
    0.01 %…99.99 % quantiles."""
    z = np.linspace(-metrics.CF_Z_MAX, metrics.CF_Z_MAX, 4001)
    for s in np.linspace(-2.5, 2.5, 21):
        for k in np.linspace(-2, 40, 43):
            zcf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36
            monotone = bool(np.all(np.diff(zcf) >= -1e-9))
            assert metrics.cornish_fisher_valid(s, k) == monotone, (s, k)
    assert metrics.cornish_fisher_valid(0.0, 8.0) and not metrics.cornish_fisher_valid(0.0, 8.5)
    assert metrics.cornish_fisher_valid(0.0, -0.6) and not metrics.cornish_fisher_valid(0.0, -0.7)
    assert not metrics.cornish_fisher_valid(-3.0, 32.0)  # a put-write's moments


def test_report_warns_about_cornish_fisher_only_outside_its_domain() -> None:
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2015-01-01", periods=1500)
    calm = pd.Series(rng.normal(0.0003, 0.01, len(days)), index=days)
    assert abs(kurtosis(calm)) < 1
    quiet = build_report(metrics.equity_from_returns(calm))
    assert quiet.warnings == []
    # a put-write-like series: small steady gains and rare large losses (excess kurtosis ~30)
    crashes = np.where(rng.random(len(days)) < 0.004, rng.normal(-0.08, 0.02, len(days)), 0.0)
    writer = pd.Series(rng.normal(0.0004, 0.004, len(days)) + crashes, index=days)
    assert kurtosis(writer) > 15 and skew(writer) < -2
    loud = build_report(metrics.equity_from_returns(writer))
    assert len(loud.warnings) == 1 and "Cornish-Fisher VaR is not reliable" in loud.warnings[0]
    assert loud.to_dict()["warnings"] == loud.warnings
    from io import StringIO

    from rich.console import Console

    from risk.report import render

    out = StringIO()
    render(loud, Console(file=out, width=200))
    text = out.getvalue()
    assert "cornish-fisher (!)" in text and "warning: Cornish-Fisher" in text
    out = StringIO()
    render(quiet, Console(file=out, width=200))
    assert "(!)" not in out.getvalue() and "warning" not in out.getvalue()
