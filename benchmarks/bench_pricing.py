"""Throughput and accuracy of :mod:`features.pricing` on 1,000,000 random European options.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_pricing.py                 # 1,000,000 options
    .venv/bin/python benchmarks/bench_pricing.py -n 200000 --sample 5000

Compared in the same run:

* **QuantLib** (``AnalyticEuropeanEngine`` price + Greeks, ``impliedVolatility``): one Python call per option,
  so it runs on a random subsample of ``--sample`` options and its time is **extrapolated** to the full
  set (reported as such); errors are ours minus QuantLib's on that subsample.
* **scipy ``brentq`` loop**: the textbook implied vol (scalar Black-Scholes with ``math.erf``, bracket
  [1e-6, 10], xtol 1e-15) on the same subsample, extrapolated.
* **scipy ``optimize.newton`` vectorized** over the whole set (array Newton with the analytic vega,
  started at 0.3): the best vectorized implied-vol solver installed (py_vollib_vectorized is not
  installed; quantlake's stack notes record it as similar in speed but returning 0.0 silently for
  thousands of hard cases).

Cases: S in [10, 400], K = S exp(U(-0.6, 0.6)), T from 1 to 1095 days (ACT/365), r in [-1 %, 8 %],
q in [0, 5 %], sigma in [3 %, 150 %], calls and puts.  IV inputs are our own Black-Scholes prices at the
true sigma.  The IV error is reported where the price pins sigma down (vega >= 1e-4: the price is exact
to a few ulps of S, ~1e-13, so sigma is recoverable to ~1e-9 or better there) and, separately, overall.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console(width=150)


def cases(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    S = rng.uniform(10, 400, n)
    return {
        "right": np.where(rng.random(n) < 0.5, "C", "P"),
        "S": S,
        "K": S * np.exp(rng.uniform(-0.6, 0.6, n)),
        "days": rng.integers(1, 1096, n),
        "r": rng.uniform(-0.01, 0.08, n),
        "q": rng.uniform(0.0, 0.05, n),
        "sigma": rng.uniform(0.03, 1.5, n),
    }


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (the machine is shared) and the last result."""
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ----------------------------------------------------------------------------------------------- references
def _bs_scalar(call: bool, S: float, K: float, T: float, r: float, q: float, sigma: float) -> float:
    sd = sigma * math.sqrt(T)
    d1 = (math.log(S / K) + (r - q) * T) / sd + 0.5 * sd
    d2 = d1 - sd
    n = lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0))  # noqa: E731
    if call:
        return S * math.exp(-q * T) * n(d1) - K * math.exp(-r * T) * n(d2)
    return K * math.exp(-r * T) * n(-d2) - S * math.exp(-q * T) * n(-d1)


