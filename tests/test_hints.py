"""Every `quantlake models promote` hint the product prints uses the command's real syntax (it said
`models promote NAME VERSION`; the command takes `--version V`)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def test_promote_hints_match_the_command() -> None:
    from quantlake.cli import app

    usage = CliRunner().invoke(app, ["models", "promote", "--help"], env={"COLUMNS": "200"}).output
    assert "--version" in usage
    hints = []
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        hints += [(path, m) for m in re.findall(r"quantlake models promote [^`\"\n]*", path.read_text())]
    assert hints, "the product prints promote hints"
    bad = [(str(p.relative_to(ROOT)), h) for p, h in hints if "--version" not in h and "--help" not in h]
    assert bad == []
