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
    """Turn telemetry off unless the user chose otherwise (setdefault, never overwrite); log records of this
    process never carry credentials of URLs (:mod:`quantlake.redact`)."""
    from quantlake.redact import install_log_redaction

    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    install_log_redaction()


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


def config_file() -> Path:
    """The optional settings file: ``$QUANTLAKE_CONFIG``, else ``$QUANTLAKE_HOME/config.yaml``."""
    explicit = os.environ.get("QUANTLAKE_CONFIG")
    return Path(explicit).expanduser() if explicit else home() / "config.yaml"


def setting(section: str, key: str) -> str | None:
    """A value from the config file (YAML: ``section: {key: value}``), or None when absent.

    Example ``config.yaml``::

        lake: {uri: s3://research-bucket/quantlake}
        dask: {address: tcp://10.0.0.5:8786}

    Environment variables win over the file (each caller checks its variable first).
    """
    from quantlake.errors import ConfigError

    path = config_file()
    if not path.is_file():
        if os.environ.get("QUANTLAKE_CONFIG"):
            raise ConfigError(f"QUANTLAKE_CONFIG names {path}, which does not exist")
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (e.g. 'lake: {{uri: ...}}')")
    block = data.get(section)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ConfigError(f"{path}: '{section}' must be a mapping (e.g. '{section}: {{{key}: ...}}')")
    value = block.get(key)
    return None if value is None else str(value)


def dask_address(explicit: str | None = None) -> str | None:
    """The Dask scheduler to run research on: ``explicit`` (``--dask-address``), else
    ``$QUANTLAKE_DASK_ADDRESS``, else ``dask.address`` in the config file; None = no existing cluster."""
    import re

    from quantlake.errors import ConfigError

    value = explicit or os.environ.get("QUANTLAKE_DASK_ADDRESS") or setting("dask", "address")
    if not value:
        return None
    value = value.strip()
    if not re.fullmatch(r"(tcp|tls|ws|wss|inproc)://[A-Za-z0-9.\-\[\]:_]+:\d{1,5}", value):
        raise ConfigError(f"Dask address {value!r}: expected tcp://HOST:PORT (the scheduler's address)")
    return value
