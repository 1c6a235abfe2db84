"""Monitoring of a champion signal model: its live inputs against its training window (population stability
index per feature) and its paper performance against its backtest.  Past the thresholds the flow
(:mod:`flows.monitor`) starts a ``train-models`` run whose new version goes through the promotion gate.

PSI per feature (:mod:`tracking.ml.psi`: quantile bins of the training values, discrete features read as
spread densities, each feature's limit from its own training window) between the training window's rows and
the live window's: the last ``live_days`` trading days after the training data ended, up to ``as_of`` or by
default the newest date of the model's own inputs (:func:`live_dates`).

Paper performance: the champion's ``exec_account`` snapshots (strategy = the model's name) give daily returns;
their Sharpe ratio (:func:`quantlake.stats.sharpe_ratio`) is compared with the model's out-of-sample Sharpe
of its training run, and the paper drawdown with the backtest's maximum drawdown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from quantlake import stats
from quantlake.errors import UserInputError
from quantlake.lake import Lake
from tracking.ml.psi import feature_drift

EXPERIMENT = "monitoring"
JOB = "models.monitor"
DATA_START_TAG = "quantlake.data_start"  # first / last labeled date of a models.train run (set by report.py)
DATA_END_TAG = "quantlake.data_end"


class MonitorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="ml_ensemble", description="registered model whose champion is checked")
    as_of: dt.date | None = Field(
        default=None, description="last day of live inputs (default: the newest date of the model's own inputs)"
    )
    live_days: int = Field(default=60, ge=5, le=1000, description="trading days of live inputs compared")
    bins: int = Field(default=10, ge=2, le=100, description="quantile bins of the training window")
    psi_threshold: float = Field(default=0.25, gt=0.0, description="a feature drifted past this PSI (at least)")
    baseline_margin: float = Field(
        default=2.0, ge=1.0, description="... and past this multiple of its largest PSI within the training window"
    )
    min_drifted: int = Field(default=1, ge=1, description="drifted features that trigger retraining")
    min_live_rows: int = Field(default=100, ge=10, description="live rows needed for a drift verdict")
    min_paper_days: int = Field(default=20, ge=5, description="paper days needed for a performance verdict")
    max_sharpe_shortfall: float = Field(
        default=1.0, gt=0.0, description="retrain when paper Sharpe < backtest OOS Sharpe - this"
    )
    max_drawdown_ratio: float = Field(
        default=1.5, gt=0.0, description="retrain when paper drawdown > this x the backtest's max drawdown"
    )
    retrain: bool = Field(default=True, description="start a train-models run when a threshold is crossed")
    retrain_config: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the champion's training config for the retraining"
    )
    gate: dict[str, Any] = Field(default_factory=dict, description="promotion gate of the retrained version")


@dataclasses.dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str  # the model's own (nested) training run
    parent_run_id: str
    family: str
    prefix: str
    config: dict[str, Any]  # the training run's validated config
    features: list[str]  # watched inputs: no sequence-window columns, no regime, no calendar (registry monitor=False)
    data_start: dt.date | None
    data_end: dt.date | None
    metrics: dict[str, float]


@dataclasses.dataclass
class MonitorReport:
    model: str
    version: str
    as_of: dt.date | None
    drift: pd.DataFrame  # feature, psi, train_rows, live_rows, train_mean, live_mean, drifted
    drift_status: str  # "ok" / "drift" / "insufficient data: ..."
    performance: dict[str, Any]
    reasons: list[str]
    window: dict[str, Any] = dataclasses.field(default_factory=dict)  # window_summary()

    @property
    def triggered(self) -> bool:
        return bool(self.reasons)


def champion(name: str) -> Champion:
    """The champion version of ``name`` and what its training run recorded."""
    import mlflow

    from tracking.ml.dataset import REGIME
    from tracking.ml.feature_registry import BY_NAME, split_inputs
    from tracking.ml.train import FAMILY_TAG
    from tracking.ml.train import JOB as TRAIN_JOB
    from tracking.registry import by_alias, validate_model_name
    from tracking.run_context import client
    from tracking.tags import CONFIG_ARTIFACT
    from tracking.tags import JOB as JOB_TAG

    validate_model_name(name)
    c = client()
    version = by_alias(name, "champion", c)
    if version is None or not version.run_id:
        raise UserInputError(f"model {name!r} has no champion to monitor (promote a version first: quantlake models promote)")
    run = c.get_run(version.run_id)
    family = run.data.tags.get(FAMILY_TAG)
    parent_id = run.data.tags.get("mlflow.parentRunId")
    parent = c.get_run(parent_id) if parent_id else None
    if family is None or parent is None or parent.data.tags.get(JOB_TAG) != TRAIN_JOB:
        raise UserInputError(f"{name} v{version.version} was not trained by {TRAIN_JOB}: there is nothing to monitor or retrain")
    config = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/{CONFIG_ARTIFACT}")
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}").unwrap_python_model()
    plain, _ = split_inputs(list(model.features))
    tags = parent.data.tags

    def day(key: str, fallback: Any) -> dt.date | None:
        v = tags.get(key) or fallback
        return dt.date.fromisoformat(str(v)[:10]) if v else None

    suffix = f"_{family}"
    return Champion(
        name=name, version=str(version.version), run_id=run.info.run_id, parent_run_id=parent.info.run_id,
        family=family, prefix=name[: -len(suffix)] if name.endswith(suffix) else name,
        config=config, features=[f for f in plain if f != REGIME and (f not in BY_NAME or BY_NAME[f].monitor)],
        data_start=day(DATA_START_TAG, config.get("start")), data_end=day(DATA_END_TAG, config.get("end")),
        metrics=dict(run.data.metrics),
    )  # fmt: skip


def input_frames(lake: Lake, champ: Champion, as_of: dt.date | None, live_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training-window rows, live rows) of the champion's input features, built the way training built them:
    the live rows are those of the last ``live_days`` of :func:`live_dates`."""
    from tracking.ml.dataset import load_dataset

    cfg = champ.config
    data = load_dataset(
        lake, cfg.get("symbols"), champ.data_start, as_of, horizon=int(cfg.get("horizon", 5)),
        lag=int(cfg.get("lag", 1)), feature_table=cfg.get("feature_table"), feature_columns=champ.features or None,
        regime_table=None, feature_set=cfg.get("feature_set", "table"),
    )  # fmt: skip
    frame = data.frame
    dates = pd.to_datetime(frame["date"])
    end = pd.Timestamp(champ.data_end) if champ.data_end else dates.max()
    train = frame[dates <= end]
    live = live_dates(train, frame[dates > end], champ.features)[-live_days:]
    return train, frame[dates.isin(live)]


