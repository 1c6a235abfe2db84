"""Commands of the research packages: equity (vectorbt), options (backtrader) and portfolios."""

from __future__ import annotations

import importlib

import typer


def register(app: typer.Typer) -> None:
    for mod in ("backtests.equity.cli", "backtests.options.cli", "backtests.portfolio.cli"):
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                continue
            raise
        module.register(app)
