"""Purged and embargoed splits over time (López de Prado, *Advances in Financial ML*, ch. 7).

A training row whose label window ``[date, label_end]`` overlaps the test period is *purged*; rows within
``embargo`` bars after the test period are *embargoed* (their features overlap the test labels' returns).
Walk-forward splits train only on the past; purged k-fold (for tuning inside a training window) trains on
both sides of the test fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # boolean masks over the rows
    test: np.ndarray


def _blocks(unique: np.ndarray, n: int) -> list[np.ndarray]:
    return [b for b in np.array_split(unique, n) if len(b)]


def _train_mask(
    dates: np.ndarray,
    label_end: np.ndarray,
    unique: np.ndarray,
    t0: np.datetime64,
    t1: np.datetime64,
    embargo: int,
) -> np.ndarray:
    before = (dates < t0) & (label_end < t0)  # purge: the label must be settled before the test starts
    i1 = int(np.searchsorted(unique, t1, side="right"))  # first date after the test block
    resume = unique[i1 + embargo] if i1 + embargo < len(unique) else None
    after = (dates >= resume) if resume is not None else np.zeros(len(dates), dtype=bool)
    return before | after


def walk_forward(
    dates: pd.Series, label_end: pd.Series, n_splits: int, min_train_fraction: float = 0.5, embargo: int = 0
) -> list[Split]:
    """``n_splits`` consecutive test blocks over the last ``1 - min_train_fraction`` of the dates; each
    trains on earlier rows whose labels settle before its test block (plus ``embargo`` bars of gap)."""
    d = dates.to_numpy(dtype="datetime64[ns]")
    end = label_end.to_numpy(dtype="datetime64[ns]")
    unique = np.unique(d)
    first = int(len(unique) * min_train_fraction)
    if first < 1 or len(unique) - first < n_splits:
        raise ValueError(f"not enough dates ({len(unique)}) for {n_splits} walk-forward splits")
    out = []
    for block in _blocks(unique[first:], n_splits):
        t0, t1 = block[0], block[-1]
        i0 = int(np.searchsorted(unique, t0))
        cutoff = unique[max(i0 - embargo, 0)]  # gap of `embargo` bars before the test block
        train = (d < cutoff) & (end < t0)
        test = (d >= t0) & (d <= t1)
        out.append(Split(train, test))
    return out


def purged_kfold(dates: pd.Series, label_end: pd.Series, n_splits: int, embargo: int = 0) -> list[Split]:
    """Contiguous k folds over the dates; training rows purged and embargoed around each test fold."""
    d = dates.to_numpy(dtype="datetime64[ns]")
    end = label_end.to_numpy(dtype="datetime64[ns]")
    unique = np.unique(d)
    if len(unique) < n_splits:
        raise ValueError(f"not enough dates ({len(unique)}) for {n_splits} folds")
    out = []
    for block in _blocks(unique, n_splits):
        t0, t1 = block[0], block[-1]
        out.append(Split(_train_mask(d, end, unique, t0, t1, embargo), (d >= t0) & (d <= t1)))
    return out
