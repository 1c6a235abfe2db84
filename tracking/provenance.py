"""Where a run's code came from: git commit, package versions, Prefect flow-run id (DESIGN §6)."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# distributions whose versions every run records (those not installed are skipped)
TRACKED_PACKAGES = (
    "quantlake",
    "numpy",
    "pandas",
    "pyarrow",
    "vectorbt",
    "backtrader",
    "duckdb",
    "deltalake",
    "mlflow",
    "prefect",
    "scikit-learn",
    "lightgbm",
)

_REPO_DIR = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(_REPO_DIR), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the repository quantlake is imported from, or None (installed wheel, no git)."""
    sha = _git("rev-parse", "HEAD")
    return sha if sha and len(sha) == 40 else None


def git_dirty() -> bool | None:
    """True if tracked files differ from HEAD (the commit alone does not describe the code)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


@functools.cache
def package_version(dist: str = "quantlake") -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def code_version() -> str:
    """``git:<sha>`` (``+dirty`` when tracked files are modified), else ``quantlake==<version>``."""
    sha = git_commit()
    if sha:
        return f"git:{sha}" + ("+dirty" if git_dirty() else "")
    return f"quantlake=={package_version('quantlake') or 'unknown'}"


def package_versions() -> dict[str, str]:
    """Versions of :data:`TRACKED_PACKAGES` that are installed, plus the Python version."""
    out = {"python": platform.python_version()}
    for dist in TRACKED_PACKAGES:
        v = package_version(dist)
        if v:
            out[dist] = v
    return out


def prefect_flow_run_id() -> str:
    """The id of the Prefect flow run we are inside, else ``"none"``.

    Prefect is only consulted if it is already imported: code that never imported it cannot be in a flow,
    and importing it costs seconds.
    """
    if "prefect" not in sys.modules:
        return "none"
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception:  # pragma: no cover - prefect internals
        return "none"
    return str(run_id) if run_id else "none"
