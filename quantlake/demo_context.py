"""What every ``quantlake demo`` stage receives.  Stages live next to the code they show
(``<package>/demo.py`` with ``def stage(ctx: DemoContext) -> None``) and are run in order by
:mod:`quantlake.demo`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from quantlake.config import Paths
from quantlake.lake import Lake


@dataclass
class DemoContext:
    lake: Lake
    paths: Paths
    console: Console
    # label -> path of something a person can open afterwards (printed at the end of the demo)
    outputs: dict[str, Path] = field(default_factory=dict)
    # free-form results a later stage may use (e.g. the sweep's best params, a trained model's name)
    results: dict[str, Any] = field(default_factory=dict)

    def output(self, label: str, path: Path) -> None:
        self.outputs[label] = path
