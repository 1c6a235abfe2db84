"""The independent check: vectorbt sweeps on the sample data reproduced trade by trade, to the last bit, by a
plain event loop (every strategy kind, stops, costs, filters) and by backtrader (crossover strategies with
backtrader's own indicators); metrics per (combination, symbol) recomputed from the reference's equity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.equity.config import SweepConfig, validate
from backtests.equity.reference import check_chunk, run_reference
from backtests.equity.sweep import detail, prepare, run_sweep, simulate_chunk
from quantlake.lake import Lake


@pytest.fixture(scope="module")
def ro_lake(sample_lake_dir: Path) -> Lake:
    """The session's sample lake, read only (nothing here writes)."""
    return Lake(sample_lake_dir)


SYMS = ["SPY", "AAPL", "GOOG", "GLD"]  # GLD is close-only: it trades at the next close
CASES: dict[str, dict[str, Any]] = {
    "ema_cross": {"strategy": {"kind": "ema_cross", "params": {"fast": [5, 12], "slow": [26, 40]}}},
    "sma_cross+sl/tp": {
        "strategy": {"kind": "sma_cross", "params": {"fast": 10, "slow": 50}},
        "costs": {"fees": 0.001, "slippage": 0.002, "sl_stop": [0.05, 0.1], "tp_stop": [None, 0.2]},
    },
    "rsi_reversion+trailing+fixed fees": {
        "strategy": {"kind": "rsi_reversion", "params": {"window": [10, 14]}},
        "costs": {"fees": 0.0005, "fixed_fees": 1.0, "tsl_stop": 0.08},
    },
    "ma_atr_trend": {"strategy": {"kind": "ma_atr_trend", "params": {"atr_mult": [2.0, 3.0], "trailing": [True, False]}}},
    "bollinger+fill at close": {
        "strategy": {"kind": "bollinger_reversion", "params": {"k": [1.5, 2.0]}},
        "execution": {"fill": "close"},
        "costs": {"fees": 0.0, "slippage": 0.0, "tp_stop": 0.1},
    },
    "tsmom+universe": {
        "strategy": {"kind": "tsmom", "params": {"lookback": [63, 126]}},
        "universe": {"min_price": 10, "max_price": 100},
    },
    "macd_trend": {"strategy": {"kind": "macd_trend", "params": {"above_zero": [True, False]}}, "chunk_size": 3},
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_vectorbt_matches_the_event_loop_reference(ro_lake: Lake, case: str) -> None:
    cfg = validate(SweepConfig, {"symbols": SYMS, "costs": {"fees": 0.001, "slippage": 0.001}, **CASES[case]})
    _, tasks, _, _ = prepare(cfg, ro_lake)
    out = pd.concat([check_chunk(t) for t in tasks], ignore_index=True)
    assert out["same_bars"].all(), out[~out["same_bars"]]
    assert out["trades_vectorbt"].sum() > 20
    assert out["max_rel_diff"].max() < 1e-12
    assert out["final_rel_diff"].max() < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize(
    ("symbol", "kind", "params", "bt_params"),
    [
        ("SPY", "ema_cross", {"fast": 10, "slow": 30, "rsi_filter": "off", "macd_confirm": False}, {}),
        ("AAPL", "ema_cross", {"fast": 5, "slow": 20, "rsi_filter": "not_overbought", "macd_confirm": True},
         {"macd_confirm": True, "rsi_not_overbought": True}),
        ("GOOG", "sma_cross", {"fast": 20, "slow": 50}, {}),
    ],
)  # fmt: skip
def test_vectorbt_matches_backtrader(
    ro_lake: Lake, symbol: str, kind: str, params: dict[str, Any], bt_params: dict[str, Any]
) -> None:
    """Same entries, exits, fill prices, sizes and final value as backtrader with its own indicators."""
    from backtests.equity.btcheck import run_backtrader

    fees, slip = 0.001, 0.0005
    cfg = validate(SweepConfig, {"symbols": [symbol], "strategy": {"kind": kind, "params": params},
                                 "costs": {"fees": fees, "slippage": slip}})  # fmt: skip
    _, tasks, ctx, _ = prepare(cfg, ro_lake)
    sim = simulate_chunk(tasks[0])
    b = ctx["bars"]
    bars = pd.DataFrame({f: getattr(b, f)[:, 0] for f in ("open", "high", "low", "close", "volume")}, index=b.index)
    ref = run_backtrader(bars, kind.split("_")[0], params["fast"], params["slow"], fees=fees, slippage=slip,
                         **bt_params)  # fmt: skip
    rec = sim.pf.trades.values
    assert len(rec) == len(ref.trades) > 10
    for v, t in zip(rec, ref.trades, strict=True):
        assert b.index[v["entry_idx"]] == t.entry_date
        assert v["entry_price"] == pytest.approx(t.entry_price, rel=1e-12)
        assert v["size"] == pytest.approx(t.size, rel=1e-9)
        if t.exit_date is not None:
            assert b.index[v["exit_idx"]] == t.exit_date
            assert v["exit_price"] == pytest.approx(t.exit_price, rel=1e-12)
    assert sim.final_value[0] == pytest.approx(ref.final_value, rel=1e-9)


def test_metrics_per_unit_and_combined_from_the_reference_equity(ro_lake: Lake) -> None:
    """INTC (1995-2004) and SPY (2007-2017) share no dates: each is measured over its own life."""
    cfg = validate(SweepConfig, {"symbols": ["SPY", "INTC"], "metric": "sortino",
                                 "strategy": {"kind": "sma_cross", "params": {"fast": [10, 20], "slow": 60}}})  # fmt: skip
    res = run_sweep(cfg, ro_lake)
    bars = res.context["bars"]
    from backtests.equity.simulate import order_price, shift
    from backtests.equity.strategies import STRATEGIES

    sig = STRATEGIES["sma_cross"].fn(bars, res.combos)
    price = order_price(bars, cfg.execution)
    n_s = len(bars.symbols)
    unit_returns = {}
    for row in res.table.itertuples(index=False):
        c, s = int(row.combo), bars.symbols.index(row.unit)
        col = c * n_s + s
        alive = ~np.isnan(bars.close[:, s])
        ref = run_reference(pd.Series(bars.close[:, s]).ffill().to_numpy(), price[:, s],
                            shift(sig.entries, False)[:, col], shift(sig.exits, False)[:, col],  # type: ignore[index]
                            fees=0.0005, slippage=0.0005)  # the config defaults  # fmt: skip
        v = pd.Series(ref.value[alive], index=bars.index[alive])
        r = v / v.shift(fill_value=cfg.execution.init_cash) - 1
        unit_returns[(c, row.unit)] = r
        assert row.total_return == pytest.approx(v.iloc[-1] / cfg.execution.init_cash - 1, rel=1e-9)
        assert row.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-9)
        assert row.max_drawdown == pytest.approx((v / v.cummax() - 1).min(), rel=1e-9)
        assert row.annualized_return == pytest.approx((v.iloc[-1] / 10_000) ** (252 / len(v)) - 1, rel=1e-9)
        closed = [t for t in ref.trades if t.pnl is not None]
        assert row.trades == len(ref.trades)
        assert row.win_rate == pytest.approx(sum(t.pnl > 0 for t in closed) / len(closed))  # type: ignore[operator]
        assert row.var_95 == pytest.approx(np.quantile(r, 0.05), rel=1e-9)
    # the combination's trial return: equal-weight mean of the units alive that day
    for c in res.combos.index:
        frame = pd.concat([unit_returns[(c, u)] for u in ("SPY", "INTC")], axis=1, sort=True)
        combined = frame.mean(axis=1)
        pd.testing.assert_series_equal(res.returns[c].dropna(), combined, check_names=False, check_freq=False)
    assert res.best == int(res.summary["sortino"].idxmax())
    assert res.dsr.n_trials == 2 and 0 <= res.dsr.dsr <= 1


