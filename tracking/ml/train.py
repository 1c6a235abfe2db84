"""Train ML signal models with purged walk-forward evaluation; log each as a pyfunc signal model.

For every walk-forward fold and model family (logistic baseline, LightGBM) Optuna tunes hyperparameters by
purged k-fold log-loss *inside the fold's training window only*, the tuned model is refit on that window
and predicts the fold's test block.  The concatenated test predictions are the out-of-sample record the
promotion gate judges (``oos_*`` metrics, :mod:`tracking.stats`).  A regime-weighted ensemble weights each
family per regime by its inner-CV accuracy in that regime.

The final models are refit on all labeled rows with the last fold's parameters and ensemble weights, and
logged (one nested run per family + ensemble, each with its OOS metrics, feature importance, predictions
and a pyfunc model with signature).  Registration is a separate step (:func:`register_trained`), so
reproducing a training run does not create model versions.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from quantlake.errors import UserInputError
from quantlake.lake import Lake
from quantlake.tables import validate_symbol
from tracking import stats
from tracking.ml.dataset import REGIME, Dataset, load_dataset
from tracking.ml.splits import purged_kfold, walk_forward
from tracking.ml.trades import calendar, load_trade_dataset
from tracking.run_context import RunHandle, current_run, tracked_run
from tracking.signal_models import ClassifierSignalModel

Family = Literal["logistic", "lightgbm"]
ENSEMBLE = "ensemble"
JOB = "models.train"
EXPERIMENT = "models"
FAMILY_TAG = "quantlake.model_family"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbols: list[str] | None = None  # None: every symbol in equity_bars
    start: dt.date | None = None
    end: dt.date | None = None
    labels: Literal["forward_return", "option_trades"] = Field(
        default="forward_return",
        description="forward_return: up/down over `horizon` bars per symbol and day; option_trades: "
        "profitability of each position of the options backtest run `trades_run` (a trade filter)",
    )
    trades_run: str | None = Field(default=None, description="options backtest run id (labels=option_trades)")
    horizon: int = Field(default=5, ge=1, le=60, description="label: forward return over this many bars")
    lag: int = Field(default=1, ge=1, le=5, description="bars between signal and entry")
    feature_table: str | None = "features_technical"  # used when it exists, else built-in features
    features: list[str] | None = None  # None: every numeric column of the feature table / all built-ins
    regime_table: str | None = "features_regime"
    families: list[Family] = ["logistic", "lightgbm"]
    ensemble: bool = True
    n_splits: int = Field(default=4, ge=2, le=20, description="walk-forward test blocks")
    min_train_fraction: float = Field(default=0.5, gt=0.1, lt=0.95)
    inner_splits: int = Field(default=3, ge=2, le=10, description="purged k-fold inside each training window")
    embargo: int = Field(default=5, ge=0, le=250, description="bars embargoed around test blocks")
    optuna_trials: int = Field(default=8, ge=1, le=500)
    long_threshold: float = Field(default=0.55, gt=0.5, lt=1.0)
    short_threshold: float | None = Field(default=None, gt=0.0, lt=0.5)
    cost_bps: float = Field(default=5.0, ge=0)
    seed: int = 0

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        try:
            return None if v is None else sorted({validate_symbol(s) for s in v})
        except UserInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("families")
    @classmethod
    def _families(cls, v: list[Family]) -> list[Family]:
        if not v:
            raise ValueError("at least one model family")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _trades(self) -> TrainConfig:
        if (self.labels == "option_trades") != (self.trades_run is not None):
            raise ValueError("trades_run (an options backtest run id) goes with labels: option_trades, only")
        return self

    @property
    def trade_filter(self) -> bool:
        return self.labels == "option_trades"


# ------------------------------------------------------------------------------------------- families
def make_estimator(family: str, params: dict[str, Any], seed: int) -> Any:
    if family == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(C=params["C"], max_iter=2000))]
        )
    if family == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            **params, n_jobs=1, deterministic=True, force_row_wise=True, random_state=seed, verbose=-1
        )
    raise UserInputError(f"unknown model family {family!r}")


def suggest(family: str, trial: Any) -> dict[str, Any]:
    if family == "logistic":
        return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}
    return {
        "n_estimators": trial.suggest_int("n_estimators", 40, 240, step=40),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 31),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 200),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def feature_importance(family: str, estimator: Any, features: list[str]) -> pd.Series:
    """Importance normalized to sum 1: LightGBM total gain, logistic |coefficient| on standardized inputs."""
    if family == "lightgbm":
        raw = np.asarray(estimator.booster_.feature_importance(importance_type="gain"), dtype=float)
    else:
        raw = np.abs(np.asarray(estimator.named_steps["clf"].coef_[0], dtype=float))
    total = raw.sum()
    return pd.Series(raw / total if total > 0 else raw, index=features, name="importance")


# ------------------------------------------------------------------------------------------- tuning
@dataclass
class Tuned:
    params: dict[str, Any]
    oof: np.ndarray  # inner-CV out-of-fold P(up) of the best trial (NaN where a row was never tested)
    trials: int


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def tune(family: str, train: pd.DataFrame, features: list[str], cfg: TrainConfig, seed: int) -> Tuned:
    """Optuna over purged k-fold log-loss of the training window ``train`` (nothing outside it is seen)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = purged_kfold(train["date"], train["label_end"], cfg.inner_splits, cfg.embargo)
    x = train[features]
    y = train["label"].to_numpy()
    oofs: dict[int, np.ndarray] = {}

    def objective(trial: Any) -> float:
        params = suggest(family, trial)
        oof = np.full(len(train), np.nan)
        losses = []
        for f in folds:
            if f.train.sum() < 50 or f.test.sum() == 0 or len(np.unique(y[f.train])) < 2:
                continue
            est = make_estimator(family, params, seed).fit(x[f.train], y[f.train])
            oof[f.test] = est.predict_proba(x[f.test])[:, 1]
            losses.append(_log_loss(y[f.test], oof[f.test]))
        if not losses:
            raise UserInputError("training window too small for the inner purged folds")
        oofs[trial.number] = oof
        return float(np.mean(losses))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=cfg.optuna_trials)
    return Tuned(dict(study.best_params), oofs[study.best_trial.number], cfg.optuna_trials)


