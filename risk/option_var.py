"""One-day VaR and CVaR of a book holding options: historical simulation by **full revaluation** over the
lake's history, next to the delta-gamma (Greeks) approximation on the same scenarios, and their difference.

Each of the last ``lookback`` trading days up to ``as_of`` is a scenario: every underlying moves by that day's
return (its own, else beta × the proxy's — :mod:`risk.moves`), every option's vol by that day's change of the
vol index, and one calendar day passes; the book is revalued in full (:class:`risk.revalue.Book`) and by
``Δ·dS + ½Γ·dS² + vega·dσ + θ·dt``.  VaR and CVaR of each P&L series are :func:`risk.metrics.var_historical`
and :func:`risk.metrics.cvar_historical` (losses as positive currency amounts; ``% of equity`` beside).

Why not the return-series VaR alone: an option book's future P&L is not its past equity curve — a short put
that has not yet been tested shows no tail in its own history.  Why not delta-gamma alone: for short options a
large move's loss is far from the quadratic (the difference row shows by how much for this book).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pandas as pd
from pydantic import Field

from quantlake.lake import Lake
from risk import metrics
from risk._model import RiskModel
from risk.book import Position
from risk.moves import betas, daily_moves
from risk.stress import StressConfig, book_of


class OptionVaRConfig(RiskModel):
    lookback: Annotated[int, Field(ge=20, le=10_000)] = 500
    confidences: tuple[float, ...] = (0.95, 0.99)


@dataclass
class OptionVaR:
    table: pd.DataFrame  # rows: full revaluation, delta-gamma, difference; columns var_95, cvar_95, ... (currency)
    pct: pd.DataFrame  # the same as fractions of equity (empty without equity)
    pnl: pd.DataFrame  # per scenario day: full, greeks
    sources: dict[str, str] = field(default_factory=dict)

    def notes(self) -> str:
        return "; ".join(f"{s}: {how}" for s, how in self.sources.items())


def option_var(positions: Sequence[Position], lake: Lake, stress: StressConfig | None = None,
               config: OptionVaRConfig | None = None, equity: float | None = None) -> OptionVaR:
    """Full-revaluation and delta-gamma VaR/CVaR of ``positions`` (see the module docstring)."""
    scfg = stress or StressConfig()
    cfg = config or OptionVaRConfig()
    book = book_of(positions, scfg)
    underlyings = list(dict.fromkeys(book.symbols))
    beta = betas(lake, underlyings, scfg.proxy, scfg.day, scfg.beta_lookback, scfg.beta_min_obs)
    mv = daily_moves(lake, underlyings, scfg.day, cfg.lookback, scfg.proxy, scfg.vol_index, beta)
    moves = mv.spot[book.symbols].to_numpy()
    vol = mv.vol.to_numpy()[:, None]
    full = book.leg_pnl(moves, vol, 1.0).sum(axis=1)
    approx = book.greeks_pnl(moves, vol, 1.0).sum(axis=1)
    pnl = pd.DataFrame({"full": full, "greeks": approx}, index=mv.spot.index)
    rows = {}
    for name, series in (("full revaluation", full), ("delta-gamma", approx)):
        row = {}
        for c in cfg.confidences:
            tag = f"{c * 100:g}".replace(".", "_")
            row[f"var_{tag}"] = metrics.var_historical(series, c)
            row[f"cvar_{tag}"] = metrics.cvar_historical(series, c)
        rows[name] = row
    table = pd.DataFrame(rows).T
    table.loc["difference"] = table.loc["full revaluation"] - table.loc["delta-gamma"]
    table.index.name = "method"
    pct = table / equity if equity else pd.DataFrame()
    return OptionVaR(table, pct, pnl, mv.sources)


def has_options(positions: Sequence[Position]) -> bool:
    return any(p.is_option for p in positions)


__all__ = ["OptionVaR", "OptionVaRConfig", "has_options", "option_var"]