def test_chunking_does_not_change_results(ro_lake: Lake) -> None:
    data = {"symbols": SYMS, "strategy": {"kind": "ema_cross", "params": {"fast": [5, 9], "slow": [21, 30]}}}
    one = run_sweep(validate(SweepConfig, {**data, "chunk_size": 1}), ro_lake)
    many = run_sweep(validate(SweepConfig, {**data, "chunk_size": 3}), ro_lake)
    key = ["combo", "unit"]
    pd.testing.assert_frame_equal(
        one.table.sort_values(key, ignore_index=True), many.table.sort_values(key, ignore_index=True)
    )
    pd.testing.assert_frame_equal(one.summary, many.summary)
    assert one.best == many.best and one.pbo.pbo == many.pbo.pbo


def test_regime_filter_gates_entries_and_forces_exits(sample_lake: Lake) -> None:
    from quantlake.tables import TableSpec

    spy = sample_lake.read("equity_bars", columns=["date"], where="symbol = ?", params=["SPY"])
    dates = pd.to_datetime(spy["date"]).sort_values()
    regime = np.where(dates.dt.month % 2 == 0, "low_vol", "high_vol")  # alternate every month
    import pyarrow as pa

    spec = TableSpec("features_regime", ("symbol", "date"),
                     pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("regime", pa.string())]), "date")  # fmt: skip
    sample_lake.merge("features_regime", pd.DataFrame({"symbol": "SPY", "date": dates.dt.date, "regime": regime}), spec)
    cfg = validate(SweepConfig, {"symbols": ["SPY"], "strategy": {"kind": "sma_cross", "params": {"fast": 5, "slow": 20}},
                                 "regime": {"allow": ["low_vol"], "symbol": "SPY"}})  # fmt: skip
    res = run_sweep(cfg, sample_lake)
    det = detail(res)
    lab = pd.Series(regime, index=pd.DatetimeIndex(dates))
    idx = res.context["bars"].index
    assert len(det.trades) > 10
    for t in det.trades.itertuples():
        e, x = idx.get_loc(t.entry_date), idx.get_loc(t.exit_date)
        held_signals = lab.loc[idx[e - 1] : idx[x - 2]] if x - 2 >= e - 1 else lab.iloc[:0]
        assert (held_signals == "low_vol").all()  # entered on an allowed bar, left when the regime changed
    unfiltered = run_sweep(cfg.model_copy(update={"regime": None}), sample_lake)
    assert unfiltered.table["trades"].sum() > res.table["trades"].sum()
    assert "lake.version.features_regime" not in res.context  # lineage is the lake's job
    assert "features_regime" in sample_lake.versions_read