def regime_weights(
    oof: dict[str, np.ndarray], labels: np.ndarray, regimes: np.ndarray
) -> tuple[dict[str, list[float]], list[float]]:
    """Per regime, each family's weight = its inner-CV accuracy edge over 50 % (floored near zero)."""
    families = list(oof)

    def edge(mask: np.ndarray) -> list[float]:
        out = []
        for fam in families:
            p = oof[fam][mask]
            ok = ~np.isnan(p)
            acc = float(((p[ok] >= 0.5) == (labels[mask][ok] == 1)).mean()) if ok.any() else 0.5
            out.append(max(acc - 0.5, 0.0) + 1e-3)
        return out

    weights = {str(r): edge(regimes == r) for r in sorted(set(regimes.tolist()))}
    return weights, edge(np.ones(len(labels), dtype=bool))


# ------------------------------------------------------------------------------------------- training
@dataclass
class FamilyResult:
    name: str
    model: ClassifierSignalModel
    metrics: dict[str, float]
    importance: pd.Series
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingResult:
    dataset: Dataset
    oos: pd.DataFrame  # test rows with prob_<family>, prob_ensemble, signals
    families: dict[str, FamilyResult]


def _signals(p: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    sig = np.where(p >= cfg.long_threshold, 1.0, 0.0)
    if cfg.short_threshold is not None:
        sig = np.where(p <= cfg.short_threshold, -1.0, sig)
    return sig


def evaluate(oos: pd.DataFrame, prob: str, cfg: TrainConfig, n_trials: int) -> dict[str, float]:
    """Gate metrics (``oos_*``) and classification metrics of one probability column of ``oos``."""
    from sklearn.metrics import roc_auc_score

    frame = oos.assign(signal=_signals(oos[prob].to_numpy(), cfg))
    if cfg.trade_filter:  # keep the trades with a long signal; fees are in the trades' P&L already
        out = stats.trade_metrics(
            frame["signal"].to_numpy() > 0,
            frame["hold_ret"].to_numpy(),
            frame["label_end"],
            calendar(frame),
            n_trials,
        )
    else:
        positions = frame.pivot_table(index="date", columns="symbol", values="signal", aggfunc="last")
        returns = frame.pivot_table(index="date", columns="symbol", values="hold_ret", aggfunc="last")
        out = stats.oos_metrics(positions, returns, cfg.cost_bps, n_trials=n_trials)
    y = oos["label"].to_numpy()
    p = oos[prob].to_numpy()
    out["oos_accuracy"] = float(((p >= 0.5) == (y == 1)).mean())
    out["oos_log_loss"] = _log_loss(y, p)
    out["oos_auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else 0.5
    out["oos_exposure"] = float(np.abs(frame["signal"]).mean())
    return out


def _predict(est: Any, x: pd.DataFrame) -> np.ndarray:
    p = np.full(len(x), 0.5)
    ok = x.notna().all(axis=1).to_numpy()
    if ok.any():
        p[ok] = est.predict_proba(x[ok])[:, 1]
    return p


def train(cfg: TrainConfig, lake: Lake, progress: Callable[[str], None] | None = None) -> TrainingResult:
    """Walk-forward OOS predictions per family and the ensemble, then the final refit models."""
    say = progress or (lambda _msg: None)
    if cfg.trade_filter:
        assert cfg.trades_run is not None
        data = load_trade_dataset(lake, cfg.trades_run, cfg.feature_table, cfg.features, cfg.regime_table)
    else:
        data = load_dataset(
            lake,
            cfg.symbols,
            cfg.start,
            cfg.end,
            cfg.horizon,
            cfg.lag,
            cfg.feature_table,
            cfg.features,
            cfg.regime_table,
        )
    rows = data.labeled
    feats = data.features
    complete = rows[feats].notna().all(axis=1).to_numpy()
    splits = walk_forward(rows["date"], rows["label_end"], cfg.n_splits, cfg.min_train_fraction, cfg.embargo)
    n_trials = cfg.optuna_trials * len(cfg.families) + (1 if cfg.ensemble else 0)
    oos_parts = []
    last: dict[str, Tuned] = {}
    last_weights: tuple[dict[str, list[float]], list[float]] = ({}, [1.0] * len(cfg.families))
    for k, split in enumerate(splits):
        train_rows = rows[split.train & complete].reset_index(drop=True)
        test_rows = rows[split.test].reset_index(drop=True)
        if train_rows.empty or len(np.unique(train_rows["label"])) < 2:
            raise UserInputError(f"walk-forward fold {k + 1}: not enough labeled training rows")
        part = test_rows[["symbol", "date", REGIME, "label", "hold_ret", "label_end"]].copy()
        oof: dict[str, np.ndarray] = {}
        for fam in cfg.families:
            say(
                f"fold {k + 1}/{len(splits)}: tuning {fam} ({cfg.optuna_trials} trials) on {len(train_rows):,} rows"
            )
            tuned = tune(fam, train_rows, feats, cfg, cfg.seed + k)
            est = make_estimator(fam, tuned.params, cfg.seed).fit(train_rows[feats], train_rows["label"])
            part[f"prob_{fam}"] = _predict(est, test_rows[feats])
            oof[fam] = tuned.oof
            last[fam] = tuned
        weights, default = regime_weights(oof, train_rows["label"].to_numpy(), train_rows[REGIME].to_numpy())
        last_weights = (weights, default)
        if cfg.ensemble:
            probs = np.column_stack([part[f"prob_{f}"] for f in cfg.families])
            w = np.array([weights.get(r, default) for r in part[REGIME]], dtype=float)
            part[f"prob_{ENSEMBLE}"] = (probs * w).sum(axis=1) / w.sum(axis=1)
        oos_parts.append(part)
    oos = pd.concat(oos_parts, ignore_index=True)

    say("refitting the final models on all labeled rows")
    full = rows[complete].reset_index(drop=True)
    fitted = {
        f: make_estimator(f, last[f].params, cfg.seed).fit(full[feats], full["label"]) for f in cfg.families
    }
    results: dict[str, FamilyResult] = {}
    for fam, est in fitted.items():
        model = ClassifierSignalModel([est], feats, cfg.long_threshold, cfg.short_threshold)
        results[fam] = FamilyResult(
            fam,
            model,
            evaluate(oos, f"prob_{fam}", cfg, n_trials),
            feature_importance(fam, est, feats),
            last[fam].params,
        )
    if cfg.ensemble:
        weights, default = last_weights
        model = ClassifierSignalModel(
            list(fitted.values()),
            feats,
            cfg.long_threshold,
            cfg.short_threshold,
            regime_column=REGIME,
            regime_weights=weights,
            default_weights=default,
        )
        share = np.asarray(default) / np.sum(default)
        importance = sum(s * results[f].importance for s, f in zip(share, cfg.families, strict=True))
        results[ENSEMBLE] = FamilyResult(
            ENSEMBLE,
            model,
            evaluate(oos, f"prob_{ENSEMBLE}", cfg, n_trials),
            pd.Series(importance, index=feats, name="importance"),
            {"regime_weights": weights, "default_weights": default},
        )
    return TrainingResult(data, oos, results)


# ------------------------------------------------------------------------------------------- logging
def _figures(name: str, result: FamilyResult, oos: pd.DataFrame, cfg: TrainConfig) -> dict[str, Any]:
    import plotly.graph_objects as go

    imp = result.importance.sort_values()
    fig_imp = go.Figure(go.Bar(x=imp.to_numpy(), y=imp.index.tolist(), orientation="h"))
    fig_imp.update_layout(title=f"{name}: feature importance", height=120 + 22 * len(imp))
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
    return {"feature_importance": fig_imp, "oos_equity": fig_eq}


def log_family(
    parent: RunHandle, result: FamilyResult, training: TrainingResult, cfg: TrainConfig, lake: Lake
) -> str:
    """One nested run per family: OOS metrics, tuned params, importance, predictions and the pyfunc model."""
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
        run.log_metrics(result.metrics)
        run.log_params({"best": result.params} if result.params else {})
        run.log_frame("feature_importance", result.importance.rename_axis("feature").reset_index())
        cols = ["symbol", "date", REGIME, "label", "hold_ret", f"prob_{name}"]
        run.log_frame("oos_predictions", training.oos[cols])
        for fig_name, fig in _figures(name, result, training.oos, cfg).items():
            run.log_figure(fig_name, fig)
        example = training.dataset.labeled.dropna(subset=training.dataset.features).tail(50)
        log_signal_model(run, result.model, example)
    return run.run_id


def train_job(cfg: TrainConfig, lake: Lake) -> dict[str, float]:
    """The ``models.train`` job: train, log one nested run per model, return every OOS metric."""
    log = logging.getLogger("quantlake.models")
    training = train(cfg, lake, progress=log.info)
    parent = current_run()
    if parent is None:  # run untracked (a library call): nothing to log the models to
        return _summary(training)
    for result in training.families.values():
        log_family(parent, result, training, cfg, lake)
    parent.log_frame("dataset_summary", _dataset_summary(training.dataset))
    parent.set_tags(
        {
            "quantlake.feature_source": training.dataset.source,
            "quantlake.regime_source": training.dataset.regime_source,
            "quantlake.features": ",".join(training.dataset.features),
        }
    )
    return _summary(training)


def _summary(training: TrainingResult) -> dict[str, float]:
    out: dict[str, float] = {
        "n_rows": float(len(training.dataset.labeled)),
        "n_features": float(len(training.dataset.features)),
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
