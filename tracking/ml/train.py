"""Train ML signal models with purged walk-forward evaluation; log each as a pyfunc signal model.

Families (:mod:`tracking.ml.families`): a logistic baseline, LightGBM, XGBoost and a small LSTM over the
last ``seq_window`` bars (:mod:`tracking.ml.sequence`).  Features: the documented registry
(:mod:`tracking.ml.feature_registry`, ``feature_set: registry``, the default) assembled point in time from
every feature table, or the older small set of one table / built-in features.

For every walk-forward fold and family, Optuna tunes hyperparameters by purged k-fold log-loss *inside the
fold's training window only*; the tuned model is refit on that window and predicts the fold's test block.
The concatenated test predictions are the out-of-sample record the promotion gate judges (``oos_*``
metrics, :mod:`tracking.stats`).  The ensemble averages the families' probabilities weighted per regime by
out-of-sample skill: inside a fold by the inner-CV out-of-fold predictions of its training window (nothing
after the window is seen), and for the final model by the walk-forward's own out-of-sample predictions.
Each family and the ensemble get a permutation importance over the out-of-sample folds
(:mod:`tracking.ml.importance`).

The final models are refit on all usable labeled rows with the last fold's parameters and logged (one
nested run per family + ensemble, each with its OOS metrics, importances, predictions and a pyfunc model
with signature).  Registration is a separate step (:func:`register_trained`), so reproducing a training run
does not create model versions.
"""

from __future__ import annotations

import datetime as dt
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
from tracking.ml import feature_registry as fr
from tracking.ml.dataset import REGIME, Dataset, load_dataset
from tracking.ml.families import Family, inputs, intrinsic_importance, make_estimator, suggest
from tracking.ml.importance import FoldEval, permutation_importance
from tracking.ml.splits import purged_kfold, walk_forward
from tracking.ml.trades import calendar, load_trade_dataset
from tracking.signal_models import ClassifierSignalModel

ENSEMBLE = "ensemble"
JOB = "models.train"
EXPERIMENT = "models"
FAMILY_TAG = "quantlake.model_family"
MIN_FIT_ROWS = 50  # rows (with both labels) an inner training fold needs before a model is fitted on it
DEFAULT_CHANNELS = ["ret_1d", "rsi_14", "bb_pctb", "ema_ratio", "rv_20"]


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
    feature_set: Literal["registry", "table"] = Field(
        default="registry",
        description="registry: the documented feature registry over every feature table (when feature_table "
        "exists); table: numeric columns of feature_table only",
    )
    features: list[str] | None = None  # None: the whole registry / the table's defaults / all built-ins
    regime_table: str | None = "features_regime"
    families: list[Family] = ["logistic", "lightgbm", "xgboost", "sequence"]
    family_trials: dict[Family, int] = Field(
        default_factory=dict, description="Optuna trials per family (default: optuna_trials)"
    )
    ensemble: bool = True
    seq_channels: list[str] = Field(default_factory=lambda: list(DEFAULT_CHANNELS))
    seq_window: int = Field(default=10, ge=2, le=60, description="bars the sequence model sees")
    min_coverage: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="registry features present in fewer labeled rows than this share are left out",
    )  # fmt: skip
    importance_rows: int = Field(default=1500, ge=50, description="OOS rows per fold for permutation importance")
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

    @field_validator("family_trials")
    @classmethod
    def _trials(cls, v: dict[Family, int]) -> dict[Family, int]:
        bad = {k: n for k, n in v.items() if not 1 <= n <= 500}
        if bad:
            raise ValueError(f"trials must be 1..500, got {bad}")
        return v

    @model_validator(mode="after")
    def _trades(self) -> TrainConfig:
        if (self.labels == "option_trades") != (self.trades_run is not None):
            raise ValueError("trades_run (an options backtest run id) goes with labels: option_trades, only")
        return self

    @property
    def trade_filter(self) -> bool:
        return self.labels == "option_trades"

    @property
    def unit(self) -> str:
        return "trades" if self.trade_filter else "rows"

    def trials(self, family: str) -> int:
        return int(self.family_trials.get(family, self.optuna_trials))  # type: ignore[call-overload]

    @property
    def total_trials(self) -> int:
        return sum(self.trials(f) for f in self.families) + (1 if self.ensemble else 0)


# ------------------------------------------------------------------------------------------- tuning
@dataclass
class Tuned:
    params: dict[str, Any]
    oof: np.ndarray  # inner-CV out-of-fold P(up) of the best trial (NaN where a row was never tested)
    trials: int


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _window_of(cfg: TrainConfig, data: Dataset) -> tuple[list[str], int]:
    if data.windows is not None:
        return list(data.windows[0]), data.windows[1]
    return [], cfg.seq_window


