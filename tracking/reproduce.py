"""Re-execute a tracked run on exactly the data and config it recorded, and compare every metric.

The run's ``quantlake.job`` tag names the job, ``config.json`` holds its validated config and the
``lake.version.<table>`` tags the table versions it read.  The job runs again through
``Lake(pins=those versions)``, so data ingested since is invisible, and the new run is tagged
``quantlake.reproduces=<run id>``.  Metrics are compared for exact equality.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from quantlake.errors import ConfigError, UserInputError
from quantlake.lake import Lake
from tracking import provenance, tags
from tracking.errors import NotReproducibleError, RunNotFoundError, TrackingError
from tracking.jobs import get_job, run_job, validate_config
from tracking.run_context import client, store_label

RUN_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


@dataclass(frozen=True)
class MetricComparison:
    name: str
    original: float | None
    reproduced: float | None

    @property
    def identical(self) -> bool:
        a, b = self.original, self.reproduced
        if a is None or b is None:
            return False
        return a == b or (math.isnan(a) and math.isnan(b))


@dataclass(frozen=True)
class RunSpec:
    """What a run recorded about how to re-execute it."""

    run_id: str
    run_name: str
    experiment: str
    job: str
    job_module: str | None
    config: dict[str, Any]
    masked_fields: list[str]
    pins: dict[str, int]
    code_version: str | None
    status: str


@dataclass(frozen=True)
class Reproduction:
    original: RunSpec
    new_run_id: str
    metrics: list[MetricComparison]
    code_version: str
    # tables the new run read that the original did not (not pinned: the job's code probably changed)
    unpinned_reads: dict[str, int] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return all(m.identical for m in self.metrics)

    @property
    def code_changed(self) -> bool:
        return self.original.code_version != self.code_version


def get_run(c: MlflowClient, run_id: str) -> Run:
    if not RUN_ID_RE.fullmatch(run_id or ""):
        raise UserInputError(f"invalid run id {run_id!r}")
    try:
        return c.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RunNotFoundError(f"no run {run_id!r} in {store_label(c.tracking_uri)}") from None
        raise TrackingError(f"cannot read run {run_id!r}: {exc.message}") from None


def load_run_spec(run_id: str, mlflow_client: MlflowClient | None = None) -> RunSpec:
    """Read job, config, masked fields and lineage of ``run_id`` (NotReproducibleError if incomplete)."""
    c = mlflow_client or client()
    run = get_run(c, run_id)
    t = run.data.tags
    job = t.get(tags.JOB)
    if not job:
        raise NotReproducibleError(
            f"run {run_id} was not opened by quantlake's tracked_run (no {tags.JOB} tag): cannot reproduce it"
        )
    with tempfile.TemporaryDirectory(prefix="ql-repro-") as tmp:
        try:
            local = c.download_artifacts(run_id, tags.CONFIG_ARTIFACT, tmp)
            config = json.loads(Path(local).read_text())
        except (MlflowException, OSError, json.JSONDecodeError) as exc:
            raise NotReproducibleError(
                f"run {run_id} has no readable {tags.CONFIG_ARTIFACT}: {exc}"
            ) from None
    experiment = c.get_experiment(run.info.experiment_id)
    return RunSpec(
        run_id=run_id,
        run_name=run.info.run_name or run_id,
        experiment=experiment.name,
        job=job,
        job_module=t.get(tags.JOB_MODULE),
        config=config,
        masked_fields=json.loads(t.get(tags.MASKED_FIELDS, "[]")),
        pins=tags.lake_versions(t),
        code_version=t.get(tags.CODE_VERSION),
        status=run.info.status,
    )


def _drop_masked(config: dict[str, Any], masked: list[str]) -> dict[str, Any]:
    """Remove masked (secret) fields so the job's defaults/environment supply them again."""
    out = json.loads(json.dumps(config))
    for path in masked:
        if "[" in path:
            raise NotReproducibleError(f"secret list item {path!r} was masked and cannot be restored")
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def _metrics(c: MlflowClient, run_id: str) -> dict[str, float]:
    return dict(get_run(c, run_id).data.metrics)


def reproduce(run_id: str, lake_root: Path | str | None = None) -> Reproduction:
    """Re-run ``run_id``'s job with its recorded config on its recorded table versions; compare metrics."""
    c = client()
    spec = load_run_spec(run_id, c)
    job = get_job(spec.job, spec.job_module)
    try:
        config = validate_config(job, _drop_masked(spec.config, spec.masked_fields))
    except ConfigError as exc:
        hint = f" (secret fields {spec.masked_fields} are never logged)" if spec.masked_fields else ""
        raise NotReproducibleError(
            f"run {run_id}: recorded config no longer validates{hint}: {exc}"
        ) from None
    lake = Lake(lake_root, pins=spec.pins)
    new_run_id = run_job(
        job.name,
        config,
        lake=lake,
        experiment=spec.experiment,
        run_name=f"reproduce-{spec.run_name}"[:250],
        extra_tags={tags.REPRODUCES: run_id},
    )
    before, after = _metrics(c, run_id), _metrics(c, new_run_id)
    rows = [MetricComparison(k, before.get(k), after.get(k)) for k in sorted(set(before) | set(after))]
    read_now = tags.lake_versions(get_run(c, new_run_id).data.tags)
    result = Reproduction(
        original=spec,
        new_run_id=new_run_id,
        metrics=rows,
        code_version=provenance.code_version(),
        unpinned_reads={t: v for t, v in read_now.items() if t not in spec.pins},
    )
    c.set_tag(new_run_id, tags.REPRODUCED_IDENTICAL, str(result.identical).lower())
    return result
