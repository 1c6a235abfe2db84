"""Secrets come from an environment variable or a Prefect Secret block — never from a config file, a
command-line argument or a log.  Values are returned to the caller only; nothing here prints them."""

from __future__ import annotations

import os
import sys
from typing import Any


def prefect_secret(name: str) -> Any | None:
    """The value of the Prefect Secret block ``name`` when Prefect is in use and reachable, else None.

    Only tried inside a process already running Prefect (a flow imported it) or with ``PREFECT_API_URL``
    set, so a plain script neither pays Prefect's import time nor starts an ephemeral server."""
    if "prefect" not in sys.modules and not os.environ.get("PREFECT_API_URL"):
        return None
    try:
        from prefect.blocks.system import Secret
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.settings import PREFECT_API_URL
    except ImportError:  # pragma: no cover - prefect is a dependency
        return None
    if not (PREFECT_API_URL.value() or FlowRunContext.get() or TaskRunContext.get()):
        return None
    try:
        block: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
        value = block.get()
    except Exception:  # no block, no server: the caller reports the missing secret clearly
        return None
    return value or None


def secret(env: str, block: str) -> str | None:
    """``$env`` if set (non-empty), else the Prefect Secret block ``block``, else None."""
    value = os.environ.get(env, "").strip()
    if value:
        return value
    found = prefect_secret(block)
    return str(found).strip() if found else None
