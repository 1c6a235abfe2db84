"""Permutation importance of every model on the walk-forward's out-of-sample folds.

For each fold, the model fitted on that fold's training window predicts its test block (a seeded sample of
at most ``max_rows`` rows) once as it is and once per input column with that column's values shuffled
across the rows; the importance is the drop of the ROC AUC, averaged over the folds (``std``: across them).
A feature the model ignores scores 0; a negative value means shuffling it helped (noise).  A sequence
channel is shuffled as a whole window (all its lags move together) and reported under the channel's name.

Hand-written rather than :func:`sklearn.inspection.permutation_importance` because the ensemble's
importance reuses the members' permuted predictions (one shuffle per column serves every family and the
ensemble, with the fold's out-of-sample weights), which halves the cost and keeps every model scored on the
same shuffles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class FoldEval:
    test: pd.DataFrame  # the fold's usable test rows (features and label)
    fitted: dict[str, tuple[Any, list[str]]]  # family -> (estimator fitted on the fold's window, its inputs)
    weights: np.ndarray | None  # ensemble weights per test row and family (None: no ensemble)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def auc_rows(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``scores`` against the labels ``y`` (Mann-Whitney U with average ranks for
    ties, which is exactly what :func:`sklearn.metrics.roc_auc_score` computes; vectorized over hundreds of
    permutations, where one sklearn call each cost more than the predictions)."""
    from scipy.stats import rankdata

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(np.atleast_2d(scores), axis=1)
    return (ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def permutation_importance(
    folds: list[FoldEval], families: list[str], ensemble: bool, max_rows: int, seed: int
) -> pd.DataFrame:
    """``model, feature, importance, std, folds`` for every family (and ``ensemble``) over ``folds``."""
    drops: dict[tuple[str, str], list[float]] = {}
    for k, fold in enumerate(folds):
        rng = np.random.default_rng([seed, k])
        idx = np.arange(len(fold.test))
        if len(idx) > max_rows:
            idx = np.sort(rng.choice(len(idx), max_rows, replace=False))
        test = fold.test.iloc[idx].reset_index(drop=True)
        w = None if fold.weights is None else fold.weights[idx]
        y = test["label"].to_numpy()
        if len(np.unique(y)) < 2:
            continue
        xs = {f: test[cols].reset_index(drop=True) for f, (_, cols) in fold.fitted.items()}
        base = {f: est.predict_proba(xs[f])[:, 1] for f, (est, _) in fold.fitted.items()}
        probs = np.column_stack([base[f] for f in families])
        use_ens = ensemble and w is not None
        if use_ens:
            assert w is not None
            ens_base = _auc(y, (probs * w).sum(axis=1) / w.sum(axis=1))
        base_auc = {f: _auc(y, base[f]) for f in families}
        groups = _groups([c for f in families for c in fold.fitted[f][1]])
        names = list(groups)
        orders = [rng.permutation(len(test)) for _ in names]
        permuted = np.repeat(probs[None, :, :], len(names), axis=0)  # group x row x family
        for j, fam in enumerate(families):
            est, cols = fold.fitted[fam]
            touched = [i for i, g in enumerate(names) if any(m in cols for m in groups[g])]
            if touched:
                permuted[touched, :, j] = _predict_permuted(est, xs[fam], [groups[names[i]] for i in touched],
                                                            [orders[i] for i in touched])  # fmt: skip
            aucs: Any = auc_rows(y, permuted[touched, :, j]) if touched else []
            for i, a in zip(touched, aucs, strict=True):
                drops.setdefault((fam, names[i]), []).append(base_auc[fam] - float(a))
        if use_ens:
            assert w is not None
            pe = (permuted * w[None, :, :]).sum(axis=2) / w.sum(axis=1)[None, :]
            for g, a in zip(names, auc_rows(y, pe), strict=True):
                drops.setdefault(("ensemble", g), []).append(ens_base - float(a))
    rows = [
        {"model": m, "feature": f, "importance": float(np.mean(v)), "std": float(np.std(v)), "folds": len(v)}
        for (m, f), v in drops.items()
    ]
    out = pd.DataFrame(rows, columns=["model", "feature", "importance", "std", "folds"])
    return out.sort_values(["model", "importance"], ascending=[True, False], kind="mergesort").reset_index(drop=True)


def _groups(columns: list[str]) -> dict[str, list[str]]:
    """Feature -> the columns permuted together: itself, or for a sequence channel its whole window
    (shuffling one lag of a window alone would only measure the shuffle's inconsistency)."""
    from tracking.ml.feature_registry import split_inputs

    out: dict[str, list[str]] = {}
    for c in dict.fromkeys(columns):
        _, win = split_inputs([c])
        base = win[0][0] if win else c
        out.setdefault(base, []).append(c)
    return out


def _predict_permuted(est: Any, x: pd.DataFrame, groups: list[list[str]], orders: list[np.ndarray],
                      chunk_rows: int = 40_000) -> np.ndarray:  # fmt: skip
    """P(up) of ``x`` with each group's columns shuffled by its order: one stacked prediction per chunk of
    groups instead of one call per group (the per-call overhead dominates small test blocks)."""
    n = len(x)
    base = x.to_numpy(dtype=float)
    col_index = {c: i for i, c in enumerate(x.columns)}
    per_chunk = max(1, chunk_rows // max(n, 1))
    out = np.empty((len(groups), n))
    for lo in range(0, len(groups), per_chunk):
        hi = min(lo + per_chunk, len(groups))
        stacked = np.tile(base, (hi - lo, 1))
        for k in range(lo, hi):
            block = slice((k - lo) * n, (k - lo + 1) * n)
            for c in groups[k]:
                if c in col_index:
                    j = col_index[c]
                    stacked[block, j] = base[orders[k], j]
        p = est.predict_proba(pd.DataFrame(stacked, columns=x.columns))[:, 1]
        out[lo:hi] = p.reshape(hi - lo, n)
    return out
