"""Registers the model jobs (this module is discovered by :mod:`tracking.jobs` as a ``jobs.py`` module)."""

from __future__ import annotations

from quantlake.lake import Lake
from tracking.jobs import register_job
from tracking.ml import report, rules, train


@register_job(train.JOB, train.TrainConfig, experiment=train.EXPERIMENT)
def models_train(config: train.TrainConfig, lake: Lake) -> dict[str, float]:
    """Train logistic/LightGBM/XGBoost/LSTM signal models + OOS-weighted ensemble (purged walk-forward, Optuna)."""
    return report.train_job(config, lake)


@register_job(rules.JOB, rules.RuleEvalConfig, experiment=rules.EXPERIMENT)
def strategies_evaluate_rule(config: rules.RuleEvalConfig, lake: Lake) -> dict[str, float]:
    """Out-of-sample record of a rule-based strategy, logged as a pyfunc signal model."""
    return rules.evaluate_rule(config, lake)
