"""Model families of the signal models: estimators, their Optuna search spaces, their inputs.

========== ============================================================ ===================================
family     estimator                                                    inputs
========== ============================================================ ===================================
logistic   median imputation + standardization + L2 logistic regression the tabular features
lightgbm   LightGBM gradient boosting (missing values native)           the tabular features
xgboost    XGBoost ``hist`` gradient boosting (missing values native)   the tabular features
sequence   LSTM over the last ``seq_window`` bars (:mod:`.sequence`)    the window columns of ``seq_channels``
========== ============================================================ ===================================

Every estimator is seeded and single-threaded, so a training run reproduces bitwise.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from quantlake.errors import UserInputError
from tracking.ml.feature_registry import window_columns

Family = Literal["logistic", "lightgbm", "xgboost", "sequence"]
FAMILIES: tuple[str, ...] = ("logistic", "lightgbm", "xgboost", "sequence")
TABULAR = ("logistic", "lightgbm", "xgboost")


def inputs(family: str, features: list[str], channels: list[str], window: int) -> list[str]:
    """The columns ``family`` reads."""
    return window_columns(channels, window) if family == "sequence" else list(features)


def make_estimator(family: str, params: dict[str, Any], seed: int, channels: list[str] | None = None,
                   window: int = 10) -> Any:  # fmt: skip
    if family == "logistic":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(C=params["C"], max_iter=500, tol=1e-3)),
            ]
        )
    if family == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            **params, max_bin=63, n_jobs=1, deterministic=True, force_row_wise=True, random_state=seed,
            verbose=-1,
        )
    if family == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            **params, tree_method="hist", max_bin=64, n_jobs=1, random_state=seed, eval_metric="logloss",
            verbosity=0,
        )
    if family == "sequence":
        from tracking.ml.sequence import SequenceClassifier

        return SequenceClassifier(channels or [], window=window, seed=seed, **params)
    raise UserInputError(f"unknown model family {family!r} (families: {', '.join(FAMILIES)})")


def suggest(family: str, trial: Any) -> dict[str, Any]:
    """Optuna's search space of ``family``."""
    if family == "logistic":
        return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}
    if family == "lightgbm":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 40, 200, step=40),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 31),
            "min_child_samples": trial.suggest_int("min_child_samples", 20, 200),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
    if family == "xgboost":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 40, 200, step=40),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 6),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
    if family == "sequence":
        return {
            "hidden": trial.suggest_int("hidden", 4, 16, step=4),
            "epochs": trial.suggest_int("epochs", 2, 5),
            "learning_rate": trial.suggest_float("learning_rate", 3e-3, 3e-2, log=True),
            "l2": trial.suggest_float("l2", 1e-5, 1e-2, log=True),
        }
    raise UserInputError(f"unknown model family {family!r} (families: {', '.join(FAMILIES)})")


def intrinsic_importance(family: str, estimator: Any, features: list[str]) -> pd.Series:
    """The model's own importance, normalized to sum 1: total gain for the boosted trees, |coefficient| on
    standardized inputs for the logistic model, |input weights| per window column for the LSTM."""
    if family == "lightgbm":
        raw = np.asarray(estimator.booster_.feature_importance(importance_type="gain"), dtype=float)
    elif family == "xgboost":
        gain = estimator.get_booster().get_score(importance_type="total_gain")
        raw = np.array([float(gain.get(f, 0.0)) for f in features])
    elif family == "logistic":
        raw = np.abs(np.asarray(estimator.named_steps["clf"].coef_[0], dtype=float))
    else:  # sequence: weight mass of each channel, spread over its window columns
        per_channel = np.abs(estimator.params_["wx"]).sum(axis=1)
        raw = np.repeat(per_channel / estimator.window, estimator.window)
    total = raw.sum()
    return pd.Series(raw / total if total > 0 else raw, index=features, name="importance")
