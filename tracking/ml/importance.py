"""Permutation importance of every model on the walk-forward's out-of-sample folds.

For each fold, the model fitted on that fold's training window predicts its test block (a seeded sample of
at most ``max_rows`` rows) once as it is and once per input column with that column's values shuffled
across the rows; the importance is the drop of the ROC AUC, averaged over the folds (``std``: across them).
A feature the model ignores scores 0; a negative value means shuffling it helped (noise).

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
        columns = list(dict.fromkeys(c for f in families for c in fold.fitted[f][1]))
        for col in columns:
            order = rng.permutation(len(test))
            permuted = probs.copy()
            for j, fam in enumerate(families):
                est, cols = fold.fitted[fam]
                if col not in cols:  # not an input of this family: its prediction is unchanged
                    continue
                x = xs[fam].copy()
                x[col] = x[col].to_numpy()[order]
                p = est.predict_proba(x)[:, 1]
                permuted[:, j] = p
                drops.setdefault((fam, col), []).append(base_auc[fam] - _auc(y, p))
            if use_ens:
                assert w is not None
                pe = (permuted * w).sum(axis=1) / w.sum(axis=1)
                drops.setdefault(("ensemble", col), []).append(ens_base - _auc(y, pe))
    rows = [
        {"model": m, "feature": f, "importance": float(np.mean(v)), "std": float(np.std(v)), "folds": len(v)}
        for (m, f), v in drops.items()
    ]
    out = pd.DataFrame(rows, columns=["model", "feature", "importance", "std", "folds"])
    return out.sort_values(["model", "importance"], ascending=[True, False], kind="mergesort").reset_index(drop=True)
