"""The model registry: signal models (rules and ML) logged as pyfunc, registered, looked up by alias.

A model is registered from inside a tracked run (so its lineage, config and out-of-sample metrics are the
run's); each version carries tags ``quantlake.kind`` (``rule``/``classifier``), ``quantlake.job`` and copies
of the run's ``oos_*`` metrics.  Aliases: ``champion`` (what the scanner trades) and ``previous`` (the
champion before it), moved only by :mod:`tracking.promotion`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from quantlake.errors import UserInputError
from tracking import provenance, tags
from tracking.errors import ModelNotFoundError, TrackingError
from tracking.run_context import RunHandle, client
from tracking.scrub import Scrubber
from tracking.signal_models import KEYS, SignalModel

CHAMPION = "champion"
PREVIOUS = "previous"
KIND_TAG = "quantlake.kind"
MODEL_URI_TAG = "quantlake.model_uri"  # run tag: the signal model the run logged (see register_from_run)
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
OOS_PREFIX = "oos_"


@dataclass(frozen=True)
class LoggedSignalModel:
    model_uri: str
    name: str
    version: str | None


def validate_model_name(name: str) -> str:
    if not MODEL_NAME_RE.fullmatch(name or ""):
        raise UserInputError(f"invalid model name {name!r}: use 1-100 characters from A-Z a-z 0-9 _ . -")
    return name


def _requirements() -> list[str]:
    """Pinned requirements of a signal model (explicit: MLflow's inference would start a subprocess)."""
    out = []
    for dist in ("mlflow", "pandas", "numpy", "scikit-learn", "lightgbm", "pydantic"):
        v = provenance.package_version(dist)
        if v:
            out.append(f"{dist}=={v}")
    return out


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def model_input(frame: pd.DataFrame, model: SignalModel) -> pd.DataFrame:
    """The columns a model reads, with ``date`` as datetime64 (what its signature declares)."""
    out = frame[[*KEYS, *model.features]].copy()
    out["date"] = pd.to_datetime(out["date"])
    return out.reset_index(drop=True)


def log_signal_model(
    run: RunHandle,
    model: SignalModel,
    example: pd.DataFrame,
    registered_name: str | None = None,
    artifact_name: str = "signal_model",
    version_tags: dict[str, Any] | None = None,
) -> LoggedSignalModel:
    """Log ``model`` to ``run`` (the active tracked run) with a signature inferred from ``example``;
    register it as a new version of ``registered_name`` if given (tags: kind, job, run's ``oos_*``)."""
    active = mlflow.active_run()
    if active is None or active.info.run_id != run.run_id:
        raise TrackingError("log_signal_model must be called inside the tracked_run it logs to")
    if registered_name:
        validate_model_name(registered_name)
    example = model_input(example.head(50), model)
    signature = infer_signature(example, model.predict(None, example))
    with _quiet("mlflow.pyfunc", "mlflow.models.model", "mlflow.tracking._model_registry.client"):
        info = mlflow.pyfunc.log_model(
            name=artifact_name,
            python_model=model,
            signature=signature,
            input_example=example.head(3),
            pip_requirements=_requirements(),
        )
    run.set_tags({MODEL_URI_TAG: info.model_uri, KIND_TAG: model.kind})
    version = None
    if registered_name:
        version = register_version(
            registered_name, info.model_uri, run.run_id, model.kind, version_tags, scrubber=run.scrubber
        )
    return LoggedSignalModel(info.model_uri, registered_name or "", version)


def register_version(
    name: str,
    model_uri: str,
    run_id: str,
    kind: str,
    version_tags: dict[str, Any] | None = None,
    scrubber: Scrubber | None = None,
) -> str:
    """Register a logged model (``models:/<model id>``) as a new version of ``name``; returns the version.

    Version tags: ``quantlake.kind``, the run's job, copies of its ``oos_*`` metrics and ``version_tags``
    (scrubbed by ``scrubber``, the logging run's when called from :func:`log_signal_model`, which also knows
    its config's secrets)."""
    validate_model_name(name)
    c = client()
    with contextlib.suppress(MlflowException):  # already exists
        c.create_registered_model(name)
    run_data = c.get_run(run_id).data
    scrub = scrubber or Scrubber()
    vtags = {
        KIND_TAG: kind,
        tags.JOB: run_data.tags.get(tags.JOB, ""),
        **{k: repr(v) for k, v in run_data.metrics.items() if k.startswith(OOS_PREFIX)},
        **{k: scrub.text(str(v)) for k, v in (version_tags or {}).items()},
    }
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    try:
        mv = c.create_model_version(name, model_uri, run_id=run_id, tags=vtags, model_id=model_id)
    except MlflowException as exc:
        raise TrackingError(f"cannot register {model_uri} as {name!r}: {exc.message}") from None
    return str(mv.version)


def register_from_run(run_id: str, name: str) -> str:
    """Register the signal model a run logged (its ``quantlake.model_uri`` tag) as a version of ``name``."""
    c = client()
    run = c.get_run(run_id)
    uri = run.data.tags.get(MODEL_URI_TAG)
    if not uri:
        raise UserInputError(f"run {run_id} logged no signal model (no {MODEL_URI_TAG} tag)")
    if run.info.status != "FINISHED":
        raise UserInputError(
            f"run {run_id} is {run.info.status}; only finished runs' models can be registered"
        )
    return register_version(name, uri, run_id, run.data.tags.get(KIND_TAG, "signal"))


# ----------------------------------------------------------------------------------------- lookup
def get_version(name: str, version: str | int, c: MlflowClient | None = None) -> ModelVersion:
    c = c or client()
    validate_model_name(name)
    try:
        return c.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            known = ", ".join(str(v.version) for v in _versions(c, name)) or "none"
            raise ModelNotFoundError(f"model {name!r} has no version {version} (versions: {known})") from None
        raise TrackingError(f"cannot read model {name!r} v{version}: {exc.message}") from None


def by_alias(name: str, alias: str, c: MlflowClient | None = None) -> ModelVersion | None:
    c = c or client()
    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _versions(c: MlflowClient, name: str) -> list[ModelVersion]:
    try:
        found = c.search_model_versions(f"name = '{name}'", max_results=10000)
    except MlflowException:
        return []
    return sorted(found, key=lambda v: int(v.version))


def registered_models(c: MlflowClient | None = None) -> list[RegisteredModel]:
    c = c or client()
    out: list[RegisteredModel] = []
    token = None
    while True:
        page = c.search_registered_models(max_results=100, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return sorted(out, key=lambda m: m.name)


@dataclass(frozen=True)
class ModelSummary:
    name: str
    kind: str
    latest: str
    versions: int
    champion: str | None
    previous: str | None
    champion_sharpe: float | None
    last_decision: str


def list_models() -> list[ModelSummary]:
    c = client()
    out = []
    for rm in registered_models(c):
        versions = _versions(c, rm.name)
        if not versions:
            continue
        aliases = {k: str(v) for k, v in (rm.aliases or {}).items()}
        champ = next((v for v in versions if str(v.version) == aliases.get(CHAMPION)), None)
        decided = [v for v in versions if v.tags.get("promotion.decided_at")]
        last = max(decided, key=lambda v: dt.datetime.fromisoformat(v.tags["promotion.decided_at"])) if decided else None
        sharpe = champ.tags.get("oos_sharpe") if champ else None
        out.append(
            ModelSummary(
                name=rm.name,
                kind=versions[-1].tags.get(KIND_TAG, "?"),
                latest=str(versions[-1].version),
                versions=len(versions),
                champion=aliases.get(CHAMPION),
                previous=aliases.get(PREVIOUS),
                champion_sharpe=float(sharpe) if sharpe else None,
                last_decision=(f"v{last.version} {last.tags['promotion.decision']}" if last else ""),
            )
        )
    return out
