"""Vendor theta and vega in DESIGN §5 units (theta per year, vega per 1.00 of vol), whatever the vendor used.

Vendors publish theta per year or per calendar day, and vega per 1.00 or per 1 point of vol, mostly
without saying so in the file.  The unit is recognised per file from its own numbers: on the first batch
with usable rows (near the money, IV known), the median ratio of the vendor's value to the Black-Scholes
value at the vendor's own IV (``features.pricing.bs_greeks``, rate and dividend 0) picks the nearest
candidate.  The candidates differ by a factor of 100 or 365, far more than the carry terms the zero rate
leaves out; per *trading* day (÷252, a factor 1.45 from per calendar day) is not a candidate for that reason,
the rate alone moves a call's theta by 20 % or more.  A ratio near neither (more than a factor 3 off) leaves
that Greek unstored (NULL) and says so in the run.  Delta and gamma have one unit and are stored as given.
"""

from __future__ import annotations

import numpy as np

from quantlake.sources.chains.layout import FileContext

THETA_UNITS = {"per year": 1.0, "per calendar day": 1 / 365.0}
VEGA_UNITS = {"per 1.00 of vol": 1.0, "per vol point": 0.01}
TOLERANCE = np.log(3.0)
MIN_ROWS = 1


def _decide(ratio: float, units: dict[str, float]) -> tuple[str | None, float | None]:
    if not np.isfinite(ratio) or ratio <= 0:
        return None, None
    name, scale = min(units.items(), key=lambda kv: abs(np.log(ratio / kv[1])))
    return (name, scale) if abs(np.log(ratio / scale)) < TOLERANCE else (None, None)


def scale_greeks(
    ctx: FileContext,
    right: np.ndarray,
    spot: np.ndarray,
    strike: np.ndarray,
    years: np.ndarray,
    iv: np.ndarray,
    theta: np.ndarray | None,
    vega: np.ndarray | None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(theta, vega) in DESIGN units, or None for a Greek the file lacks or whose unit is not recognised."""
    out: list[np.ndarray | None] = []
    for name, values, units in (("theta", theta, THETA_UNITS), ("vega", vega, VEGA_UNITS)):
        if values is None:
            out.append(None)
            continue
        if name not in ctx.greek_scale:
            decided = _recognise(name, values, units, right, spot, strike, years, iv)
            if decided is not None:
                unit, scale = decided
                ctx.greek_scale[name] = scale
                if unit is None:
                    ctx.note(f"{ctx.origin}: vendor {name} in units not recognised: not stored")
        scale = ctx.greek_scale.get(name)
        out.append(None if scale is None else values / scale)
    return out[0], out[1]


def _recognise(
    name: str,
    values: np.ndarray,
    units: dict[str, float],
    right: np.ndarray,
    spot: np.ndarray,
    strike: np.ndarray,
    years: np.ndarray,
    iv: np.ndarray,
) -> tuple[str | None, float | None] | None:
    """The unit, (None, None) when not recognised, or None when this batch has too few usable rows."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (
            np.isfinite(values) & (values != 0) & np.isfinite(iv) & (iv > 0.02) & (iv < 3)
            & np.isfinite(spot) & (spot > 0) & np.isfinite(strike) & (strike > 0)
            & np.isfinite(years) & (years > 7 / 365) & (np.abs(np.log(strike / spot)) < 0.15)
            & np.isin(right, ["C", "P"])
        )  # fmt: skip
    idx = np.flatnonzero(ok)[:5000]
    if idx.size < MIN_ROWS:
        return None
    from features.pricing import bs_greeks

    g = bs_greeks(right[idx], spot[idx], strike[idx], years[idx], 0.0, 0.0, iv[idx])
    model = np.asarray(g[name], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(np.nanmedian(values[idx] / model))
    return _decide(ratio, units)