def tune(family: str, train: pd.DataFrame, features: list[str], cfg: TrainConfig, seed: int,
         window: tuple[list[str], int] = ([], 10)) -> Tuned:  # fmt: skip
    """Optuna over purged k-fold log-loss of the training window ``train`` (nothing outside it is seen)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = purged_kfold(train["date"], train["label_end"], cfg.inner_splits, cfg.embargo)
    x = train[features]
    y = train["label"].to_numpy()
    sizes = [int(f.train.sum()) for f in folds]
    usable = [
        f for f in folds if f.train.sum() >= MIN_FIT_ROWS and f.test.sum() > 0 and len(np.unique(y[f.train])) == 2
    ]
    if not usable:
        raise UserInputError(
            f"training window too small for the inner purged folds: each of the {cfg.inner_splits} inner folds "
            f"needs at least {MIN_FIT_ROWS} training {cfg.unit} with both outcomes after purging, but they have "
            f"{', '.join(map(str, sizes))} of the {len(train)} {cfg.unit} available in this window "
            f"(needed in the window: about {_window_need(cfg)}; use more data, fewer inner_splits or a "
            f"smaller embargo)"
        )
    oofs: dict[int, np.ndarray] = {}

    def objective(trial: Any) -> float:
        params = suggest(family, trial)
        oof = np.full(len(train), np.nan)
        losses = []
        for f in usable:
            est = make_estimator(family, params, seed, *window).fit(x[f.train], y[f.train])
            oof[f.test] = est.predict_proba(x[f.test])[:, 1]
            losses.append(_log_loss(y[f.test], oof[f.test]))
        oofs[trial.number] = oof
        return float(np.mean(losses))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=cfg.trials(family))
    return Tuned(dict(study.best_params), oofs[study.best_trial.number], cfg.trials(family))


def _window_need(cfg: TrainConfig) -> int:
    """Rows a training window needs so each inner fold keeps ``MIN_FIT_ROWS`` after holding one fold out."""
    k = cfg.inner_splits
    return int(np.ceil(MIN_FIT_ROWS * k / (k - 1)))


def regime_weights(
    prob: dict[str, np.ndarray], labels: np.ndarray, regimes: np.ndarray
) -> tuple[dict[str, list[float]], list[float]]:
    """Per regime, each family's weight = its out-of-sample accuracy edge over 50 % (floored near zero),
    from predictions ``prob`` that were out of sample for each row (inner-CV out-of-fold, or walk-forward)."""
    families = list(prob)

    def edge(mask: np.ndarray) -> list[float]:
        out = []
        for fam in families:
            p = prob[fam][mask]
            ok = ~np.isnan(p)
            acc = float(((p[ok] >= 0.5) == (labels[mask][ok] == 1)).mean()) if ok.any() else 0.5
            out.append(max(acc - 0.5, 0.0) + 1e-3)
        return out

    weights = {str(r): edge(regimes == r) for r in sorted(set(regimes.tolist()))}
    return weights, edge(np.ones(len(labels), dtype=bool))


def _ensemble_prob(probs: np.ndarray, regimes: np.ndarray, weights: tuple[dict[str, list[float]], list[float]]) -> tuple[np.ndarray, np.ndarray]:
    by_regime, default = weights
    w = np.array([by_regime.get(str(r), default) for r in regimes], dtype=float)
    return (probs * w).sum(axis=1) / w.sum(axis=1), w


# ------------------------------------------------------------------------------------------- training
@dataclass
class FamilyResult:
    name: str
    model: ClassifierSignalModel
    metrics: dict[str, float]
    importance: pd.Series  # the model's own importance
    permutation: pd.DataFrame  # feature, importance (mean OOS AUC drop), std, folds
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingResult:
    dataset: Dataset
    oos: pd.DataFrame  # test rows with prob_<family>, prob_ensemble, signals
    families: dict[str, FamilyResult]
    features: list[str] = field(default_factory=list)  # the tabular features trained on
    coverage: pd.DataFrame = field(default_factory=pd.DataFrame)  # feature, family, share present, used


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


def _predict(est: Any, x: pd.DataFrame, ok: np.ndarray) -> np.ndarray:
    """P(up) for the rows ``ok`` (rows lacking a required feature get 0.5: no position)."""
    p = np.full(len(x), 0.5)
    if ok.any():
        p[ok] = est.predict_proba(x[ok])[:, 1]
    return p


def load(cfg: TrainConfig, lake: Lake) -> Dataset:
    """The labeled frame of ``cfg`` (forward returns of the symbols, or an options run's trades)."""
    windows = (cfg.seq_channels, cfg.seq_window) if "sequence" in cfg.families else None
    if cfg.feature_set == "registry" and windows is not None:
        unknown = [c for c in cfg.seq_channels if c not in fr.BY_NAME]
        if unknown and cfg.feature_table:
            raise UserInputError(f"seq_channels {unknown} are not registry features (`quantlake models features`)")
    if cfg.trade_filter:
        assert cfg.trades_run is not None
        return load_trade_dataset(lake, cfg.trades_run, cfg.feature_table, cfg.features, cfg.regime_table,
                                  feature_set=cfg.feature_set, windows=windows)  # fmt: skip
    return load_dataset(lake, cfg.symbols, cfg.start, cfg.end, cfg.horizon, cfg.lag, cfg.feature_table,
                        cfg.features, cfg.regime_table, feature_set=cfg.feature_set, windows=windows)  # fmt: skip


def select_features(data: Dataset, rows: pd.DataFrame, cfg: TrainConfig) -> tuple[list[str], pd.DataFrame]:
    """Registry features present in at least ``min_coverage`` of the labeled rows (all features otherwise),
    and the coverage table (feature, family, source, present share, used)."""
    feats = data.features
    share = rows[feats].notna().mean() if len(rows) else pd.Series(0.0, index=feats)
    registry = data.required is not None
    used = [f for f in feats if not registry or share[f] >= max(cfg.min_coverage, 1e-12)]
    cov = pd.DataFrame(
        {
            "feature": feats,
            "family": [fr.BY_NAME[f].family if f in fr.BY_NAME else "table" for f in feats],
            "source": [fr.BY_NAME[f].source if f in fr.BY_NAME else data.source for f in feats],
            "present": [float(share[f]) for f in feats],
            "used": [f in set(used) for f in feats],
            "note": [data.unavailable.get(f, "") for f in feats],
        }
    )
    return used, cov


def _check_size(rows: pd.DataFrame, cfg: TrainConfig, labeled: int) -> None:
    """A clear error naming the numbers when there is not enough labeled history for the walk-forward."""
    n_dates = int(rows["date"].nunique()) if len(rows) else 0
    need_dates = int(np.ceil(cfg.n_splits / (1 - cfg.min_train_fraction)))
    need_rows = int(np.ceil(_window_need(cfg) / cfg.min_train_fraction))
    what = f"the options backtest run {cfg.trades_run}" if cfg.trade_filter else "the training config"
    if n_dates < need_dates or len(rows) < need_rows:
        raise UserInputError(
            f"training window too small: {what} gives {len(rows)} usable labeled {cfg.unit} on {n_dates} dates "
            f"({labeled} labeled, {labeled - len(rows)} before the features' warm-up); "
            f"the walk-forward (n_splits {cfg.n_splits}, min_train_fraction {cfg.min_train_fraction}, "
            f"inner_splits {cfg.inner_splits}) needs at least {need_rows} {cfg.unit} and {need_dates} dates "
            f"(the first training window must hold {_window_need(cfg)} {cfg.unit})"
        )


def train(cfg: TrainConfig, lake: Lake, progress: Callable[[str], None] | None = None) -> TrainingResult:
    """Walk-forward OOS predictions per family and the ensemble, then the final refit models."""
    say = progress or (lambda _msg: None)
    data = load(cfg, lake)
    rows = data.labeled
    feats, coverage = select_features(data, rows, cfg)
    required = list(data.required) if data.required is not None else feats
    required = [c for c in required if c in feats]
    usable = rows[required].notna().all(axis=1).to_numpy()
    _check_size(rows[usable], cfg, len(rows))
    channels, window = _window_of(cfg, data)
    cols = {fam: inputs(fam, feats, channels, window) for fam in cfg.families}
    try:
        splits = walk_forward(rows["date"], rows["label_end"], cfg.n_splits, cfg.min_train_fraction, cfg.embargo)
    except ValueError as exc:
        raise UserInputError(f"training window too small: {exc}") from None
    n_trials = cfg.total_trials
    oos_parts = []
    last: dict[str, Tuned] = {}
    evals: list[FoldEval] = []
    for k, split in enumerate(splits):
        train_rows = rows[split.train & usable].reset_index(drop=True)
        test_rows = rows[split.test].reset_index(drop=True)
        ok = usable[split.test]
        if len(train_rows) < _window_need(cfg) or len(np.unique(train_rows["label"])) < 2:
            raise UserInputError(
                f"walk-forward fold {k + 1}/{len(splits)}: training window too small: {len(train_rows)} usable "
                f"labeled {cfg.unit} with {train_rows['label'].nunique()} outcome(s) before "
                f"{pd.Timestamp(test_rows['date'].min()).date()}; it needs at least {_window_need(cfg)} "
                f"with both outcomes"
            )
        part = test_rows[["symbol", "date", REGIME, "label", "hold_ret", "label_end"]].copy()
        oof: dict[str, np.ndarray] = {}
        fitted: dict[str, tuple[Any, list[str]]] = {}
        for fam in cfg.families:
            say(f"fold {k + 1}/{len(splits)}: tuning {fam} ({cfg.trials(fam)} trials) on {len(train_rows):,} {cfg.unit}")
            tuned = tune(fam, train_rows, cols[fam], cfg, cfg.seed + k, (channels, window))
            est = make_estimator(fam, tuned.params, cfg.seed, channels, window)
            est.fit(train_rows[cols[fam]], train_rows["label"])
            part[f"prob_{fam}"] = _predict(est, test_rows[cols[fam]], ok)
            oof[fam] = tuned.oof
            last[fam] = tuned
            fitted[fam] = (est, cols[fam])
        weights = regime_weights(oof, train_rows["label"].to_numpy(), train_rows[REGIME].to_numpy())
        member_w = None
        if cfg.ensemble:
            probs = np.column_stack([part[f"prob_{f}"] for f in cfg.families])
            part[f"prob_{ENSEMBLE}"], member_w = _ensemble_prob(probs, part[REGIME].to_numpy(), weights)
        oos_parts.append(part)
        evals.append(FoldEval(test_rows[ok].reset_index(drop=True), fitted, None if member_w is None else member_w[ok]))
    oos = pd.concat(oos_parts, ignore_index=True)

    say("permutation importance on the out-of-sample folds")
    perm = permutation_importance(evals, list(cfg.families), cfg.ensemble, cfg.importance_rows, cfg.seed)

    say("refitting the final models on all usable labeled rows")
    full = rows[usable].reset_index(drop=True)
    fitted_final = {
        f: make_estimator(f, last[f].params, cfg.seed, channels, window).fit(full[cols[f]], full["label"])
        for f in cfg.families
    }
    results: dict[str, FamilyResult] = {}
    for fam, est in fitted_final.items():
        model = ClassifierSignalModel([est], cols[fam], cfg.long_threshold, cfg.short_threshold,
                                      allow_missing=True)  # fmt: skip
        results[fam] = FamilyResult(
            fam,
            model,
            evaluate(oos, f"prob_{fam}", cfg, n_trials),
            intrinsic_importance(fam, est, cols[fam]),
            perm[perm["model"] == fam].drop(columns="model").reset_index(drop=True),
            last[fam].params,
        )
    if cfg.ensemble:
        # out-of-sample weights: each family's accuracy edge on the walk-forward test blocks, per regime
        oos_prob: dict[str, np.ndarray] = {f: oos[f"prob_{f}"].to_numpy() for f in cfg.families}
        by_regime, default = regime_weights(oos_prob, oos["label"].to_numpy(), oos[REGIME].to_numpy())
        union = list(dict.fromkeys(c for f in cfg.families for c in cols[f]))
        model = ClassifierSignalModel(
            list(fitted_final.values()),
            union,
            cfg.long_threshold,
            cfg.short_threshold,
            regime_column=REGIME,
            regime_weights=by_regime,
            default_weights=default,
            estimator_features=[cols[f] for f in cfg.families],
            allow_missing=True,
        )
        share = np.asarray(default) / np.sum(default)
        own = pd.Series(0.0, index=union, name="importance")
        for s, f in zip(share, cfg.families, strict=True):
            own = own.add(s * results[f].importance, fill_value=0.0)
        results[ENSEMBLE] = FamilyResult(
            ENSEMBLE,
            model,
            evaluate(oos, f"prob_{ENSEMBLE}", cfg, n_trials),
            own,
            perm[perm["model"] == ENSEMBLE].drop(columns="model").reset_index(drop=True),
            {"regime_weights": by_regime, "default_weights": default, "weighted_by": "walk-forward OOS accuracy edge"},
        )
    return TrainingResult(data, oos, results, feats, coverage)
