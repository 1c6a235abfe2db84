"""One helper every flow uses to open an MLflow run with config, provenance and lineage (DESIGN §6).

```python
with tracked_run("equity_sweep", "equity.sweep", config, lake) as run:
    bars = lake.read("equity_bars")          # lineage: lake.versions_read
    ...
    run.log_metrics({"sharpe": 1.2})
    run.log_frame("trades", trades)
```

On entry the full validated config is logged as params (flattened) and as ``config.json``; tags record
the job, git commit, package versions and Prefect flow-run id.  On exit the version of every lake table read
through ``lake`` becomes a ``lake.version.<table>`` tag and ``lineage.json``.  An exception marks the run
FAILED (message in the ``quantlake.error`` tag) and propagates.  Everything logged passes the
:class:`~tracking.scrub.Scrubber`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from quantlake.config import paths, quiet_environment
from quantlake.errors import UserInputError
from quantlake.lake import Lake
from tracking import provenance, tags
from tracking.errors import TrackingError
from tracking.naming import run_label, unique_run_name
from tracking.params import param_dict, safe_key, tag_value
from tracking.scrub import Scrubber, config_secrets
from tracking.views import update_view

EXPERIMENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,119}$")
_REMOTE_SCHEMES = ("http://", "https://", "databricks")

_CURRENT: contextvars.ContextVar[RunHandle | None] = contextvars.ContextVar("quantlake_run", default=None)


# ---------------------------------------------------------------------------------------------- store
def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///$QUANTLAKE_HOME/mlflow/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or f"sqlite:///{paths().mlflow / 'mlflow.db'}"


def artifact_root() -> Path:
    """Where experiments created by quantlake keep their artifacts (local stores only)."""
    return paths().mlflow / "artifacts"


def is_local_store(uri: str) -> bool:
    return not uri.startswith(_REMOTE_SCHEMES)


def configure_mlflow() -> str:
    """Point MLflow at quantlake's store (see :func:`tracking_uri`), telemetry off; returns the URI."""
    quiet_environment()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # one-off "creating tables" chatter
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def store_label(uri: str | None = None) -> str:
    """The tracking URI for messages (a password inside it masked)."""
    return Scrubber(include_env=False).text(uri if uri is not None else tracking_uri())


def client() -> MlflowClient:
    """An MlflowClient on quantlake's store (tracking and registry)."""
    uri = configure_mlflow()
    return MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)


# MLflow 3's UI opens an experiment without this tag in GenAI mode (traces, evaluations); quantlake's runs
# are model-training runs: params, metrics, artifacts
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT}
# top-level config fields that say how a run executes, not what it tests: tags ``config.<field>``, not params,
# so MLflow's compare view and `runs compare` show the strategy's parameters
RUN_SETTINGS = frozenset({"name", "chunk_size", "report", "output_dir", "workers", "runner", "progress", "dask"})


def validate_experiment_name(name: str) -> str:
    if not EXPERIMENT_NAME_RE.fullmatch(name or ""):
        raise UserInputError(
            f"invalid experiment name {name!r}: use 1-100 characters from A-Z a-z 0-9 _ . - "
            "(it becomes a directory name)"
        )
    return name


def get_or_create_experiment(name: str) -> str:
    """The id of experiment ``name``, created if needed with its artifacts under
    ``$QUANTLAKE_HOME/mlflow/artifacts/<name>`` (a remote tracking server keeps its own artifact store).
    A deleted experiment of that name is restored."""
    validate_experiment_name(name)
    c = client()
    try:
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                c.restore_experiment(exp.experiment_id)
            if EXPERIMENT_KIND_TAG not in exp.tags:  # created before quantlake set the kind
                c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT)
            return str(exp.experiment_id)
        location = (artifact_root() / name).as_uri() if is_local_store(c.tracking_uri) else None
        try:
            return str(c.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS))
        except MlflowException as exc:  # created concurrently by another process
            exp = c.get_experiment_by_name(name)
            if exp is None:
                raise TrackingError(f"cannot create MLflow experiment {name!r}: {exc.message}") from None
            return str(exp.experiment_id)
    except MlflowException as exc:
        raise TrackingError(f"MLflow store {store_label(c.tracking_uri)} failed: {exc.message}") from None


def current_run() -> RunHandle | None:
    """The :class:`RunHandle` of the innermost :func:`tracked_run` in this context, if any.

    Lets a registered job function ``fn(config, lake) -> metrics`` log artifacts when it runs tracked."""
    return _CURRENT.get()