def brentq_iv(price: np.ndarray, c: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    from scipy.optimize import brentq

    out = np.full(idx.size, np.nan)
    T = c["days"] / 365.0
    for j, i in enumerate(idx.tolist()):
        args = (c["right"][i] == "C", c["S"][i], c["K"][i], T[i], c["r"][i], c["q"][i])
        f = lambda s, a=args, p=price[i]: _bs_scalar(*a, s) - p  # noqa: E731
        with contextlib.suppress(ValueError):  # no sign change: the price is outside what [1e-6, 10] spans
            out[j] = brentq(f, 1e-6, 10.0, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)
    return out


def newton_iv(price: np.ndarray, c: dict[str, np.ndarray]) -> np.ndarray:
    """scipy's vectorized Newton with the analytic vega, from 0.3 (failures and negatives → NaN)."""
    from scipy.optimize import newton

    from features.pricing import bs_greeks, bs_price

    T = c["days"] / 365.0
    args = (c["S"], c["K"], T, c["r"], c["q"])
    f = lambda s: bs_price(c["right"], *args, s) - price  # noqa: E731
    fp = lambda s: bs_greeks(c["right"], *args, s)["vega"]  # noqa: E731
    with np.errstate(all="ignore"):
        s = newton(f, np.full(price.size, 0.3), fprime=fp, tol=1e-14, maxiter=100, full_output=False)
    s = np.asarray(s, dtype=float)
    return np.where((s > 0) & np.isfinite(s), s, np.nan)


def quantlib(
    c: dict[str, np.ndarray], idx: np.ndarray, price: np.ndarray
) -> tuple[dict[str, np.ndarray], float, float]:
    """QuantLib price + Greeks and implied vol on ``idx``: (values, seconds for Greeks, seconds for IV)."""
    import QuantLib as ql

    today = ql.Date(15, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    out: dict[str, list[float]] = {k: [] for k in ("price", "delta", "gamma", "vega", "theta", "rho", "iv")}
    spot, q_rate, r_rate, vol = (
        ql.SimpleQuote(1.0),
        ql.SimpleQuote(0.0),
        ql.SimpleQuote(0.0),
        ql.SimpleQuote(0.2),
    )
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(q_rate), dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(r_rate), dc)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)
        ),
    )
    engine = ql.AnalyticEuropeanEngine(process)

    def option(i: int) -> ql.VanillaOption:
        """Set the shared market quotes and build option i (each option observes the quotes, so options are
        built one at a time and dropped: thousands alive at once make every quote update O(n))."""
        spot.setValue(float(c["S"][i]))
        q_rate.setValue(float(c["q"][i]))
        r_rate.setValue(float(c["r"][i]))
        vol.setValue(float(c["sigma"][i]))
        kind = ql.Option.Call if c["right"][i] == "C" else ql.Option.Put
        opt = ql.VanillaOption(
            ql.PlainVanillaPayoff(kind, float(c["K"][i])), ql.EuropeanExercise(today + int(c["days"][i]))
        )
        opt.setPricingEngine(engine)
        return opt

    t0 = time.perf_counter()
    for i in idx.tolist():
        opt = option(i)
        out["price"].append(opt.NPV())
        for k in ("delta", "gamma", "vega", "theta", "rho"):
            out[k].append(getattr(opt, k)())
    t_greeks = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in idx.tolist():
        opt = option(i)
        try:
            out["iv"].append(opt.impliedVolatility(float(price[i]), process, 1e-15, 500, 1e-7, 10.0))
        except RuntimeError:
            out["iv"].append(math.nan)
    t_iv = time.perf_counter() - t0
    return {k: np.asarray(v) for k, v in out.items()}, t_greeks, t_iv


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="options (default 1,000,000)")
    ap.add_argument("--sample", type=int, default=20_000, help="subsample for QuantLib and brentq")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from features.pricing import bs_greeks, bs_price, implied_vol

    n = args.n
    c = cases(n, args.seed)
    T = c["days"] / 365.0
    num = (c["S"], c["K"], T, c["r"], c["q"])
    bs_price(c["right"][:10], *(a[:10] for a in num), c["sigma"][:10])  # warm caches
    implied_vol(np.ones(10), c["right"][:10], *(a[:10] for a in num))

    t_price, price = timed(lambda: bs_price(c["right"], *num, c["sigma"]))
    t_greeks, greeks = timed(lambda: bs_greeks(c["right"], *num, c["sigma"]))
    t_iv, iv = timed(lambda: implied_vol(price, c["right"], *num))
    t_newton, iv_newton = timed(lambda: newton_iv(price, c), repeat=1)

    rng = np.random.default_rng(args.seed + 1)
    idx = np.sort(rng.choice(n, size=min(args.sample, n), replace=False))
    ref, t_ql_greeks, t_ql_iv = quantlib(c, idx, price)
    t_brent, iv_brent = timed(lambda: brentq_iv(price, c, idx), repeat=1)

    vega = np.asarray(greeks["vega"])
    eps = np.finfo(float).eps

    def iv_stats(est: np.ndarray, sel: np.ndarray) -> str:
        """Max error where vega >= 1e-2 and where 1e-4 <= vega < 1e-2, NaNs, and answers worse than the
        price can pin down: |error| > max(1e-10, 16 eps S / vega) (the price is exact to a few ulps of S)."""
        truth, v, spot = c["sigma"][sel], vega[sel], c["S"][sel]
        err = np.abs(est - truth)
        hi, mid = v >= 1e-2, (v >= 1e-4) & (v < 1e-2)
        fin = np.isfinite(est)
        bound = np.maximum(1e-10, 16 * eps * spot / np.maximum(v, 1e-300))
        bad = int((fin & (err > bound)).sum())
        nan_hi = int((~fin & (v >= 1e-4)).sum())

        def mx(m: np.ndarray) -> str:
            return f"{np.max(err[m & fin]):.1e}" if (m & fin).any() else "-"

        return f"{mx(hi)} | {mx(mid)} | NaN where vega>=1e-4: {nan_hi} | worse than price allows: {bad}"

    everything = np.arange(n)
    t = Table(
        title=f"{n:,} random European options (ours: best of 3 runs; 2-core machine shared with other jobs)"
    )
    for col in ("what", "implementation", "seconds", "options/s", "error"):
        t.add_column(col, justify="right" if col in ("seconds", "options/s") else "left")
    scale = n / idx.size
    rel = lambda a, b: np.max(np.abs(a - b) / np.maximum(1, np.abs(b)))  # noqa: E731
    t.add_row("price", "features.pricing.bs_price", f"{t_price:.3f}", f"{n / t_price:,.0f}",
              f"vs QuantLib: {rel(price[idx], ref['price']):.0e} (abs, or rel above 1)")  # fmt: skip
    gerr = ", ".join(
        f"{g} {rel(np.asarray(greeks[g])[idx], ref[g]):.0e}"
        for g in ("delta", "gamma", "vega", "theta", "rho")
    )
    t.add_row("price + 5 Greeks", "features.pricing.bs_greeks", f"{t_greeks:.3f}", f"{n / t_greeks:,.0f}",
              f"vs QuantLib: {gerr}")  # fmt: skip
    t.add_row("price + 5 Greeks", f"QuantLib analytic engine, loop (x{scale:,.0f} from {idx.size:,})",
              f"{t_ql_greeks * scale:.1f}", f"{idx.size / t_ql_greeks:,.0f}", "reference")  # fmt: skip
    t.add_row("implied vol", "features.pricing.implied_vol", f"{t_iv:.3f}", f"{n / t_iv:,.0f}",
              iv_stats(iv, everything))  # fmt: skip
    t.add_row("implied vol", "scipy.optimize.newton, vectorized", f"{t_newton:.3f}", f"{n / t_newton:,.0f}",
              iv_stats(iv_newton, everything))  # fmt: skip
    t.add_row("implied vol", f"scipy brentq loop (x{scale:,.0f} from {idx.size:,})", f"{t_brent * scale:.1f}",
              f"{idx.size / t_brent:,.0f}", iv_stats(iv_brent, idx))  # fmt: skip
    t.add_row("implied vol", f"QuantLib impliedVolatility loop (x{scale:,.0f} from {idx.size:,})",
              f"{t_ql_iv * scale:.1f}", f"{idx.size / t_ql_iv:,.0f}", iv_stats(ref["iv"], idx))  # fmt: skip
    console.print(t)
    console.print(
        "[dim]IV error columns: max |sigma error| where vega >= 1e-2 | where 1e-4 <= vega < 1e-2 | ... "
        f"(vega >= 1e-2 on {(vega >= 1e-2).mean():.1%} of the options, >= 1e-4 on {(vega >= 1e-4).mean():.1%}). "
        "'worse than price allows': |error| > max(1e-10, 16 eps S / vega), i.e. more than the rounding of "
        "the Black-Scholes price itself can explain.  Errors of the subsampled rows are on those rows.[/]"
    )


if __name__ == "__main__":
    main()
