"""Population stability index (PSI) of a feature's live values against its training values, and the drift
table of the model monitor (:mod:`tracking.ml.monitor`).

Bins: ``bins`` quantile bins of the training values (equal training shares; edges de-duplicated, the outer
bins open, bin ``i`` holds ``edges[i-1] < x <= edges[i]`` in both windows).  Shares ``e_i`` (training) and
``a_i`` (live) are each floored at ``EPS`` = 1e-4 (an empty bin on either side, treated alike), and
``PSI = sum (a_i - e_i) * ln(a_i / e_i)``.  Usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a
significant shift.

Discrete features.  When the training values take at most ``DISCRETE_PER_BIN x bins`` distinct values (a
cross-sectional rank over 8 symbols takes 8: 0, 1/7, ..., 1), counting points in quantile bins measures the
grid, not the distribution: quantile edges fall on the values or into the gaps between them (a bin holding
only the rare tied rank 0.5, 3 of 16,056 training values), and the same uniform rank over a universe of 5
symbols (0, 0.25, ...) leaves three of the eight one-value bins empty — PSI 5 for two samples both uniform on
[0, 1].  Such a feature is therefore read, in both windows, as the piecewise-uniform density that spreads each
distinct value's share evenly to halfway between it and its neighbouring values (the lowest and highest
value as far outward as inward): the edges are the exact quantiles of the training density (every bin holds
1/``bins`` of it) and a window's share of a bin is the integral of its own density over the bin.  Two
samples with the same values and shares then have the PSI of their shares per value (a bin splitting a
value splits both windows' shares alike), ranks over 5 and over 8 symbols compare as nearly equal, and a
shifted feature or one stuck at a single value (a point mass, counted as a point) still shows a large PSI.
What this reading does not see: a middle category that vanishes from a coded (non-ordinal) feature.

Written here because no maintained library computes it (PSI is a dozen lines over :func:`numpy.interp` and
:func:`numpy.searchsorted`).

Persistent features: a 60-day window of a 20-day volatility covers few independent values, so its PSI against
years of training data is often above 1 with nothing changed.  :func:`feature_drift` therefore measures each
feature against its own training period too: the *baseline* is the largest PSI any ``window``-long span of
the training window (stepped by a quarter of that) has against the whole window, and a feature has drifted
when its live PSI exceeds ``max(threshold, margin x baseline)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from quantlake.errors import UserInputError

EPS = 1e-4
DISCRETE_PER_BIN = 5  # at most this many distinct training values per bin: a discrete feature (see the module doc)


@dataclasses.dataclass(frozen=True)
class Bins:
    """Bin edges from the training values; ``discrete``: shares from spread densities (module doc)."""

    edges: np.ndarray
    discrete: bool


def _density(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, F) knots of the piecewise-linear CDF of the spread density; None for a single value (a point)."""
    v, counts = np.unique(values, return_counts=True)
    if len(v) < 2:
        return None
    mid = (v[1:] + v[:-1]) / 2
    x = np.r_[2 * v[0] - mid[0], mid, 2 * v[-1] - mid[-1]]
    return x, np.r_[0.0, np.cumsum(counts) / len(values)]


def binning(expected: np.ndarray, bins: int) -> Bins:
    """Quantile bins of the (finite) training values ``expected``."""
    levels = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    if len(np.unique(expected)) <= DISCRETE_PER_BIN * bins:
        knots = _density(expected)
        edges = np.interp(levels, knots[1], knots[0]) if knots is not None else expected[:1]
        return Bins(np.unique(edges), discrete=True)
    return Bins(np.unique(np.quantile(expected, levels)), discrete=False)


def shares(b: Bins, values: np.ndarray) -> np.ndarray:
    """Each bin's share of ``values`` (finite), floored at ``EPS``."""
    knots = _density(values) if b.discrete else None
    if knots is None:  # point counts: a continuous feature, or a sample holding one value
        counts = np.bincount(np.searchsorted(b.edges, values, side="left"), minlength=len(b.edges) + 1)
        out = counts / len(values)
    else:
        out = np.diff(np.r_[0.0, np.interp(b.edges, knots[0], knots[1]), 1.0])
    return np.maximum(out, EPS)


def psi_of_shares(e_share: np.ndarray, a_share: np.ndarray) -> float:
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def psi(expected: Any, actual: Any, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (see the module doc); NaNs dropped."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e, a = e[np.isfinite(e)], a[np.isfinite(a)]
    if len(e) == 0 or len(a) == 0:
        raise UserInputError(f"PSI needs values on both sides (training {len(e)}, live {len(a)})")
    b = binning(e, bins)
    return psi_of_shares(shares(b, e), shares(b, a))


def baseline_psi(values: np.ndarray, dates: np.ndarray, window: int, bins: int) -> float:
    """The largest PSI of any ``window``-dates span of the training values against all of them (spans stepped
    by ``window // 4``); 0 when the training window is shorter than two spans."""
    ok = np.isfinite(values)
    values, dates = values[ok], dates[ok]
    uniq = np.unique(dates)
    if len(values) == 0 or len(uniq) < 2 * window:
        return 0.0
    b = binning(values, bins)
    base = shares(b, values)
    pos = np.searchsorted(uniq, dates)  # each row's date index
    worst = 0.0
    for start in range(0, len(uniq) - window + 1, max(1, window // 4)):
        part = values[(pos >= start) & (pos < start + window)]
        if len(part):
            worst = max(worst, psi_of_shares(base, shares(b, part)))
    return worst


def feature_drift(
    train: pd.DataFrame, live: pd.DataFrame, features: list[str], bins: int, threshold: float,
    margin: float = 2.0, window: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One row per feature with values on both sides, most drifted (live PSI / limit) first.  ``window``:
    dates per baseline span (default: the live frame's number of dates)."""
    window = window or max(1, live["date"].nunique() if "date" in live.columns else 1)
    train_dates = pd.to_datetime(train["date"]).to_numpy() if "date" in train.columns else np.zeros(len(train))
    rows = []
    for f in features:
        if f not in train.columns or f not in live.columns:
            continue
        t, lv = train[f].to_numpy(dtype=float), live[f].to_numpy(dtype=float)
        nt, nl = int(np.isfinite(t).sum()), int(np.isfinite(lv).sum())
        if nt == 0 or nl == 0:
            continue
        value = psi(t, lv, bins)
        base = baseline_psi(t, train_dates, window, bins)
        limit = max(threshold, margin * base)
        rows.append({"feature": f, "psi": value, "baseline": base, "limit": limit, "train_rows": nt, "live_rows": nl,
                     "train_mean": float(np.nanmean(t)), "live_mean": float(np.nanmean(lv)),
                     "drifted": value > limit})  # fmt: skip
    cols = ["feature", "psi", "baseline", "limit", "train_rows", "live_rows", "train_mean", "live_mean", "drifted"]
    out = pd.DataFrame(rows, columns=cols)
    order = (out["psi"] / out["limit"]).sort_values(ascending=False).index if len(out) else out.index
    return out.loc[order].reset_index(drop=True)


__all__ = ["EPS", "Bins", "baseline_psi", "binning", "feature_drift", "psi", "psi_of_shares", "shares"]
