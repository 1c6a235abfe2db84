"""Where state lives (DESIGN §3) and the environment quantlake runs in.

Everything is under ``QUANTLAKE_HOME`` (default ``./.quantlake``): ``lake/`` for tables, ``mlflow/`` for
runs, ``paper/`` for the paper broker's ledger, ``reports/`` for files a person reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Offline-friendly defaults; set before prefect/mlflow are imported anywhere (see STACK notes in README).
_QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # a fresh PREFECT_HOME migrates its database first (10-16 s, more on a busy 2-core machine)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def quiet_environment() -> None:
    """Turn telemetry off unless the user chose otherwise (setdefault, never overwrite)."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def mlflow(self) -> Path:
        return self.home / "mlflow"

    @property
    def paper(self) -> Path:
        return self.home / "paper"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    def ensure(self) -> Paths:
        for p in (self.lake, self.mlflow, self.paper, self.reports):
            p.mkdir(parents=True, exist_ok=True)
        return self


def home() -> Path:
    """``$QUANTLAKE_HOME`` resolved to an absolute path (default ``./.quantlake``)."""
    return Path(os.environ.get("QUANTLAKE_HOME", ".quantlake")).expanduser().resolve()


def paths() -> Paths:
    return Paths(home())
