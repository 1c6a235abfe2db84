"""Logging of a ``models.train`` run: one nested MLflow run per model, the parent's summary, registration.

Each nested run holds the model's out-of-sample metrics, tuned parameters, its own importance and the
permutation importance over the out-of-sample folds (tables and charts), the OOS predictions and the pyfunc
model with its signature.  The parent run holds the feature registry as used (``features.parquet``: name,
family, source, lag, share of rows present, used or why not) and the dataset summary.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from quantlake.errors import UserInputError
from quantlake.lake import Lake
from tracking import stats
from tracking.ml import feature_registry as fr
from tracking.ml.dataset import REGIME, Dataset
from tracking.ml.trades import calendar
from tracking.ml.train import (
    ENSEMBLE,
    EXPERIMENT,
    FAMILY_TAG,
    JOB,
    FamilyResult,
    TrainConfig,
    TrainingResult,
    _signals,
    train,
)
from tracking.run_context import RunHandle, current_run, tracked_run

TOP_FEATURES = 40  # bars in the importance charts


def _figures(name: str, result: FamilyResult, oos: pd.DataFrame, cfg: TrainConfig) -> dict[str, Any]:
    import plotly.graph_objects as go

    imp = result.importance.sort_values().tail(TOP_FEATURES)
    fig_imp = go.Figure(go.Bar(x=imp.to_numpy(), y=imp.index.tolist(), orientation="h"))
    fig_imp.update_layout(title=f"{name}: the model's own feature importance (top {len(imp)})",
                          height=120 + 22 * len(imp))  # fmt: skip
    perm = result.permutation.sort_values("importance").tail(TOP_FEATURES)
    fig_perm = go.Figure(
        go.Bar(x=perm["importance"].to_numpy(), y=perm["feature"].tolist(), orientation="h",
               error_x={"type": "data", "array": perm["std"].fillna(0).to_numpy()})
    )
    fig_perm.update_layout(
        title=f"{name}: permutation importance (drop of OOS AUC, mean over walk-forward folds; top {len(perm)})",
        height=120 + 22 * len(perm),
    )
    frame = oos.assign(signal=_signals(oos[f"prob_{name}"].to_numpy(), cfg))
    if cfg.trade_filter:
        daily = stats.trade_return_series(
            frame["signal"].to_numpy() > 0, frame["hold_ret"].to_numpy(), frame["label_end"], calendar(frame)
        )
    else:
        pos = frame.pivot_table(index="date", columns="symbol", values="signal", aggfunc="last")
        ret = frame.pivot_table(index="date", columns="symbol", values="hold_ret", aggfunc="last")
        daily = stats.strategy_returns(pos, ret, cfg.cost_bps)
    equity = (1 + daily).cumprod()
    fig_eq = go.Figure(go.Scatter(x=equity.index, y=equity.to_numpy(), name=name))
    fig_eq.update_layout(title=f"{name}: out-of-sample equity (walk-forward, after costs)", height=380)
    return {"feature_importance": fig_imp, "permutation_importance": fig_perm, "oos_equity": fig_eq}


def signature_example(training: TrainingResult, columns: list[str]) -> pd.DataFrame:
    """The last 50 labeled rows that have every required feature (missing optional features stay NaN)."""
    data = training.dataset
    rows = data.labeled
    required = [c for c in (data.required if data.required is not None else training.features) if c in columns]
    return rows[rows[required].notna().all(axis=1)].tail(50) if required else rows.tail(50)


def log_family(
    parent: RunHandle, result: FamilyResult, training: TrainingResult, cfg: TrainConfig, lake: Lake
) -> str:
    """One nested run per family: OOS metrics, tuned params, importances, predictions and the pyfunc model."""
    from tracking.registry import log_signal_model

    name = result.name
    with tracked_run(
        EXPERIMENT,
        f"{JOB}/{name}",
        cfg,
        lake,
        run_name=name,
        extra_tags={FAMILY_TAG: name, "quantlake.part_of": parent.run_id},
    ) as run:
        run.log_metrics({**result.metrics, "n_inputs": float(len(result.model.features))})
        run.log_params({"best": result.params} if result.params else {})
        run.log_frame("feature_importance", result.importance.rename_axis("feature").reset_index())
        run.log_frame("permutation_importance", result.permutation)
        cols = ["symbol", "date", REGIME, "label", "hold_ret", f"prob_{name}"]
        run.log_frame("oos_predictions", training.oos[cols])
        for fig_name, fig in _figures(name, result, training.oos, cfg).items():
            run.log_figure(fig_name, fig)
        log_signal_model(run, result.model, signature_example(training, result.model.features))
    return run.run_id


def train_job(cfg: TrainConfig, lake: Lake) -> dict[str, float]:
    """The ``models.train`` job: train, log one nested run per model, return every OOS metric."""
    log = logging.getLogger("quantlake.models")
    training = train(cfg, lake, progress=log.info)
    parent = current_run()
    if parent is None:  # run untracked (a library call): nothing to log the models to
        return summary(training)
    for result in training.families.values():
        log_family(parent, result, training, cfg, lake)
    parent.log_frame("dataset_summary", _dataset_summary(training.dataset))
    parent.log_frame("features", feature_table(training))
    parent.set_tags(
        {
            "quantlake.feature_source": training.dataset.source[:5000],
            "quantlake.regime_source": training.dataset.regime_source,
            "quantlake.feature_set": cfg.feature_set,
            "quantlake.features": ",".join(training.features)[:5000],
            # the training window, which the monitor (tracking.ml.monitor) compares live inputs with
            "quantlake.data_start": str(pd.Timestamp(training.dataset.labeled["date"].min()).date()),
            "quantlake.data_end": str(pd.Timestamp(training.dataset.labeled["date"].max()).date()),
        }
    )
    return summary(training)


def feature_table(training: TrainingResult) -> pd.DataFrame:
    """The coverage table joined with the registry's documentation (lag, lag rule, description)."""
    cov = training.coverage
    doc = fr.describe()[["name", "lag", "lag_rule", "required", "description"]]
    return cov.merge(doc, left_on="feature", right_on="name", how="left").drop(columns="name")


