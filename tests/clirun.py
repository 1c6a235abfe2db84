"""Run the ``quantlake`` entry point in-process as a user would (one line and an exit code on errors)."""

from __future__ import annotations

import sys

import pytest


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``quantlake ARGS``: (exit code, stdout, stderr)."""
    from quantlake import cli

    monkeypatch.setattr(sys, "argv", ["quantlake", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    got = capsys.readouterr()
    return code, got.out, got.err
