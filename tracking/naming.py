"""Run names that say what a run tested: ``strategy universe period hash`` (e.g.
``ema_cross SPY,AAPL,GOOG 2010-01-04..2017-12-29 3f9a1c``), unique within the experiment.

* strategy: the config's ``strategy.kind`` (or ``strategy``, ``kind``, ``model``), else the job name;
* universe: ``symbols`` / ``underlying(s)`` / ``pairs``: up to three, then ``+N``; ``all`` when not set;
* period: ``start..end`` (an open end reads ``..``);
* hash: the first 6 hex digits of the config's SHA-1, so runs with the same name and different
  parameters differ; an identical re-run gets ``#2``, ``#3`` ... appended.

A name the caller gives that is not just the config's own ``name`` field is kept and made unique the same
way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mlflow.tracking import MlflowClient

_UNIVERSE_KEYS = ("symbols", "symbol", "underlyings", "underlying", "pairs", "tickers")
_STRATEGY_KEYS = ("strategy", "kind", "model", "model_kind", "rule")


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:6]


def _strategy(config: Mapping[str, Any], job: str) -> str:
    for key in _STRATEGY_KEYS:
        value = config.get(key)
        if isinstance(value, Mapping):
            value = value.get("kind") or value.get("name")
        if isinstance(value, str) and value:
            return value
    return job


def _universe(config: Mapping[str, Any]) -> str:
    for key in _UNIVERSE_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list | tuple) and value:
            items = ["/".join(v) if isinstance(v, list | tuple) else str(v) for v in value]
            return ",".join(items) if len(items) <= 3 else ",".join(items[:2]) + f"+{len(items) - 2}"
    return "all"


def _period(config: Mapping[str, Any]) -> str:
    start, end = config.get("start"), config.get("end")
    if not start and not end:
        return ""
    return f"{start or ''}..{end or ''}"


def run_label(job: str, config: Mapping[str, Any], given: str | None = None) -> str:
    """The run's name: ``given`` when it is more than the config's own ``name``, else
    ``strategy universe period hash`` (see the module docstring)."""
    if given and given != config.get("name"):
        return given
    parts = [_strategy(config, job), _universe(config), _period(config), config_hash(config)]
    return " ".join(p for p in parts if p)


def unique_run_name(client: MlflowClient, experiment_id: str, name: str) -> str:
    """``name``, or ``name #k`` with the first ``k`` no run of the experiment uses."""
    quoted = name.replace("'", "\\'")
    try:
        existing = client.search_runs(
            [experiment_id], filter_string=f"attributes.run_name LIKE '{quoted}%'", max_results=1000
        )
    except Exception:  # naming must never stop a run
        return name
    taken = {r.info.run_name for r in existing}
    if name not in taken:
        return name
    k = 2
    while f"{name} #{k}" in taken:
        k += 1
    return f"{name} #{k}"
