"""Turn a nested config into MLflow params: flat dotted keys, string values within MLflow's limits."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

TRUNCATION_MARK = "...[truncated]"
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` → ``{"a.b": 1, "c": [1, 2]}`` (lists stay whole: one param each)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def to_param_value(value: Any) -> str:
    """A param's string form: JSON for containers and null, ``str`` for scalars."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, list | tuple | dict | bool):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def safe_key(key: str) -> str:
    """An MLflow-legal param/metric/tag key (bad characters become ``_``, at most 250 characters)."""
    key = _BAD_KEY_CHARS.sub("_", key).strip() or "_"
    return key[:MAX_ENTITY_KEY_LENGTH]


def param_dict(data: Mapping[str, Any]) -> dict[str, str]:
    """Flattened, stringified, key-sanitised and length-limited params."""
    return {safe_key(k): truncate(to_param_value(v), MAX_PARAM_VAL_LENGTH) for k, v in flatten(data).items()}


def tag_value(value: Any) -> str:
    return truncate(to_param_value(value), MAX_TAG_VAL_LENGTH)
