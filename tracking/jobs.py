"""Registry of reproducible jobs: ``fn(config, lake) -> metrics`` plus the pydantic model of its config.

Research packages register their jobs with the decorator; :func:`run_job` runs one inside
:func:`~tracking.run_context.tracked_run` (config, lineage, provenance logged) and logs the returned
metrics.  A job logs artifacts through :func:`tracking.run_context.current_run`::

    @register_job("equity.sweep", SweepConfig, experiment="equity_sweep")
    def sweep(config: SweepConfig, lake: Lake) -> dict[str, float]:
        ...
        if (run := current_run()) is not None:
            run.log_frame("trades", trades)
        return {"sharpe": sharpe}

Jobs are discovered lazily: the modules in :data:`JOB_MODULES` plus every ``jobs.py`` module inside the
research packages (:data:`JOB_PACKAGES`) are imported the first time a job is looked up by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from quantlake.errors import ConfigError, UserInputError
from quantlake.lake import Lake
from tracking import tags
from tracking.errors import JobNotFoundError

JobFn = Callable[[Any, Lake], Mapping[str, float]]
F = TypeVar("F", bound=Callable[..., Mapping[str, float]])

# modules imported to discover jobs (besides every ``jobs.py`` found in JOB_PACKAGES)
JOB_MODULES: list[str] = ["tracking.demo_jobs"]
JOB_PACKAGES: tuple[str, ...] = ("features", "backtests", "risk", "tracking", "execution")

JOB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


@dataclass(frozen=True)
class Job:
    name: str
    config_model: type[BaseModel]
    fn: JobFn
    experiment: str
    description: str

    @property
    def module(self) -> str:
        return str(getattr(self.fn, "__module__", ""))


_REGISTRY: dict[str, Job] = {}
_IMPORT_ERRORS: dict[str, str] = {}
_discovered = False


def register_job(
    name: str, config_model: type[BaseModel], experiment: str | None = None, description: str = ""
) -> Callable[[F], F]:
    """Decorator registering ``fn(config, lake) -> metrics`` as job ``name`` (default experiment: the name's
    first dotted part, e.g. ``equity`` for ``equity.sweep``)."""
    if not JOB_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid job name {name!r}: lower-case dotted identifiers, e.g. 'equity.sweep'")
    if not (isinstance(config_model, type) and issubclass(config_model, BaseModel)):
        raise TypeError(f"job {name!r}: config_model must be a pydantic BaseModel subclass")

    def decorate(fn: F) -> F:
        existing = _REGISTRY.get(name)
        if existing is not None and _qualname(existing.fn) != _qualname(fn):
            raise ValueError(f"job {name!r} is already registered by {_qualname(existing.fn)}")
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = Job(name, config_model, fn, experiment or name.split(".")[0], doc)
        return fn

    return decorate


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def _jobs_modules_in(package: str) -> list[str]:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    found = []
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("jobs.py")):
            rel = path.relative_to(root).with_suffix("")
            if any(part.startswith((".", "_")) or part == "tests" for part in rel.parts[:-1]):
                continue
            found.append(".".join((package, *rel.parts)))
    return found


def _import(module: str) -> None:
    if module in _IMPORT_ERRORS:
        return
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken research module must not hide every other job
        _IMPORT_ERRORS[module] = f"{type(exc).__name__}: {exc}"


def discover(force: bool = False) -> None:
    """Import every job module once (see module doc)."""
    global _discovered
    if _discovered and not force:
        return
    modules = list(JOB_MODULES)
    for pkg in JOB_PACKAGES:
        modules += [m for m in _jobs_modules_in(pkg) if m not in modules]
    for m in modules:
        _import(m)
    _discovered = True


def get_job(name: str, module: str | None = None) -> Job:
    """Job ``name``; ``module`` (recorded by a run) is imported first, then everything is discovered."""
    if name not in _REGISTRY and module:
        _import(module)
    if name not in _REGISTRY:
        discover()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        broken = "".join(f"\n  could not import {m}: {e}" for m, e in sorted(_IMPORT_ERRORS.items()))
        raise JobNotFoundError(f"unknown job {name!r} (registered jobs: {known}){broken}")
    return _REGISTRY[name]


def list_jobs() -> list[Job]:
    discover()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def validate_config(job: Job, config: BaseModel | Mapping[str, Any]) -> BaseModel:
    """``config`` as an instance of the job's config model (ConfigError naming the bad field otherwise)."""
    if isinstance(config, job.config_model):
        return config
    data = config.model_dump() if isinstance(config, BaseModel) else dict(config)
    try:
        return job.config_model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config for job {job.name!r}: {problems}") from None


def _check_metrics(job: Job, metrics: Any) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"job {job.name!r} must return a mapping of metrics, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"job {job.name!r}: metric {key!r} is not a number ({value!r})") from None
        if math.isinf(out[str(key)]):
            raise UserInputError(f"job {job.name!r}: metric {key!r} is infinite")
    return out


def run_job(
    name: str,
    config: BaseModel | Mapping[str, Any],
    lake: Lake | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    extra_tags: Mapping[str, Any] | None = None,
) -> str:
    """Run job ``name`` tracked (see :func:`tracking.run_context.tracked_run`); returns the MLflow run id."""
    from tracking.run_context import tracked_run

    job = get_job(name)
    cfg = validate_config(job, config)
    lake = lake if lake is not None else Lake()
    run_tags = {tags.JOB_MODULE: job.module, **dict(extra_tags or {})}
    with tracked_run(experiment or job.experiment, job.name, cfg, lake, run_name, run_tags) as run:
        metrics = _check_metrics(job, job.fn(cfg, lake))
        run.log_metrics(metrics)
    return run.run_id
