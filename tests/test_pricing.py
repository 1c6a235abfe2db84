"""features.pricing against closed forms, published textbook values, limits and finite differences.

QuantLib comparisons on thousands of random cases are in test_pricing_quantlib.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from features.binomial import american_price, binomial_price
from features.pricing import (
    InvalidOptionRightError,
    bs_greeks,
    bs_price,
    implied_vol,
    parse_right,
)
from quantlake.errors import UserInputError

EPS = np.finfo(np.float64).eps


def random_cases(n: int, seed: int, hard: bool = False) -> dict[str, np.ndarray]:
    """Random option inputs; ``hard`` widens them to deep ITM/OTM, one-day expiries and extreme vols."""
    rng = np.random.default_rng(seed)
    S = rng.uniform(5, 500, n)
    if hard:
        K = S * np.exp(rng.uniform(-2.5, 2.5, n))
        T = np.exp(rng.uniform(np.log(1 / 365), np.log(5), n))
        sigma = np.exp(rng.uniform(np.log(0.01), np.log(4.0), n))
    else:
        K = S * np.exp(rng.uniform(-0.5, 0.5, n))
        T = rng.uniform(0.02, 3, n)
        sigma = rng.uniform(0.05, 1.0, n)
    return {
        "right": np.where(rng.random(n) < 0.5, "C", "P"),
        "S": S,
        "K": K,
        "T": T,
        "r": rng.uniform(-0.01, 0.10, n),
        "q": rng.uniform(0.0, 0.06, n),
        "sigma": sigma,
    }


# ----------------------------------------------------------------------------------------------- published
def test_published_european_values() -> None:
    # Hull, Options Futures and Other Derivatives, example "S0=42, K=40, r=10%, sigma=20%, T=0.5": c=4.76, p=0.81
    c, p = bs_price(["C", "P"], 42, 40, 0.5, 0.10, 0.0, 0.20)
    assert round(float(c), 2) == 4.76 and round(float(p), 2) == 0.81
    # Haug, The Complete Guide to Option Pricing Formulas (2nd ed.), ch. 1:
    #   Merton put on an index: S=100, X=95, T=0.5, r=10%, q=5%, sigma=20% -> 2.4648
    assert float(bs_price("P", 100, 95, 0.5, 0.10, 0.05, 0.20)) == pytest.approx(2.4648, abs=5e-5)
    #   Black-76 on a futures price (q = r): F=19, X=19, T=0.75, r=10%, sigma=28% -> call = put = 1.7011
    np.testing.assert_allclose(
        bs_price(["C", "P"], 19, 19, 0.75, 0.10, 0.10, 0.28), [1.7011, 1.7011], atol=5e-5
    )


def test_published_greeks() -> None:
    # Haug (2nd ed.), ch. 2 worked examples (raw units: per 1.00 vol / rate, theta per year)
    d = bs_greeks(["C", "P"], 105, 100, 0.5, 0.10, 0.10, 0.36)["delta"]  # futures option, b = 0
    np.testing.assert_allclose(d, [0.5946, -0.3566], atol=5e-5)
    assert float(bs_greeks("C", 55, 60, 0.75, 0.10, 0.0, 0.30)["gamma"]) == pytest.approx(0.0278, abs=5e-5)
    assert float(bs_greeks("P", 430, 405, 0.0833, 0.07, 0.05, 0.20)["theta"]) == pytest.approx(
        -31.1924, abs=5e-4
    )
    assert float(bs_greeks("C", 72, 75, 1.0, 0.09, 0.0, 0.19)["rho"]) == pytest.approx(38.7325, abs=5e-4)


# ----------------------------------------------------------------------------------------------- identities
def test_put_call_parity_random() -> None:
    c = random_cases(20_000, seed=1, hard=True)
    args = (c["S"], c["K"], c["T"], c["r"], c["q"], c["sigma"])
    call = bs_price("C", *args)
    put = bs_price("P", *args)
    fwd_value = c["S"] * np.exp(-c["q"] * c["T"]) - c["K"] * np.exp(-c["r"] * c["T"])
    np.testing.assert_allclose(call - put, fwd_value, rtol=0, atol=1e-12 * 4 * (c["S"] + c["K"]).max())
    g_c, g_p = bs_greeks("C", *args), bs_greeks("P", *args)
    np.testing.assert_allclose(g_c["delta"] - g_p["delta"], np.exp(-c["q"] * c["T"]), atol=1e-14)
    np.testing.assert_allclose(g_c["gamma"], g_p["gamma"], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(g_c["vega"], g_p["vega"], rtol=1e-12, atol=1e-300)
    rho_fwd = c["K"] * c["T"] * np.exp(-c["r"] * c["T"])
    np.testing.assert_allclose(g_c["rho"] - g_p["rho"], rho_fwd, rtol=1e-12, atol=1e-9)


def test_price_bounds_random() -> None:
    c = random_cases(20_000, seed=2, hard=True)
    args = (c["S"], c["K"], c["T"], c["r"], c["q"], c["sigma"])
    dfq, dfr = np.exp(-c["q"] * c["T"]), np.exp(-c["r"] * c["T"])
    call, put = bs_price("C", *args), bs_price("P", *args)
    tol = 1e-12 * (c["S"] + c["K"])
    assert np.all(call >= np.maximum(c["S"] * dfq - c["K"] * dfr, 0) - tol) and np.all(
        call <= c["S"] * dfq + tol
    )
    assert np.all(put >= np.maximum(c["K"] * dfr - c["S"] * dfq, 0) - tol) and np.all(
        put <= c["K"] * dfr + tol
    )


# ----------------------------------------------------------------------------------------------- limits
def test_limits() -> None:
    K, T, r, q, sig = 100.0, 0.75, 0.04, 0.01, 0.3
    dfr, dfq = np.exp(-r * T), np.exp(-q * T)
    # S -> 0: call worthless, put = K e^{-rT}; S = 0 exactly gives the same
    for S in (1e-8, 0.0):
        assert float(bs_price("C", S, K, T, r, q, sig)) == pytest.approx(0.0, abs=1e-300)
        assert float(bs_price("P", S, K, T, r, q, sig)) == pytest.approx(K * dfr - S * dfq, rel=1e-14)
    # S -> infinity: call = S e^{-qT} - K e^{-rT}, put worthless
    S = 1e6
    assert float(bs_price("C", S, K, T, r, q, sig)) == pytest.approx(S * dfq - K * dfr, rel=1e-14)
    assert float(bs_price("P", S, K, T, r, q, sig)) == pytest.approx(0.0, abs=1e-12)
    # T -> 0 approaches intrinsic and T = 0 is intrinsic
    for S in (90.0, 110.0):
        for t in (1e-10, 0.0):
            assert float(bs_price("C", S, K, t, r, q, sig)) == pytest.approx(max(S - K, 0), abs=1e-6)
            assert float(bs_price("P", S, K, t, r, q, sig)) == pytest.approx(max(K - S, 0), abs=1e-6)
    # sigma -> 0: discounted intrinsic value of the forward, continuous at sigma = 0
    for S in (80.0, 100.0, 120.0):
        for right, sign in (("C", 1), ("P", -1)):
            expect = max(sign * (S * dfq - K * dfr), 0.0)
            assert float(bs_price(right, S, K, T, r, q, 0.0)) == pytest.approx(expect, abs=1e-12)
            assert float(bs_price(right, S, K, T, r, q, 1e-9)) == pytest.approx(expect, abs=1e-6)
    # sigma -> infinity: the call is worth the share (less dividends), the put the discounted strike
    assert float(bs_price("C", 100, K, T, r, q, 80.0)) == pytest.approx(100 * dfq, rel=1e-9)
    assert float(bs_price("P", 100, K, T, r, q, 80.0)) == pytest.approx(K * dfr, rel=1e-9)


def test_greek_limits_and_units() -> None:
    g = bs_greeks("C", 100, 100, 0.5, 0.05, 0.0, 0.2)
    assert float(g["theta"]) < 0  # a long option decays
    assert float(g["vega_1pct"]) == pytest.approx(float(g["vega"]) / 100)
    assert float(g["theta_per_day"]) == pytest.approx(float(g["theta"]) / 365)
    # expired: delta is the payoff slope, the rest 0
    e = bs_greeks(["C", "C", "P", "P"], [90, 110, 90, 110], 100, 0.0, 0.05, 0.0, 0.2)
    np.testing.assert_array_equal(e["delta"], [0, 1, -1, 0])
    for k in ("gamma", "vega", "theta", "rho"):
        np.testing.assert_array_equal(e[k], 0.0)
    # sigma = 0 (T > 0): derivatives of max(S e^{-qT} - K e^{-rT}, 0) on the in-the-money side
    T, r, q = 0.5, 0.05, 0.02
    z = bs_greeks("C", 120, 100, T, r, q, 0.0)
    assert float(z["delta"]) == pytest.approx(np.exp(-q * T))
    assert float(z["gamma"]) == 0.0
    assert float(z["rho"]) == pytest.approx(100 * T * np.exp(-r * T))
    assert float(z["theta"]) == pytest.approx(q * 120 * np.exp(-q * T) - r * 100 * np.exp(-r * T))


def test_finite_difference_greeks() -> None:
    c = random_cases(2_000, seed=3)
    right, S, K, T, r, q, sig = (c[k] for k in ("right", "S", "K", "T", "r", "q", "sigma"))
    g = bs_greeks(right, S, K, T, r, q, sig)

    def v(**kw: np.ndarray) -> np.ndarray:
        a = {"S": S, "K": K, "T": T, "r": r, "q": q, "sigma": sig} | kw
        return bs_price(right, a["S"], a["K"], a["T"], a["r"], a["q"], a["sigma"])

    # steps chosen where truncation and rounding errors balance (measured: errors ~1e-10, gamma*S ~2e-6)
    hs = 1e-6 * S
    fd_delta = (v(S=S + hs) - v(S=S - hs)) / (2 * hs)
    hs2 = 1e-4 * S
    fd_gamma = (v(S=S + hs2) - 2 * v() + v(S=S - hs2)) / hs2**2
    h = 1e-6
    fd_vega = (v(sigma=sig + h) - v(sigma=sig - h)) / (2 * h)
    fd_theta = -(v(T=T + h) - v(T=T - h)) / (2 * h)  # calendar time passing shortens T
    fd_rho = (v(r=r + h) - v(r=r - h)) / (2 * h)
    scale = S  # derivatives of a price of order S
    np.testing.assert_allclose(g["delta"], fd_delta, atol=1e-8, rtol=0)
    np.testing.assert_allclose(g["gamma"] * S, fd_gamma * S, atol=2e-5, rtol=0)
    np.testing.assert_allclose(g["vega"] / scale, fd_vega / scale, atol=1e-8, rtol=0)
    np.testing.assert_allclose(g["theta"] / scale, fd_theta / scale, atol=1e-8, rtol=0)
    np.testing.assert_allclose(g["rho"] / scale, fd_rho / scale, atol=1e-8, rtol=0)


# ----------------------------------------------------------------------------------------------- implied vol
def _conditioning(c: dict[str, np.ndarray], price: np.ndarray) -> np.ndarray:
    """How far sigma moves when the price moves by its rounding error: the best any solver can do."""
    vega = bs_greeks(c["right"], c["S"], c["K"], c["T"], c["r"], c["q"], c["sigma"])["vega"]
    with np.errstate(divide="ignore", over="ignore"):
        return 8 * EPS * (c["S"] + c["K"] + price) / vega


@pytest.mark.parametrize("hard", [False, True])
def test_implied_vol_round_trip(hard: bool) -> None:
    c = random_cases(50_000, seed=4 + hard, hard=hard)
    args = (c["S"], c["K"], c["T"], c["r"], c["q"])
    price = bs_price(c["right"], *args, c["sigma"])
    iv = implied_vol(price, c["right"], *args)
    cond = _conditioning(c, price)
    err = np.abs(iv - c["sigma"])
    well = cond <= 1e-11  # vega not negligible: the price pins sigma down to better than 1e-11
    assert well.sum() > 0.2 * len(well)
    assert not np.isnan(iv[well]).any()
    assert err[well].max() <= 1e-10
    # everywhere else: a number is as accurate as the price allows, or NaN - never a wrong number
    finite = np.isfinite(iv)
    assert np.all(err[finite] <= np.maximum(1e-10, 10 * cond[finite]))


def test_implied_vol_hard_corners() -> None:
    # deep ITM/OTM calls and puts, one day to expiry, tiny and huge vols; true sigma known
    S, r, q = 100.0, 0.05, 0.02
    K = np.array([30, 60, 80, 95, 100, 105, 125, 170, 300], dtype=float)
    T = np.array([1 / 365, 7 / 365, 0.25, 2.0])
    sig = np.array([0.01, 0.05, 0.2, 0.8, 3.0])
    KK, TT, SS = np.meshgrid(K, T, sig, indexing="ij")
    for right in ("C", "P"):
        price = bs_price(right, S, KK, TT, r, q, SS)
        iv = implied_vol(price, right, S, KK, TT, r, q)
        vega = bs_greeks(right, S, KK, TT, r, q, SS)["vega"]
        with np.errstate(divide="ignore", over="ignore"):
            cond = 8 * EPS * (S + KK + price) / vega
        well = cond <= 1e-11
        assert well.sum() >= 40
        assert np.abs(iv - SS)[well].max() <= 1e-10
        ok = np.isfinite(iv)
        assert np.all(np.abs(iv - SS)[ok] <= np.maximum(1e-10, 10 * cond[ok]))


def test_implied_vol_nan_outside_bounds_and_bad_inputs() -> None:
    S, K, T, r, q = 100.0, 100.0, 0.5, 0.03, 0.01
    F, D = S * np.exp((r - q) * T), np.exp(-r * T)
    call_lo, call_hi = D * max(F - K, 0), D * F
    put_lo, put_hi = D * max(K - F, 0), D * K
    bad_call = [call_lo, call_lo * 0.5, call_hi, call_hi * 1.01, -1.0, 0.0, np.nan, np.inf]
    assert np.isnan(implied_vol(bad_call, "C", S, K, T, r, q)).all()
    assert np.isnan(implied_vol([put_hi, put_hi + 1, 0.0], "P", S, K, T, r, q)).all()
    # a deep ITM put below intrinsic
    assert np.isnan(implied_vol(15.0, "P", 80, 100, T, r, q))
    assert put_lo >= 0
    # invalid inputs: no exception, NaN
    good = float(bs_price("C", S, K, T, r, q, 0.2))
    for kw in ({"S": 0.0}, {"S": -1.0}, {"K": 0.0}, {"T": 0.0}, {"T": -0.1}, {"r": np.nan}, {"S": np.inf}):
        a = {"S": S, "K": K, "T": T, "r": r, "q": q} | kw
        assert np.isnan(implied_vol(good, "C", a["S"], a["K"], a["T"], a["r"], a["q"]))
    assert np.isnan(implied_vol(good, "X", S, K, T, r, q))
    assert np.isnan(implied_vol([good, good], np.array(["C", None], dtype=object), S, K, T, r, q)[1])
    assert float(implied_vol(good, "call", S, K, T, r, q)) == pytest.approx(0.2, abs=1e-12)


def test_broadcasting_and_scalars() -> None:
    out = bs_price("C", 100.0, np.array([[90.0], [110.0]]), np.array([0.25, 0.5, 1.0]), 0.01, 0.0, 0.2)
    assert out.shape == (2, 3)
    # every cell equals the scalar call
    assert float(out[1, 2]) == float(bs_price("C", 100.0, 110.0, 1.0, 0.01, 0.0, 0.2))
    scalar = bs_price("P", 100, 100, 1, 0.0, 0.0, 0.2)
    assert scalar.shape == ()
    g = bs_greeks(np.array(["C", "P"]), 100, 100, 1, 0.0, 0.0, 0.2)
    assert all(v.shape == (2,) for v in g.values())
    iv = implied_vol(out, "C", 100.0, np.array([[90.0], [110.0]]), np.array([0.25, 0.5, 1.0]), 0.01, 0.0)
    np.testing.assert_allclose(iv, 0.2, atol=1e-12)


def test_parse_right() -> None:
    np.testing.assert_array_equal(parse_right(["C", "p", " call ", "PUT"]), [1, -1, 1, -1])
    np.testing.assert_array_equal(parse_right([1, -1, 1.0]), [1, -1, 1])
    assert float(parse_right("Put")) == -1.0
    with pytest.raises(InvalidOptionRightError, match="'X'"):
        bs_price("X", 100, 100, 1, 0, 0, 0.2)
    assert issubclass(InvalidOptionRightError, UserInputError)
    assert np.isnan(parse_right(["C", "straddle"], strict=False)[1])


def test_invalid_numbers_give_nan() -> None:
    p = bs_price("C", [-1.0, 100, 100, 100, np.nan], [100, -5, 100, 100, 100], [1, 1, -1, 1, 1], 0.0, 0.0,
                 [0.2, 0.2, 0.2, -0.2, 0.2])  # fmt: skip
    assert np.isnan(p).all()
    g = bs_greeks("P", -1.0, 100, 1, 0, 0, 0.2)
    assert all(np.isnan(v) for v in g.values())


# ----------------------------------------------------------------------------------------------- American
def test_american_hull_five_step_tree() -> None:
    # Hull, "Options, Futures and Other Derivatives", binomial-tree example for an American put:
    # S0=50, K=50, r=10%, sigma=40%, T=5 months, five steps of one month -> $4.49
    v = american_price("P", 50.0, 50.0, 5 / 12, 0.10, 0.0, 0.40, steps=5, method="crr")
    assert round(float(v), 2) == 4.49


# Geske & Johnson (1984), Table 1 "true" American put values (also in Ju (1998), Exhibit 3), S=40, r=4.88%,
# q=0: (sigma, K, T) -> value.  Printed to 4 decimals with T rounded (1/12 -> 0.0833 ...): tolerance 5e-4.
GESKE_JOHNSON = [
    (0.2, 35, 0.0833, 0.0062), (0.2, 35, 0.3333, 0.2001), (0.2, 35, 0.5833, 0.4326),
    (0.2, 40, 0.0833, 0.8522), (0.2, 40, 0.3333, 1.5798), (0.2, 40, 0.5833, 1.9904),
    (0.2, 45, 0.0833, 5.0000), (0.2, 45, 0.3333, 5.0883), (0.2, 45, 0.5833, 5.2670),
    (0.3, 35, 0.0833, 0.0774), (0.3, 35, 0.3333, 0.6975), (0.3, 35, 0.5833, 1.2198),
    (0.3, 40, 0.0833, 1.3099), (0.3, 40, 0.3333, 2.4825), (0.3, 40, 0.5833, 3.1696),
    (0.3, 45, 0.0833, 5.0597), (0.3, 45, 0.3333, 5.7056), (0.3, 45, 0.5833, 6.2436),
    (0.4, 35, 0.0833, 0.2466), (0.4, 35, 0.3333, 1.3460), (0.4, 35, 0.5833, 2.1549),
    (0.4, 40, 0.0833, 1.7681), (0.4, 40, 0.3333, 3.3874), (0.4, 40, 0.5833, 4.3526),
    (0.4, 45, 0.0833, 5.2868), (0.4, 45, 0.3333, 6.5099), (0.4, 45, 0.5833, 7.3830),
]  # fmt: skip


@pytest.mark.parametrize("method", ["lr", "crr"])
def test_american_put_published_values(method: str) -> None:
    sig, K, T, expect = (np.array(c, dtype=float) for c in zip(*GESKE_JOHNSON, strict=True))
    if method == "lr":
        v = american_price("P", 40.0, K, T, 0.0488, 0.0, sig, steps=1501, method="lr")
    else:  # CRR oscillates between odd and even step counts: average two consecutive ones
        v = (
            american_price("P", 40.0, K, T, 0.0488, 0.0, sig, steps=2000, method="crr")
            + american_price("P", 40.0, K, T, 0.0488, 0.0, sig, steps=2001, method="crr")
        ) / 2
    np.testing.assert_allclose(v, expect, atol=5e-4)


def test_american_properties() -> None:
    c = random_cases(300, seed=6)
    args = (c["S"], c["K"], c["T"], c["r"], c["q"], c["sigma"])
    for right in ("C", "P"):
        am = american_price(right, *args, steps=201)
        eu_tree = binomial_price(right, *args, steps=201, american=False)
        eu = bs_price(right, *args)
        # the European LR tree converges to Black-Scholes (second order in steps)
        np.testing.assert_allclose(eu_tree, eu, atol=2e-4 * c["S"].max() / 100, rtol=1e-4)
        assert np.all(am >= eu_tree - 1e-12)  # early exercise is worth something or nothing
        intrinsic = np.maximum((1 if right == "C" else -1) * (c["S"] - c["K"]), 0)
        assert np.all(am >= intrinsic - 1e-12)
    # without dividends an American call is never exercised early: equals the European one
    no_div = american_price("C", c["S"], c["K"], c["T"], np.abs(c["r"]), 0.0, c["sigma"], steps=201)
    eu_tree = binomial_price(
        "C", c["S"], c["K"], c["T"], np.abs(c["r"]), 0.0, c["sigma"], steps=201, american=False
    )
    np.testing.assert_allclose(no_div, eu_tree, rtol=1e-12, atol=1e-12)
    # deep ITM put with high rates: exercise now
    assert float(american_price("P", 10.0, 100.0, 1.0, 0.10, 0.0, 0.2)) == pytest.approx(90.0, abs=1e-12)
    # expiry and zero vol
    assert float(american_price("P", 90.0, 100.0, 0.0, 0.05, 0.0, 0.2)) == 10.0
    assert float(american_price("P", 90.0, 100.0, 1.0, 0.05, 0.0, 0.0)) == pytest.approx(10.0)  # exercise now
    assert float(american_price("C", 110.0, 100.0, 1.0, 0.0, 0.05, 0.0)) == pytest.approx(
        10.0
    )  # before dividends
    # LR and CRR agree with each other (different trees, same limit)
    lr = american_price("P", c["S"], c["K"], c["T"], c["r"], c["q"], c["sigma"], steps=801, method="lr")
    crr = american_price("P", c["S"], c["K"], c["T"], c["r"], c["q"], c["sigma"], steps=801, method="crr")
    np.testing.assert_allclose(lr, crr, rtol=2e-3, atol=1e-3)


def test_binomial_rejects_bad_settings() -> None:
    with pytest.raises(UserInputError, match="method"):
        american_price("P", 100, 100, 1, 0.05, 0, 0.2, method="trinomial")  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="steps"):
        american_price("P", 100, 100, 1, 0.05, 0, 0.2, steps=0)
    assert np.isnan(american_price("P", -1.0, 100, 1, 0.05, 0, 0.2))