def live_dates(train: pd.DataFrame, after: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The dates after the training window that hold the model's own inputs: at least half as many symbols
    with input values as the training window's median date.  The newest of them is the live window's default
    end — not the newest date of the lake or of any one symbol (an index or ^VIX running years past the stocks
    a model was trained on, in the same tables, does not make a live window)."""
    cols = [f for f in features if f in train.columns and f in after.columns]

    def per_date(rows: pd.DataFrame) -> pd.Series:
        present = rows[rows[cols].notna().any(axis=1)] if cols else rows
        return present.groupby(pd.to_datetime(present["date"]))["symbol"].nunique()

    typical = float(per_date(train).median()) if len(train) else float("nan")
    counts = per_date(after)
    return np.sort(counts.index[counts >= (typical / 2 if np.isfinite(typical) else 1.0)].to_numpy())


def window_summary(train: pd.DataFrame, live: pd.DataFrame, as_of: dt.date | None) -> dict[str, Any]:
    """What the check compared: the training and live windows (dates, rows, symbols)."""

    def span(rows: pd.DataFrame) -> dict[str, Any]:
        d = pd.to_datetime(rows["date"])
        return {"start": str(d.min().date()) if len(rows) else None, "end": str(d.max().date()) if len(rows) else None,
                "days": int(d.nunique()), "rows": len(rows), "symbols": sorted(map(str, rows["symbol"].unique()))}  # fmt: skip

    live_span, train_span = span(live), span(train)
    return {"train": train_span, "live": live_span,
            "end_rule": f"--as-of {as_of}" if as_of else "the newest date of its own inputs",
            "missing_symbols": sorted(set(train_span["symbols"]) - set(live_span["symbols"]))}  # fmt: skip


def describe_window(window: dict[str, Any]) -> list[str]:
    """Lines saying which windows were compared (the CLI and the Prefect artifact print them)."""
    tr, lv = window["train"], window["live"]
    lines = [f"training window {tr['start']} – {tr['end']}: {tr['days']:,} days, {tr['rows']:,} rows of "
             f"{len(tr['symbols'])} symbol(s)"]  # fmt: skip
    if lv["rows"]:
        lines.append(f"live window {lv['start']} – {lv['end']} (end: {window['end_rule']}): {lv['days']:,} days, "
                     f"{lv['rows']:,} rows of {len(lv['symbols'])} symbol(s)")  # fmt: skip
    else:
        lines.append(f"live window: no rows after the training window (end: {window['end_rule']})")
    if lv["rows"] and window["missing_symbols"]:
        missing = window["missing_symbols"]
        lines.append(f"{len(missing)} training symbol(s) without live rows: {', '.join(missing[:10])}"
                     f"{' ...' if len(missing) > 10 else ''}")  # fmt: skip
    return lines


def paper_performance(lake: Lake, champ: Champion, cfg: MonitorConfig) -> dict[str, Any]:
    """The champion's paper account (``exec_account`` rows of strategy = model name) vs its backtest."""
    backtest_sharpe = champ.metrics.get("oos_sharpe")
    backtest_dd = champ.metrics.get("max_drawdown")
    out: dict[str, Any] = {"status": "no paper account", "days": 0, "paper_sharpe": None,
                           "backtest_sharpe": backtest_sharpe, "paper_drawdown": None,
                           "backtest_max_drawdown": None if backtest_dd is None else abs(backtest_dd), "degraded": []}  # fmt: skip
    if not lake.exists("exec_account"):
        return out
    acc = lake.read("exec_account", columns=["strategy", "trade_date", "equity", "recorded_at"])
    acc = acc[acc["strategy"] == champ.name].sort_values(["trade_date", "recorded_at"])
    equity = acc.groupby("trade_date")["equity"].last()
    if cfg.as_of is not None:
        equity = equity[pd.to_datetime(equity.index) <= pd.Timestamp(cfg.as_of)]
    returns = equity.pct_change().dropna()
    out["days"] = len(returns)
    if len(returns) < cfg.min_paper_days:
        out["status"] = f"insufficient data: {len(returns)} paper day(s) of {cfg.min_paper_days} needed"
        return out
    sharpe = float(stats.sharpe_ratio(returns.to_numpy()))
    dd = abs(float(stats.max_drawdown_of_equity(equity.to_numpy())))
    out.update({"status": "ok", "paper_sharpe": sharpe, "paper_drawdown": dd})
    if backtest_sharpe is not None and sharpe < backtest_sharpe - cfg.max_sharpe_shortfall:
        out["degraded"].append(f"paper Sharpe {sharpe:.2f} over {len(returns)} days < backtest {backtest_sharpe:.2f} "
                               f"- {cfg.max_sharpe_shortfall:g}")  # fmt: skip
    if backtest_dd is not None and dd > cfg.max_drawdown_ratio * abs(backtest_dd):
        out["degraded"].append(f"paper drawdown {dd:.1%} > {cfg.max_drawdown_ratio:g} x backtest {abs(backtest_dd):.1%}")
    if out["degraded"]:
        out["status"] = "degraded"
    return out


def check(cfg: MonitorConfig, lake: Lake | None = None, champ: Champion | None = None) -> MonitorReport:
    """Drift and performance of ``cfg.model``'s champion; ``reasons`` is non-empty when it should retrain."""
    lake = lake or Lake()
    champ = champ or champion(cfg.model)
    train, live = input_frames(lake, champ, cfg.as_of, cfg.live_days)
    reasons: list[str] = []
    if len(live) < cfg.min_live_rows:
        drift = feature_drift(train.iloc[:0], live.iloc[:0], [], cfg.bins, cfg.psi_threshold, cfg.baseline_margin)
        status = (f"insufficient data: {len(live)} live row(s) after the training data ended "
                  f"({champ.data_end}) of {cfg.min_live_rows} needed")  # fmt: skip
    else:
        drift = feature_drift(train, live, champ.features, cfg.bins, cfg.psi_threshold, cfg.baseline_margin)
        drifted = drift[drift["drifted"]]
        status = "drift" if len(drifted) >= cfg.min_drifted else "ok"
        if status == "drift":
            top = ", ".join(f"{r.feature} PSI {r.psi:.2f} > {r.limit:.2f}" for r in drifted.head(5).itertuples())
            reasons.append(f"{len(drifted)} of {len(drift)} feature(s) drifted ({top})")
    perf = paper_performance(lake, champ, cfg)
    reasons.extend(perf["degraded"])
    live_end = pd.to_datetime(live["date"]).max() if len(live) else None
    return MonitorReport(champ.name, champ.version, live_end.date() if live_end is not None else cfg.as_of,
                         drift, status, perf, reasons, window_summary(train, live, cfg.as_of))  # fmt: skip


def retrain_parameters(champ: Champion, cfg: MonitorConfig) -> dict[str, Any]:
    """``train_models_flow`` parameters: the champion's training config up to today (+ overrides), its
    prefix, and the promotion of the retrained version of the champion's name through ``cfg.gate``."""
    config = {**champ.config, "end": None, **cfg.retrain_config}
    return {"config": config, "prefix": champ.prefix, "promote": [champ.name], "gate": cfg.gate}


def record(report: MonitorReport, cfg: MonitorConfig, retraining: dict[str, Any] | None) -> str:
    """A run in the ``monitoring`` experiment: PSI per feature, paper vs backtest, the decision."""
    from tracking.run_context import tracked_run

    triggered = report.triggered
    with tracked_run(EXPERIMENT, JOB, cfg, Lake(), run_name=f"{report.model} v{report.version} "
                     f"{'retrain' if triggered else 'ok'}") as run:  # fmt: skip
        metrics = {f"psi.{r.feature}": float(r.psi) for r in report.drift.itertuples()}
        metrics["drifted_features"] = float(report.drift["drifted"].sum()) if len(report.drift) else 0.0
        metrics["max_psi"] = float(report.drift["psi"].max()) if len(report.drift) else 0.0
        perf = report.performance
        for k in ("paper_sharpe", "backtest_sharpe", "paper_drawdown", "backtest_max_drawdown"):
            if perf.get(k) is not None:
                metrics[k] = float(perf[k])
        run.log_metrics(metrics)
        run.set_tags({"monitor.model": report.model, "monitor.version": report.version,
                      "monitor.triggered": str(triggered).lower(), "monitor.drift": report.drift_status[:500],
                      "monitor.performance": str(perf["status"])[:500],
                      "monitor.reasons": "; ".join(report.reasons)[:4900],
                      "monitor.retraining": str((retraining or {}).get("flow_run_id") or
                                                (retraining or {}).get("run_id") or "none")})  # fmt: skip
        if len(report.drift):
            run.log_frame("drift", report.drift)
        run.log_dict({"as_of": str(report.as_of), "window": report.window, "performance": perf,
                      "reasons": report.reasons, "retraining": retraining}, "monitor.json")  # fmt: skip
    return run.run_id


def summary_markdown(report: MonitorReport, retraining: dict[str, Any] | None) -> str:
    lines = [f"# {report.model} v{report.version}: {'RETRAIN' if report.triggered else 'ok'}", "",
             f"* inputs as of {report.as_of}: {report.drift_status}",
             *[f"* {line}" for line in (describe_window(report.window) if report.window else [])],
             f"* paper vs backtest: {report.performance['status']}"]  # fmt: skip
    lines += [f"* reason: {r}" for r in report.reasons]
    if retraining:
        lines.append(f"* retraining: {retraining}")
    if len(report.drift):
        lines += ["", "| feature | PSI | limit | train mean | live mean |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r.feature} | {r.psi:.3f} | {r.limit:.3f} | {r.train_mean:.4g} | {r.live_mean:.4g} |"
                  for r in report.drift.head(20).itertuples()]  # fmt: skip
    return "\n".join(lines)
