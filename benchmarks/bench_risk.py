"""Speed (and agreement with the reference libraries) of the risk package's hot paths.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_risk.py
    .venv/bin/python benchmarks/bench_risk.py --series 200 --options 5000

Figures:

* **VaR/CVaR**: the three methods of :mod:`risk.metrics` over ``--series`` return series of 20 years of
  daily data, against riskfolio-lib's ``VaR_Hist``/``CVaR_Hist`` and quantstats' parametric VaR/CVaR on the
  same series (time per series and the largest absolute difference).
* **pre-trade checks**: :func:`risk.limits.validate` calls per second for a stock order against a
  50-position book with every limit on (the correlation limit included, 63 days of returns).
* **stress**: the hypothetical grid (10 spot × 2 vol shocks) fully repricing a book of ``--options`` option
  positions with Black-Scholes, per scenario and per option-repricing.
* **optimizers**: minimum variance, mean-variance, risk parity (bounded) and HRP on 50 assets × 5 years.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console(width=130)


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (the machine is shared) and the last result."""
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def returns_panel(n_series: int, n_days: int = 5040, seed: int = 0) -> np.ndarray:
    """Student-t daily returns (fat tails, some skew from a mixture), one column per series."""
    rng = np.random.default_rng(seed)
    t = rng.standard_t(4, size=(n_days, n_series)) * 0.01 / math.sqrt(2)
    jumps = (rng.random((n_days, n_series)) < 0.01) * rng.normal(-0.03, 0.02, (n_days, n_series))
    return t + jumps + 0.0003


def bench_var(n_series: int) -> list[tuple[str, str, str, str]]:
    import riskfolio as rp

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        import quantstats as qs

    from risk import metrics

    panel = returns_panel(n_series)
    rows = []
    for method, ours, theirs, name in (
        (
            "historical",
            metrics.var_historical,
            lambda x: rp.RiskFunctions.VaR_Hist(x, 0.05),
            "riskfolio VaR_Hist",
        ),
        (
            "historical",
            metrics.cvar_historical,
            lambda x: rp.RiskFunctions.CVaR_Hist(x, 0.05),
            "riskfolio CVaR_Hist",
        ),
        (
            "parametric",
            metrics.var_parametric,
            lambda x: -qs.stats.value_at_risk(pd.Series(x), sigma=1, confidence=0.95),
            "quantstats value_at_risk",
        ),
        (
            "parametric",
            metrics.cvar_parametric,
            lambda x: -qs.stats.conditional_value_at_risk(pd.Series(x), sigma=1, confidence=0.95),
            "quantstats cond. VaR",
        ),
        ("cornish-fisher", metrics.var_cornish_fisher, None, "-"),
        ("cornish-fisher", metrics.cvar_cornish_fisher, None, "-"),
    ):
        t_ours, got = timed(lambda f=ours: [f(panel[:, j], 0.95) for j in range(n_series)])
        if theirs is None:
            rows.append((f"{method} {ours.__name__}", f"{t_ours / n_series * 1e6:,.0f} µs", "-", "-"))
            continue
        t_ref, want = timed(lambda f=theirs: [float(f(panel[:, j])) for j in range(n_series)], repeat=1)
        err = max(abs(a - b) for a, b in zip(got, want, strict=True))
        rows.append(
            (
                f"{method} {ours.__name__}",
                f"{t_ours / n_series * 1e6:,.0f} µs",
                f"{name}: {t_ref / n_series * 1e6:,.0f} µs",
                f"{err:.1e}",
            )
        )
    return rows


def bench_validate() -> tuple[float, str]:
    from risk.book import Account, Order, Position
    from risk.limits import Limits, validate

    rng = np.random.default_rng(1)
    syms = [f"S{i:02d}" for i in range(50)]
    sectors = ["tech", "energy", "health", "fin", "util"]
    book = [
        Position(
            symbol=s,
            qty=float(rng.integers(10, 100)),
            price=float(rng.uniform(20, 200)),
            sector=sectors[i % 5],
        )
        for i, s in enumerate(syms)
    ]
    equity = sum(p.qty * p.price for p in book) * 1.2
    idx = pd.bdate_range("2024-01-01", periods=63)
    returns = pd.DataFrame(rng.normal(0, 0.01, (63, 51)), index=idx, columns=[*syms, "NEW"])
    limits = Limits(
        max_positions=60, max_risk_per_trade=0.05, max_portfolio_risk=2.0, max_symbol_concentration=0.2,
        max_sector_concentration=0.5, max_delta=1.5, max_correlation=0.9,
    )  # fmt: skip
    account = Account(equity=equity, cash=0.2 * equity, peak_equity=equity * 1.05)
    order = Order(symbol="NEW", qty=10, price=50.0, side="buy", sector="tech", stop_price=45.0)
    n = 200
    t, check = timed(lambda: [validate(order, account, book, limits, returns) for _ in range(n)])
    return n / t, check[-1].summary()


