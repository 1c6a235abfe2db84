"""Option backtests that opt in to pre-trade risk limits (``risk_limits``): generous limits change nothing,
tight ones refuse the openings that break them and say which limit, for spreads measured by their max loss."""

from __future__ import annotations

from typing import Any

import pytest

from backtests.options.config import parse_config
from backtests.options.runner import run_backtest
from quantlake.errors import ConfigError

BASE: dict[str, Any] = {
    "name": "pcs_limits", "underlying": "^GSPC", "start": "2015-03-02", "end": "2015-08-31",
    "strategy": {"kind": "put_credit_spread", "exits": {"exit_regimes": []}},
    "market": {"rate": {"constant": 0.01}}, "outputs": {"plots": False},
}


def run(sample_lake: Any, **limits: Any) -> Any:
    return run_backtest(parse_config({**BASE, **({"risk_limits": limits} if limits else {})}), sample_lake)


def test_limits_refuse_only_what_breaks_them(sample_lake) -> None:  # type: ignore[no-untyped-def]
    free = run(sample_lake)
    assert free.metrics["positions"] >= 3 and free.rejections.empty
    # generous limits (a 2 %-risk spread is far inside them): the very same trades
    same = run(sample_lake, max_risk_per_trade=0.05, max_delta=1.0, max_theta=0.01)
    assert same.trades.equals(free.trades) and same.rejections.empty
    # each spread risks about 2 % of equity (the strategy's sizing): a 1 % cap refuses every opening
    tight = run(sample_lake, max_risk_per_trade=0.01)
    assert tight.metrics["positions"] == 0 and len(tight.trades) == 0
    reasons = tight.rejections["reason"]
    assert len(reasons) > 0 and reasons.str.startswith("risk limits: trade risk").all()
    # a delta cap the short put spreads' delta exceeds
    capped = run(sample_lake, max_delta=0.001)
    assert capped.metrics["positions"] == 0
    assert capped.rejections["reason"].str.contains("portfolio delta").all()


def test_bad_limits_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"risk_limits: max_theta: Input should be greater than 0"):
        parse_config({**BASE, "risk_limits": {"max_theta": -1}})
    with pytest.raises(ConfigError, match=r"risk_limits: max_risk_per_traed: Extra inputs"):
        parse_config({**BASE, "risk_limits": {"max_risk_per_traed": 0.01}})
