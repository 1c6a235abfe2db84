"""Test helper: seed a fresh QUANTLAKE_HOME with an empty MLflow sqlite store in ~0.1 s.

Creating the schema takes MLflow ~6 s (dozens of migrations); tests copy a template made once per MLflow
version into ``cache_dir`` instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient


def template_db(cache_dir: Path) -> Path:
    """An empty, fully migrated MLflow sqlite database for this MLflow version (created once)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"mlflow-{mlflow.__version__}.db"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        db = Path(tmp) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # runs the migrations
        os.replace(db, target)  # atomic: concurrent creators simply overwrite with an equal file
    return target


def seed_store(home: Path, cache_dir: Path) -> Path:
    """Copy the template database to ``home/mlflow/mlflow.db`` (what ``configure_mlflow`` uses)."""
    dst = home / "mlflow" / "mlflow.db"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        shutil.copyfile(template_db(cache_dir), dst)
    return dst