def test_pairs_sweep(ro_lake: Lake) -> None:
    cfg = validate(SweepConfig, {"strategy": {"kind": "pairs", "params": {"lookback": [40, 60], "entry_z": 2.0,
                                                                          "exit_z": 0.5}},
                                 "pairs": ["GDX/GLD"]})  # fmt: skip
    res = run_sweep(cfg, ro_lake)
    assert res.table["unit"].unique().tolist() == ["GDX/GLD"]
    assert res.table["coint_pvalue"].between(0, 1).all()
    det = detail(res)
    legs = det.trades.pivot_table(index="entry_date", columns="leg", values="direction", aggfunc="first").dropna()
    assert len(legs) > 5
    assert (legs["Y"] != legs["X"]).all()  # long the spread = long Y, short X (and the reverse)
    assert set(res.table["fill"]) == {"next_close"}  # close-only legs


def test_unknown_symbol_is_a_clear_error(ro_lake: Lake) -> None:
    from quantlake.errors import InvalidSymbolError

    cfg = validate(SweepConfig, {"symbols": ["SPY", "ZZZZ"], "strategy": {"kind": "sma_cross"}})
    with pytest.raises(InvalidSymbolError, match="no equity_bars rows for ZZZZ"):
        run_sweep(cfg, ro_lake)
