"""Strategies and ML models as MLflow pyfunc models: feature frame in, target positions out.

Every signal model takes a frame keyed by ``symbol, date`` with feature columns and returns a frame
``symbol, date, signal`` where ``signal`` is the target position in ``[-1, 1]`` decided at that date's
close (DESIGN §5: it trades on the next bar).  Rule-based strategies (:class:`RuleSignalModel`) and trained
classifiers (:class:`ClassifierSignalModel`) share the interface, so the registry, the promotion gate and
the scanner treat them alike: ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(features)``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel, ConfigDict, Field

from quantlake.errors import UserInputError

KEYS = ["symbol", "date"]
SIGNAL = "signal"


class CrossRule(BaseModel):
    """Long while ``fast`` > ``slow`` (e.g. two moving averages); short instead of flat if allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["cross"] = "cross"
    fast: str
    slow: str
    allow_short: bool = False


class ThresholdRule(BaseModel):
    """Long while ``feature`` < ``long_below`` (e.g. RSI oversold), short while > ``short_above`` if set."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["threshold"] = "threshold"
    feature: str
    long_below: float | None = None
    long_above: float | None = None
    short_above: float | None = None


Rule = Annotated[CrossRule | ThresholdRule, Field(discriminator="kind")]


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: Rule


def _check_columns(frame: pd.DataFrame, needed: list[str]) -> None:
    missing = [c for c in [*KEYS, *needed] if c not in frame.columns]
    if missing:
        raise UserInputError(f"feature frame lacks column(s) {missing} (has {list(frame.columns)[:20]})")


def _output(
    frame: pd.DataFrame, signal: np.ndarray, extra: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    out = frame[KEYS].copy().reset_index(drop=True)
    for name, values in (extra or {}).items():
        out[name] = np.asarray(values, dtype=float)
    out[SIGNAL] = np.clip(np.nan_to_num(np.asarray(signal, dtype=float)), -1.0, 1.0)
    return out


class SignalModel(PythonModel):
    """Base of quantlake's pyfunc signal models."""

    kind: str = "signal"

    @property
    def features(self) -> list[str]:
        raise NotImplementedError

    def signals(self, frame: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        _check_columns(frame, self.features)
        return self.signals(frame)


class RuleSignalModel(SignalModel):
    kind = "rule"

    def __init__(self, rule: CrossRule | ThresholdRule) -> None:
        self.rule = rule

    @property
    def features(self) -> list[str]:
        r = self.rule
        return [r.fast, r.slow] if isinstance(r, CrossRule) else [r.feature]

    def signals(self, frame: pd.DataFrame) -> pd.DataFrame:
        r = self.rule
        if isinstance(r, CrossRule):
            fast = frame[r.fast].to_numpy(dtype=float)
            slow = frame[r.slow].to_numpy(dtype=float)
            sig = np.where(fast > slow, 1.0, -1.0 if r.allow_short else 0.0)
            sig = np.where(np.isnan(fast) | np.isnan(slow), 0.0, sig)
            return _output(frame, sig)
        x = frame[r.feature].to_numpy(dtype=float)
        sig = np.zeros(len(frame))
        if r.long_below is not None:
            sig = np.where(x < r.long_below, 1.0, sig)
        if r.long_above is not None:
            sig = np.where(x > r.long_above, 1.0, sig)
        if r.short_above is not None:
            sig = np.where(x > r.short_above, -1.0, sig)
        return _output(frame, np.where(np.isnan(x), 0.0, sig))


class ClassifierSignalModel(SignalModel):
    """A fitted classifier of "forward return > 0": long when P(up) >= ``long_threshold``, short when
    P(up) <= ``short_threshold`` (if set), flat otherwise.

    ``regime_weights`` turns a list of classifiers into a regime-weighted ensemble: for a row whose
    ``regime_column`` equals ``r``, P(up) = Σ_i w[r][i] P_i(up) (weights normalized; unknown regimes use
    ``default_weights``).

    ``estimator_features`` gives each estimator its own input columns (an LSTM reads its window columns, the
    tree models the tabular features); by default all read ``feature_names``.  With ``allow_missing`` the
    estimators handle missing values themselves (trees natively, the others by imputation); otherwise a row
    with any missing input gets P(up) = 0.5 (no position), as models logged before that option did."""

    kind = "classifier"

    def __init__(
        self,
        estimators: list[Any],
        feature_names: list[str],
        long_threshold: float = 0.55,
        short_threshold: float | None = None,
        regime_column: str | None = None,
        regime_weights: dict[str, list[float]] | None = None,
        default_weights: list[float] | None = None,
        estimator_features: list[list[str]] | None = None,
        allow_missing: bool = False,
    ) -> None:
        if not estimators:
            raise ValueError("need at least one estimator")
        self.estimators = list(estimators)
        self.feature_names = list(feature_names)
        self.long_threshold = long_threshold
        self.short_threshold = short_threshold
        self.regime_column = regime_column
        self.regime_weights = {str(k): list(v) for k, v in (regime_weights or {}).items()}
        self.default_weights = list(default_weights or [1.0] * len(self.estimators))
        self.estimator_features = [list(c) for c in estimator_features] if estimator_features else None
        self.allow_missing = allow_missing

    @property
    def features(self) -> list[str]:
        return self.feature_names + ([self.regime_column] if self.regime_column else [])

    def _inputs(self) -> list[list[str]]:
        # models pickled before per-estimator inputs existed have no such attribute
        per = getattr(self, "estimator_features", None)
        return per if per else [self.feature_names] * len(self.estimators)

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[self.feature_names].to_numpy(dtype=float)
        ok = np.ones(len(frame), dtype=bool) if getattr(self, "allow_missing", False) else ~np.isnan(x).any(axis=1)
        each = np.full((len(frame), len(self.estimators)), 0.5)
        if ok.any():
            for i, (est, cols) in enumerate(zip(self.estimators, self._inputs(), strict=True)):
                sub = pd.DataFrame(frame[cols].to_numpy(dtype=float)[ok], columns=cols)
                each[ok, i] = est.predict_proba(sub)[:, 1]
        weights = np.tile(np.asarray(self.default_weights, dtype=float), (len(frame), 1))
        if self.regime_column and self.regime_weights:
            regimes = frame[self.regime_column].astype(str).to_numpy()
            for regime, w in self.regime_weights.items():
                weights[regimes == regime] = np.asarray(w, dtype=float)
        weights = weights / np.clip(weights.sum(axis=1, keepdims=True), 1e-12, None)
        return np.where(ok, (each * weights).sum(axis=1), 0.5)

    def signals(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.probabilities(frame)
        sig = np.where(p >= self.long_threshold, 1.0, 0.0)
        if self.short_threshold is not None:
            sig = np.where(p <= self.short_threshold, -1.0, sig)
        return _output(frame, sig, {"prob_up": p})


def positions_from_signals(signals: pd.DataFrame) -> pd.DataFrame:
    """``symbol, date, signal`` rows → a date × symbol matrix of target positions."""
    return signals.pivot_table(index="date", columns="symbol", values=SIGNAL, aggfunc="last").sort_index()
