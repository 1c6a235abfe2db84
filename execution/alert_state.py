"""Alert de-duplication: an alert notifies once per change of state, not on every run.

Each alert has a stable ``key`` (what it is about: ``drawdown:default:ml_ensemble``, ``flow:daily-scan``,
``heartbeat:ingest-equity/ingest-equity``) and a ``state`` (``warning``, ``critical``, or a severity plus a
fingerprint of the failure).  The last state per key lives in ``$QUANTLAKE_HOME/reports/alert_state.json``
(written atomically under a file lock, so concurrent flow runs cannot lose an update).  An alert whose key
is already in that state is a repeat: it is logged and recorded, but no e-mail or webhook goes out.  When
the condition clears (:func:`execution.alerts.resolve`), the key is removed and one "resolved" notice is
sent; the next occurrence alerts again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quantlake.config import paths

STATE_FILE = "alert_state.json"


def state_path() -> Path:
    return paths().reports / STATE_FILE


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                data = json.loads(path.read_text()) if path.exists() else {}
            except (OSError, ValueError):
                data = {}  # an unreadable state file only costs one repeated notification
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, sort_keys=True, indent=1))
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def transition(key: str, state: str, subject: str, path: Path | None = None) -> bool:
    """Record ``key`` in ``state``; True when that is a change (notify), False for a repeat."""
    with _locked(path or state_path()) as data:
        cur = data.get(key)
        if cur is not None and cur.get("state") == state:
            cur["last_seen"] = _now()
            cur["repeats"] = int(cur.get("repeats", 0)) + 1
            return False
        data[key] = {"state": state, "since": _now(), "last_seen": _now(), "repeats": 0, "subject": subject[:300]}
        return True


def clear(key: str, path: Path | None = None) -> dict[str, Any] | None:
    """Forget ``key``; returns what it was (None when it was not alerting)."""
    with _locked(path or state_path()) as data:
        return data.pop(key, None)


def active(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every key currently alerting, with its state and since when."""
    p = path or state_path()
    try:
        return dict(json.loads(p.read_text())) if p.exists() else {}
    except (OSError, ValueError):
        return {}
