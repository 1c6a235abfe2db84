"""Risk and sizing functions refuse NaN/inf inputs and objects that are not risk.book models, with one
clear error naming the argument (instead of silently sizing 0 or failing deep inside with AttributeError)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantlake.errors import ConfigError
from risk import sizing
from risk.book import Account, Greeks, Order, Position
from risk.limits import validate

NAN = math.nan


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: sizing.percent_of_equity(NAN, 0.1, 250.0), "equity"),
        (lambda: sizing.percent_of_equity(100_000, NAN, 250.0), "fraction"),
        (lambda: sizing.percent_of_equity(100_000, 0.1, NAN), "price"),
        (lambda: sizing.risk_based_quantity(50_000, 0.01, NAN), "risk_per_unit"),
        (lambda: sizing.risk_based_quantity(math.inf, 0.01, 2.5), "equity"),
        (lambda: sizing.spread_contracts(50_000, 0.02, NAN), "max_risk_per_share"),
        (lambda: sizing.kelly_fraction(NAN, 1.5), "win_rate"),
        (lambda: sizing.kelly_fraction(0.55, NAN), "payoff_ratio"),
        (lambda: sizing.kelly_mean_variance(NAN, 0.04), "mean"),
        (lambda: sizing.fractional_kelly(NAN), "kelly"),
        (lambda: sizing.credit_spread_max_risk(5.0, NAN), "credit"),
        (lambda: sizing.stop_risk_per_unit(NAN, 95.0), "entry"),
        (lambda: sizing.vol_target_leverage(0.2, NAN), "target_vol"),
        (lambda: sizing.fixed_quantity(NAN), "qty"),
    ],
)
def test_sizing_refuses_nan(call, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=name):
        call()


def test_arrays_keep_their_documented_missing_values() -> None:
    """A price series with NaN before a symbol listed sizes 0 there (documented), the rest normally."""
    out = sizing.percent_of_equity(100_000, 0.1, np.array([np.nan, 250.0]))
    assert out.tolist() == [0.0, 40.0]


def test_models_refuse_nan() -> None:
    with pytest.raises(ConfigError, match=r"Account\.cash"):
        Account(equity=100_000, cash=NAN)
    with pytest.raises(ConfigError, match="delta"):
        Greeks(delta=NAN)


def test_validate_refuses_what_is_not_an_order_account_or_position() -> None:
    account = Account(equity=100_000)
    order = Order(symbol="SPY", price=400.0, qty=10, side="buy")
    with pytest.raises(ConfigError, match=r"order must be a risk\.book\.Order or ComboOrder, got dict"):
        validate({"symbol": "SPY", "qty": 10}, account)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"account must be a risk\.book\.Account, got float"):
        validate(order, 100_000.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"positions\[1\] must be a risk\.book\.Position, got Order"):
        validate(order, account, [Position(symbol="SPY", price=400.0, qty=5), order])  # type: ignore[list-item]
