"""A small job to exercise tracking end to end: row counts and average closes per symbol of ``equity_bars``."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from quantlake.errors import InvalidSymbolError, UserInputError
from quantlake.lake import Lake, symbol_date_filter
from quantlake.tables import validate_symbol
from tracking.jobs import register_job
from tracking.run_context import current_run


class LakeStatsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbols: list[str] | None = None  # None: every symbol in the table
    start: dt.date | None = None
    end: dt.date | None = None

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        try:
            return None if v is None else sorted({validate_symbol(s) for s in v})
        except InvalidSymbolError as exc:  # a ValueError lets pydantic name the field
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _range(self) -> LakeStatsConfig:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


@register_job("demo.lake_stats", LakeStatsConfig, experiment="demo")
def lake_stats(config: LakeStatsConfig, lake: Lake) -> dict[str, float]:
    """Rows, symbols and average close (overall and per symbol) of equity_bars."""
    where, params = symbol_date_filter(config.symbols, config.start, config.end)
    bars = lake.read("equity_bars", columns=["symbol", "date", "close"], where=where, params=params)
    if bars.empty:
        raise UserInputError("demo.lake_stats: no equity_bars rows match the config")
    per = (
        bars.groupby("symbol", sort=True)
        .agg(rows=("close", "size"), avg_close=("close", "mean"), first=("date", "min"), last=("date", "max"))
        .reset_index()
    )
    metrics: dict[str, float] = {
        "rows": float(len(bars)),
        "symbols": float(len(per)),
        "avg_close": float(bars["close"].mean()),
    }
    for sym, n, avg in zip(per["symbol"], per["rows"].to_numpy(), per["avg_close"].to_numpy(), strict=True):
        metrics[f"rows.{sym}"] = float(n)
        metrics[f"avg_close.{sym}"] = float(avg)
    run = current_run()
    if run is not None:
        run.log_frame("per_symbol", pd.DataFrame(per))
    return metrics