def summary(training: TrainingResult) -> dict[str, float]:
    out: dict[str, float] = {
        "n_rows": float(len(training.dataset.labeled)),
        "n_features": float(len(training.features)),
        "n_features_registry": float(len(training.dataset.features)),
        "n_oos_rows": float(len(training.oos)),
    }
    for name, result in training.families.items():
        out.update({f"{name}.{k}": v for k, v in result.metrics.items()})
    head = ENSEMBLE if ENSEMBLE in training.families else next(iter(training.families))
    out.update(training.families[head].metrics)
    return out


def _dataset_summary(data: Dataset) -> pd.DataFrame:
    labeled = data.labeled
    return (
        labeled.groupby("symbol")
        .agg(rows=("label", "size"), first=("date", "min"), last=("date", "max"), up_share=("label", "mean"))
        .reset_index()
    )


def register_trained(parent_run_id: str, prefix: str = "ml") -> dict[str, str]:
    """Register the models a ``models.train`` run logged as ``<prefix>_<family>``; returns name → version."""
    from tracking.registry import MODEL_URI_TAG, register_from_run
    from tracking.run_context import client
    from tracking.runs import search

    c = client()
    parent = c.get_run(parent_run_id)
    children = search(c, [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    out = {}
    for child in sorted(children, key=lambda r: r.data.tags.get(FAMILY_TAG, "")):
        family = child.data.tags.get(FAMILY_TAG)
        if family and child.data.tags.get(MODEL_URI_TAG) and child.info.status == "FINISHED":
            out[f"{prefix}_{family}"] = register_from_run(child.info.run_id, f"{prefix}_{family}")
    if not out:
        raise UserInputError(f"run {parent_run_id} logged no models (is it a finished {JOB} run?)")
    return out
