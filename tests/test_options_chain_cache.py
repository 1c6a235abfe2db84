"""The shared chain source of option sweeps: every backtest reading it gets the numbers of a standalone run,
each day's chain is built once however many backtests read it, and threads share it."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from backtests.options.chain_cache import SharedChains, release, shared_chains
from backtests.options.config import parse_config
from backtests.options.runner import default_chain_source, run_backtest

BASE = {"name": "cache", "underlying": "^GSPC", "start": "2015-06-01", "end": "2015-12-31",
        "strategy": {"kind": "put_credit_spread", "exits": {"exit_regimes": []}}, "outputs": {"plots": False},
        "market": {"rate": {"constant": 0.01}}}


class CountingSource:
    def __init__(self, inner: object) -> None:
        self.inner, self.calls = inner, 0

    def chain(self, underlying: str, date: dt.date, mode: str = "observed_else_modeled") -> pd.DataFrame:
        self.calls += 1
        return self.inner.chain(underlying, date, mode)  # type: ignore[attr-defined]


def test_backtests_on_shared_chains_equal_standalone_runs(sample_lake) -> None:  # type: ignore[no-untyped-def]
    configs = [parse_config({**BASE, "strategy": {**BASE["strategy"], "short_put": {"by": "delta", "value": d}}})
               for d in (0.15, 0.30)]
    standalone = [run_backtest(c, sample_lake) for c in configs]
    counting = CountingSource(default_chain_source(sample_lake, 50))
    shared = SharedChains(counting)
    with ThreadPoolExecutor(2) as pool:  # two threads reading one cache
        swept = list(pool.map(lambda c: run_backtest(c, sample_lake, chains=shared), configs * 2))
    bars = len(standalone[0].daily)
    assert counting.calls == bars == len(shared)  # each day's chain built once for four backtests
    for i, res in enumerate(swept):
        ref = standalone[i % 2]
        assert res.metrics["positions"] > 3
        pd.testing.assert_series_equal(res.daily["equity"], ref.daily["equity"], rtol=1e-12)
        pd.testing.assert_frame_equal(res.trades, ref.trades)
    assert standalone[0].metrics["final_equity"] != standalone[1].metrics["final_equity"]


def test_one_cache_per_key_and_process(sample_lake) -> None:  # type: ignore[no-untyped-def]
    made = []

    def make() -> CountingSource:
        made.append(1)
        return CountingSource(default_chain_source(sample_lake, 50))

    a = shared_chains(("test", 1), make)
    assert shared_chains(("test", 1), make) is a and len(made) == 1
    assert shared_chains(("test", 2), make) is not a
    release(("test", 1))
    assert shared_chains(("test", 1), make) is not a
    release(("test", 1))
    release(("test", 2))