# ---------------------------------------------------------------------------------------------- handle
class RunHandle:
    """What a tracked block logs through.  Every string passes the run's scrubber."""

    def __init__(
        self, run_id: str, experiment_id: str, mlflow_client: MlflowClient, scrubber: Scrubber
    ) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.client = mlflow_client
        self.scrubber = scrubber

    # metrics / params / tags
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        batch = [mlflow.entities.Metric(safe_key(k), float(v), now, step or 0) for k, v in metrics.items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        clean = self.scrubber.data(dict(params))
        if clean:
            mlflow_params = [mlflow.entities.Param(k, v) for k, v in param_dict(clean).items()]
            self.client.log_batch(self.run_id, params=mlflow_params)

    def set_tags(self, values: Mapping[str, Any]) -> None:
        run_tags = [
            mlflow.entities.RunTag(safe_key(k), self.scrubber.text(tag_value(v))) for k, v in values.items()
        ]
        if run_tags:
            self.client.log_batch(self.run_id, tags=run_tags)

    # artifacts
    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, self.scrubber.text(text), _artifact_file(artifact_file))

    def log_dict(self, data: Any, artifact_file: str) -> None:
        text = json.dumps(self.scrubber.data(data), indent=2, sort_keys=True, default=str)
        self.client.log_text(self.run_id, text, _artifact_file(artifact_file))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a directory; secret values found in the bytes are masked in the logged copy."""
        src = Path(path)
        if not src.exists():
            raise UserInputError(f"cannot log artifact {src}: no such file or directory")
        with tempfile.TemporaryDirectory(prefix="ql-artifact-") as tmp:
            dst = Path(tmp) / src.name
            if src.is_dir():
                shutil.copytree(src, dst)
                files = [p for p in dst.rglob("*") if p.is_file()]
            else:
                shutil.copy2(src, dst)
                files = [dst]
            for f in files:
                data = f.read_bytes()
                clean = self.scrubber.bytes(data)
                if clean != data:
                    f.write_bytes(clean)
            if src.is_dir():
                self.client.log_artifacts(self.run_id, str(dst), artifact_path=_join(artifact_path, src.name))
            else:
                self.client.log_artifact(self.run_id, str(dst), artifact_path=artifact_path)

    def log_frame(self, name: str, df: pd.DataFrame, artifact_path: str | None = None) -> None:
        """Log ``df`` as ``<name>.parquet`` (string cells scrubbed)."""
        _check_name(name)
        df = self._scrub_frame(df)
        with tempfile.TemporaryDirectory(prefix="ql-frame-") as tmp:
            out = Path(tmp) / f"{name}.parquet"
            df.to_parquet(out, index=not isinstance(df.index, pd.RangeIndex))
            self.client.log_artifact(self.run_id, str(out), artifact_path=artifact_path)

    def log_figure(self, name: str, figure: Any, artifact_path: str | None = None) -> None:
        """Log a plotly figure as self-contained ``<name>.html`` (works offline), or a matplotlib figure as PNG."""
        _check_name(name)
        if hasattr(figure, "to_json") and hasattr(figure, "to_html"):
            raw = figure.to_json()
            clean = self.scrubber.text(raw)  # the figure's data and text; the embedded plotly.js is static
            if clean != raw:
                import plotly.io as pio

                figure = pio.from_json(clean, skip_invalid=True)
            html = figure.to_html(full_html=True, include_plotlyjs=True)
            self.client.log_text(self.run_id, html, _artifact_file(_join(artifact_path, f"{name}.html")))
        elif hasattr(figure, "savefig"):
            with tempfile.TemporaryDirectory(prefix="ql-fig-") as tmp:
                out = Path(tmp) / f"{name}.png"
                figure.savefig(out, dpi=110, bbox_inches="tight")
                self.client.log_artifact(self.run_id, str(out), artifact_path=artifact_path)
        else:
            raise TypeError(f"log_figure expects a plotly or matplotlib figure, got {type(figure).__name__}")

    def _scrub_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        out = df.rename(columns=lambda c: self.scrubber.text(c) if isinstance(c, str) else c)
        for col in out.columns:
            s = out[col]
            if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
                continue
            mapping = {}
            for u in s.dropna().unique():
                if isinstance(u, str):
                    clean = self.scrubber.text(u)
                    if clean != u:
                        mapping[u] = clean
            if mapping:
                if out is df:
                    out = df.copy()
                out[col] = s.replace(mapping)
        return out


def _check_name(name: str) -> None:
    if not ARTIFACT_NAME_RE.fullmatch(name):
        raise UserInputError(f"invalid artifact name {name!r}: use A-Z a-z 0-9 _ . - (no slashes)")


def _artifact_file(path: str) -> str:
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise UserInputError(f"invalid artifact path {path!r}: must be relative, without '..'")
    return path


def _join(prefix: str | None, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}" if prefix else name


# ---------------------------------------------------------------------------------------------- run
def _start_tags(job: str, config: BaseModel, masked: list[str], lake: Lake) -> dict[str, str]:
    fn_module = type(config).__module__
    out = {
        tags.JOB: job,
        tags.CONFIG_MODEL: f"{fn_module}:{type(config).__qualname__}",
        tags.CODE_VERSION: provenance.code_version(),
        tags.PACKAGES: json.dumps(provenance.package_versions(), sort_keys=True),
        tags.FLOW_RUN: provenance.prefect_flow_run_id(),
        tags.MASKED_FIELDS: json.dumps(masked),
    }
    sha = provenance.git_commit()
    if sha:
        out[tags.GIT_COMMIT] = sha
    if lake.pins:
        out[tags.LAKE_PINS] = json.dumps(dict(sorted(lake.pins.items())))
    return out


def _log_lineage(handle: RunHandle, lake: Lake) -> None:
    read = dict(sorted(lake.versions_read.items()))
    handle.set_tags({f"{tags.LAKE_VERSION_PREFIX}{t}": v for t, v in read.items()} | {tags.LAKE_URI: lake.uri})
    handle.log_dict(
        {"tables": read, "pins": dict(sorted(lake.pins.items())), "lake_root": lake.uri},
        tags.LINEAGE_ARTIFACT,
    )


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def tracked_run(
    experiment: str,
    job: str,
    config: BaseModel,
    lake: Lake,
    run_name: str | None = None,
    extra_tags: Mapping[str, Any] | None = None,
) -> Iterator[RunHandle]:
    """Open an MLflow run in ``experiment`` for ``job`` run with ``config`` over ``lake`` (see module doc).

    Nested inside another active MLflow run, the new run becomes its child.  The fluent MLflow API
    (``mlflow.sklearn.log_model`` ...) logs to this run inside the block."""
    if not isinstance(config, BaseModel):
        raise TypeError(f"tracked_run needs a validated pydantic config, got {type(config).__name__}")
    experiment_id = get_or_create_experiment(experiment)
    c = client()
    scrubber = Scrubber()
    dumped, masked, _ = config_secrets(config, scrubber)
    start_tags = {**_start_tags(job, config, masked, lake), **dict(extra_tags or {})}
    name = unique_run_name(c, experiment_id, run_label(job, dumped, run_name))
    try:
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=scrubber.text(name),
            nested=mlflow.active_run() is not None,
            tags={k: scrubber.text(tag_value(v)) for k, v in start_tags.items()},
        )
    except MlflowException as exc:
        raise TrackingError(
            f"cannot start an MLflow run in {store_label(c.tracking_uri)}: {exc.message}"
        ) from None
    handle = RunHandle(active.info.run_id, experiment_id, c, scrubber)
    token = _CURRENT.set(handle)
    try:
        handle.log_params({k: v for k, v in dumped.items() if k not in RUN_SETTINGS})
        handle.set_tags({f"config.{k}": v for k, v in dumped.items() if k in RUN_SETTINGS})
        handle.log_dict(dumped, tags.CONFIG_ARTIFACT)
        yield handle
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt | GeneratorExit) else "FAILED"
        with contextlib.suppress(Exception):  # the job's error matters more than a logging failure
            _log_lineage(handle, lake)
        with contextlib.suppress(Exception):
            handle.set_tags({tags.ERROR: _error_text(exc)})
        _end(handle.run_id, status)
        raise
    else:
        try:
            _log_lineage(handle, lake)
        except Exception as exc:
            _end(handle.run_id, "FAILED")
            raise TrackingError(f"run {handle.run_id}: could not record lineage: {exc}") from exc
        _end(handle.run_id, "FINISHED")
        with contextlib.suppress(Exception):  # a view is a convenience: never fail a finished run for it
            data = c.get_run(handle.run_id).data
            update_view(c, experiment_id, data.metrics, data.params)
    finally:
        _CURRENT.reset(token)


def _end(run_id: str, status: str) -> None:
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)
    else:  # the block ended or replaced the fluent run itself: terminate ours explicitly
        client().set_terminated(run_id, status)