def bench_stress(n_options: int) -> tuple[float, float, int]:
    from risk.book import Position
    from risk.stress import StressConfig, hypothetical

    rng = np.random.default_rng(2)
    as_of = dt.date(2025, 1, 2)
    spot = 500.0
    book = [
        Position(
            symbol="SPY", right="C" if rng.random() < 0.5 else "P", strike=float(round(spot * rng.uniform(0.7, 1.3))),
            expiry=as_of + dt.timedelta(days=int(rng.integers(7, 400))), qty=float(rng.integers(-20, 20) or 1),
            price=1.0, underlying_price=spot, iv=float(rng.uniform(0.1, 0.5)), multiplier=100,
        )
        for _ in range(n_options)
    ]  # fmt: skip
    cfg = StressConfig(as_of=as_of, spot_shocks=tuple(np.linspace(-0.3, 0.3, 10)), vol_shocks=(0.0, 0.1))
    t, table = timed(lambda: hypothetical(book, cfg, equity=1e7))
    return t, t / (len(table) * n_options), len(table)


def bench_optimizers() -> list[tuple[str, str, str]]:
    from risk import portfolio as pf

    rng = np.random.default_rng(3)
    n_assets, n_days = 50, 1260
    factor = rng.normal(0.0004, 0.01, (n_days, 1))
    loadings = rng.uniform(0.3, 1.2, (1, n_assets))
    r = factor * loadings + rng.normal(0.0002, 0.012, (n_days, n_assets))
    returns = pd.DataFrame(r, columns=[f"A{i:02d}" for i in range(n_assets)])
    bounds = pf.WeightBounds(upper=0.06)
    cov = returns.cov()
    out = []
    for name, fn in (
        ("min variance", lambda: pf.min_variance(returns, bounds)),
        ("mean-variance (8 %/yr)", lambda: pf.mean_variance(returns, 0.08 / 252, bounds)),
        ("risk parity, bounded", lambda: pf.risk_parity(returns, bounds)),
        ("HRP, bounded", lambda: pf.hierarchical_risk_parity(returns, bounds)),
    ):
        t, w = timed(fn, repeat=2)
        rc = pf.risk_contributions(w, cov)
        out.append(
            (name, f"{t * 1e3:,.0f} ms", f"max w {w.max():.3f}, risk shares {rc.min():.3f}..{rc.max():.3f}")
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=50, help="return series for the VaR figures")
    ap.add_argument("--options", type=int, default=2000, help="option positions in the stress book")
    args = ap.parse_args()

    t = Table(title=f"VaR/CVaR at 95 %, {args.series} series × 20 years daily: time per series")
    for col in ("quantlake", "time", "reference", "max |difference|"):
        t.add_column(col)
    for row in bench_var(args.series):
        t.add_row(*row)
    console.print(t)

    rate, summary = bench_validate()
    console.print(
        f"validate(): {rate:,.0f} checks/s (50-position book, every limit incl. correlation); last: {summary}"
    )

    total, per, scenarios = bench_stress(args.options)
    console.print(
        f"stress: {scenarios} scenarios × {args.options:,} options fully repriced in {total * 1e3:,.0f} ms "
        f"({per * 1e9:,.0f} ns per option-scenario)"
    )
    o = Table(title="optimizers, 50 assets × 5 years daily, each weight ≤ 6 % (riskfolio-lib)")
    for col in ("method", "time", "result"):
        o.add_column(col)
    for row in bench_optimizers():
        o.add_row(*row)
    console.print(o)


if __name__ == "__main__":
    main()
