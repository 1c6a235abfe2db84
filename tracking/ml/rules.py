"""Evaluate a rule-based strategy out of sample and log it as a pyfunc signal model (``strategies.evaluate_rule``).

The rule runs over the same feature frame as the ML models; its out-of-sample period is the last
``1 - min_train_fraction`` of the dates (the span the ML walk-forward tests on), so a rule and an ML model
face the promotion gate on the same stretch of history.  ``n_trials`` says how many rule variants were tried
to pick this one (it deflates the Sharpe ratio).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantlake.errors import UserInputError
from quantlake.lake import Lake
from quantlake.tables import validate_symbol
from tracking import stats
from tracking.ml.dataset import load_dataset
from tracking.run_context import current_run
from tracking.signal_models import Rule, RuleSignalModel, positions_from_signals

JOB = "strategies.evaluate_rule"
EXPERIMENT = "strategies"


class RuleEvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Rule
    symbols: list[str] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    lag: int = Field(default=1, ge=1, le=5)
    feature_table: str | None = "features_technical"
    min_train_fraction: float = Field(default=0.5, ge=0.0, lt=0.95, description="OOS = the dates after this")
    cost_bps: float = Field(default=5.0, ge=0)
    n_trials: int = Field(default=1, ge=1, description="rule variants tried before picking this one")

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        try:
            return None if v is None else sorted({validate_symbol(s) for s in v})
        except UserInputError as exc:
            raise ValueError(str(exc)) from None


def evaluate_rule(config: RuleEvalConfig, lake: Lake) -> dict[str, float]:
    from tracking.registry import log_signal_model

    model = RuleSignalModel(config.rule)
    data = load_dataset(
        lake,
        config.symbols,
        config.start,
        config.end,
        horizon=1,
        lag=config.lag,
        feature_table=config.feature_table,
        feature_columns=model.features,
        regime_table=None,
    )
    frame = data.frame[data.frame["hold_ret"].notna()].reset_index(drop=True)
    unique = np.unique(frame["date"].to_numpy())
    cutoff = unique[int(len(unique) * config.min_train_fraction)]
    oos = frame[frame["date"] >= cutoff].reset_index(drop=True)
    signals = model.predict(None, oos)
    positions = positions_from_signals(signals)
    returns = oos.pivot_table(index="date", columns="symbol", values="hold_ret", aggfunc="last")
    metrics = stats.oos_metrics(positions, returns, config.cost_bps, n_trials=config.n_trials)
    metrics["oos_exposure"] = float(np.abs(signals["signal"]).mean())
    run = current_run()
    if run is not None:
        run.log_frame("oos_signals", pd.concat([signals, oos[["hold_ret"]]], axis=1))
        log_signal_model(run, model, oos.dropna(subset=model.features).tail(50))
    return metrics
