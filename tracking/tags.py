"""Names of the tags and artifacts every tracked run carries (one place, so readers and writers agree)."""

from __future__ import annotations

JOB = "quantlake.job"  # the registered job name (what `runs reproduce` re-executes)
JOB_MODULE = "quantlake.job_module"  # module defining the job function (imported first by reproduce)
CONFIG_MODEL = "quantlake.config_model"  # "module:QualName" of the pydantic config class
CODE_VERSION = "quantlake.code_version"  # "git:<sha>[+dirty]" or "quantlake==<version>"
GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own tag, shown in its UI
PACKAGES = "quantlake.packages"  # JSON {distribution: version}
FLOW_RUN = "quantlake.prefect_flow_run_id"  # Prefect flow-run id or "none"
MASKED_FIELDS = "quantlake.masked_fields"  # JSON list of config paths whose values were masked
LAKE_PINS = "quantlake.lake_pins"  # JSON {table: version} the lake was pinned to (reproductions)
ERROR = "quantlake.error"  # "ExcType: message" of a failed run
REPRODUCES = "quantlake.reproduces"  # run id this run re-executed
REPRODUCED_IDENTICAL = "quantlake.reproduce_identical"  # "true"/"false" once compared
LAKE_VERSION_PREFIX = "lake.version."  # + table name -> version read
LAKE_URI = "lake.uri"  # where the lake read was (a folder or s3://bucket/prefix)

CONFIG_ARTIFACT = "config.json"
LINEAGE_ARTIFACT = "lineage.json"


def lake_versions(tags: dict[str, str]) -> dict[str, int]:
    """``{table: version}`` from a run's ``lake.version.<table>`` tags."""
    out: dict[str, int] = {}
    for key, value in tags.items():
        if key.startswith(LAKE_VERSION_PREFIX) and value.strip().isdigit():
            out[key[len(LAKE_VERSION_PREFIX) :]] = int(value)
    return out
