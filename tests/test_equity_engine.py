"""The sweep engine against ``vectorbt.Portfolio.from_signals`` itself, wherever the two must agree: random
long/short signals, stops (fixed, trailing, take-profit, per-bar), fees, fixed fees and slippage, with
signals filling at a close (vectorbt's order of events: stops first) and at the open without stops.  Every
order record and every account value must be identical; the engine's one difference (a next-open signal
order before the bar's stops) is pinned in ``test_equity_fills.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backtests.equity import engine as E
from backtests.equity.jit import enable_cache


def _market(seed: int, n_rows: int = 300, n_sym: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_rows, n_sym)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.015, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.015, close.shape)))
    return {"close": close, "open": open_, "high": high, "low": low}


CASES: dict[str, dict[str, Any]] = {
    "long, stop, trailing, fixed fees": {"shorts": False, "sl": 0.04, "trail": True, "tp": np.nan, "fixed": 1.0},
    "long and short, stop and target": {"shorts": True, "sl": 0.05, "trail": False, "tp": 0.08, "fixed": 0.0},
    "per-bar stop read on the signal bar": {"shorts": False, "sl": "per_bar", "trail": False, "tp": np.nan, "fixed": 0.0},
    "no stops, signals at the open": {"shorts": True, "sl": np.nan, "trail": False, "tp": np.nan, "fixed": 0.0, "open": True},
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_engine_equals_vectorbt_from_signals_where_the_fill_order_cannot_matter(case: str) -> None:
    import vectorbt as vbt

    enable_cache()
    spec = CASES[case]
    m = _market(list(CASES).index(case))
    n_rows, n_sym = m["close"].shape
    n_combos = 4
    n_cols = n_sym * n_combos
    rng = np.random.default_rng(7)
    sig = {k: rng.random((n_rows, n_cols)) < 0.04 for k in ("le", "lx", "se", "sx")}
    at_open = bool(spec.get("open"))
    lag = 1
    col_sym = np.tile(np.arange(n_sym), n_combos)
    price = m["open"] if at_open else m["close"]
    fees = rng.uniform(0, 0.002, n_cols)
    slip = rng.uniform(0, 0.002, n_cols)
    sl: Any = spec["sl"]
    if sl == "per_bar":
        sl = rng.uniform(0.02, 0.08, (n_rows, n_cols))
    res = E.simulate(
        close=m["close"], price=price, open_=m["open"], high=m["high"], low=m["low"],
        signals_at_open=np.full(n_sym, at_open), entries=sig["le"], exits=sig["lx"],
        short_entries=sig["se"] if spec["shorts"] else None, short_exits=sig["sx"] if spec["shorts"] else None,
        col_sym=col_sym, lag=lag, fees=fees, slippage=slip, fixed_fees=spec["fixed"], init_cash=1000.0,
        sl_stop=sl, sl_trail=spec["trail"], tp_stop=spec["tp"], as_returns=False,
    )  # fmt: skip

    def lagged(a: np.ndarray, fill: Any) -> np.ndarray:
        out = np.empty_like(a)
        out[0] = fill
        out[1:] = a[:-1]
        return out

    tile = (lambda a: a[:, col_sym])  # noqa: E731
    kw: dict[str, Any] = {}
    if spec["shorts"]:
        kw = {"short_entries": lagged(sig["se"], False), "short_exits": lagged(sig["sx"], False)}
    use_stops = not (np.all(np.isnan(np.asarray(sl, dtype=float))) and np.isnan(spec["tp"]))
    if use_stops:
        kw |= {"open": tile(m["open"]), "high": tile(m["high"]), "low": tile(m["low"]),
               "sl_stop": lagged(sl, np.nan) if np.ndim(sl) == 2 else sl, "sl_trail": spec["trail"],
               "tp_stop": spec["tp"], "stop_entry_price": "price", "stop_exit_price": "stopmarket"}  # fmt: skip
    pf = vbt.Portfolio.from_signals(
        tile(m["close"]), lagged(sig["le"], False), lagged(sig["lx"], False), price=tile(price),
        fees=fees[None, :], slippage=slip[None, :], fixed_fees=spec["fixed"], init_cash=1000.0,
        size=np.inf, use_stops=use_stops, freq="1D", **kw,
    )  # fmt: skip
    ours = res.records
    theirs = pf.orders.values
    assert len(theirs) > 100
    for f in ("col", "idx", "side"):
        np.testing.assert_array_equal(ours[f], theirs[f], err_msg=f)
    for f in ("size", "price", "fees"):
        np.testing.assert_array_equal(ours[f], theirs[f], err_msg=f)
    np.testing.assert_array_equal(res.out, pf.value().to_numpy())
    np.testing.assert_array_equal(res.final_value, pf.value().to_numpy()[-1])
    np.testing.assert_array_equal(res.exposure, (pf.assets().to_numpy() != 0).mean(axis=0))


def test_parallel_blocks_and_one_thread_agree() -> None:
    m = _market(3, n_rows=400, n_sym=5)
    rng = np.random.default_rng(1)
    n_cols = 5 * 40
    kw: dict[str, Any] = dict(
        close=m["close"], price=m["open"], open_=m["open"], high=m["high"], low=m["low"],
        signals_at_open=np.ones(5, bool), entries=rng.random((400, n_cols)) < 0.05,
        exits=rng.random((400, n_cols)) < 0.05, col_sym=np.tile(np.arange(5), 40), lag=1,
        fees=0.001, slippage=0.001, fixed_fees=0.0, init_cash=1e4, sl_stop=0.05, sl_trail=True,
    )  # fmt: skip
    a, b = E.simulate(**kw, threads=1), E.simulate(**kw)
    np.testing.assert_array_equal(a.out, b.out)
    np.testing.assert_array_equal(a.records, b.records)
