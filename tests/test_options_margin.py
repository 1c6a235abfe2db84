"""Buying-power formulas against hand-worked broker numbers (Reg-T / CBOE conventions)."""

from __future__ import annotations

import numpy as np
import pytest

from backtests.options.config import MarginConfig
from backtests.options.margin import (
    naked_cash,
    payoff_floor,
    position_requirement,
    short_calls_to_cover,
    stock_requirement,
)

CFG = MarginConfig()
C, P = 1.0, -1.0


def req(qty: list[float], strike: list[float], phi: list[float], mark: list[float], spot: float,
        cfg: MarginConfig = CFG, cover: float = 0.0) -> float:
    return position_requirement(np.array(qty, float), np.array(strike, float), np.array(phi, float),
                                np.array(mark, float), spot, cfg, cover)


def test_cash_secured_put_holds_the_strike() -> None:
    # 2 short 95 puts marked at 2.00: hold 2 x 9,500 cash; on equity (which counts -400) the requirement is 18,600
    assert req([-2], [95], [P], [2.0], 100.0) == pytest.approx(19_000 - 400)


def test_put_credit_spread_is_width_minus_credit() -> None:
    # short 95 put at 2.00, long 90 put at 1.00 (credit 1.00): max loss 5 - 1 = 4 per share, 400 per spread
    assert req([-1, 1], [95, 90], [P, P], [2.0, 1.0], 100.0) == pytest.approx(400.0)


def test_iron_condor_counts_only_the_wider_side() -> None:
    # put side 95/90 (width 5), call side 105/115 (width 10), marks 2.0/1.0 and 1.5/0.5: credit 2.0
    r = req([-1, 1, -1, 1], [95, 90, 105, 115], [P, P, C, C], [2.0, 1.0, 1.5, 0.5], 100.0)
    assert r == pytest.approx(10 * 100 - 2.0 * 100)


def test_covered_call_and_long_options_need_no_margin_beyond_their_cost() -> None:
    # 1 short call covered by 100 shares: the position's requirement is minus its value (the stock pays for it)
    assert req([-1], [105], [C], [1.5], 100.0, cover=100.0) == pytest.approx(-150.0)
    assert req([2], [100], [P], [3.0], 100.0) == pytest.approx(600.0)  # long puts: their value
    assert short_calls_to_cover(np.array([-3.0, 1.0]), np.array([C, C])) == 200.0


def test_naked_short_call_reg_t() -> None:
    # S 100, short 110 call marked 1.05: premium + max(20 % x 100 - 10 OTM, 10 % x 100) = 1.05 + 10 per share
    assert naked_cash(np.array([-1.0]), np.array([110.0]), np.array([C]), np.array([1.05]), 100.0, CFG) == \
        pytest.approx(100 * (1.05 + 10.0))
    assert req([-1], [110], [C], [1.05], 100.0) == pytest.approx(100 * 10.0)
    # in the money call: 20 % x 100 + 0 OTM = 20 per share
    assert req([-1], [90], [C], [10.5], 100.0) == pytest.approx(100 * 20.0)


def test_naked_short_put_reg_t_and_strangle() -> None:
    reg_t = MarginConfig(short_puts="reg_t")
    # short 80 put, S 100: max(20 - 20 OTM, 10 % x 80 = 8) = 8 per share
    assert req([-1], [80], [P], [0.5], 100.0, reg_t) == pytest.approx(800.0)
    # strangle 80P / 110C: call side 100 x (1.05 + 10) = 1,105 beats put side 100 x (0.5 + 8) = 850, plus the
    # put's premium 50: cash 1,155; on equity minus the two marks (105 + 50) = 1,000
    r = req([-1, -1], [80, 110], [P, C], [0.5, 1.05], 100.0, reg_t)
    assert r == pytest.approx(1_155 - 155)


def test_payoff_floor_and_stock() -> None:
    assert payoff_floor(np.array([-1.0]), np.array([50.0]), np.array([C])) == -np.inf
    assert payoff_floor(np.array([-1.0]), np.array([50.0]), np.array([C]), cover_shares=100) == 0.0
    assert payoff_floor(np.array([-1.0]), np.array([50.0]), np.array([P])) == -5000.0
    assert stock_requirement(100, 50.0, CFG) == 5000.0
    assert stock_requirement(100, 50.0, MarginConfig(stock=0.5)) == 2500.0
    assert stock_requirement(-100, 50.0, CFG) == pytest.approx(2500.0)  # 150 % incl. the 5,000 proceeds
