"""``chain:`` of option backtest configs: where option prices come from, and which OCC roots to use.

Split from :mod:`backtests.options.config` (which re-exports these names).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

ChainSourceMode = Literal["auto", "observed", "modeled"]
# index option underlyings named without the ^ of index symbols (as chain files name them): cash-settled
CASH_SETTLED_INDEXES = frozenset({"SPX", "SPXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "MRUT", "VIX", "DJX", "OEX",
                                  "XEO", "XND"})
# configs written before chain.source: chains: {mode: ...}
LEGACY_CHAIN_MODES = {"observed_else_modeled": "auto", "observed": "observed", "modeled": "modeled"}

__all__ = ["CASH_SETTLED_INDEXES", "LEGACY_CHAIN_MODES", "ChainConfig", "ChainSourceMode"]


class ChainConfig(BaseModel):
    """Where option prices come from (``chain.source``).

    * ``auto``: the lake's observed quotes (``option_quotes``) on days that have them, else the modeled chain
      (:mod:`features.chains`); a held contract missing from a day's observed chain is priced by
      Black-Scholes at its last implied vol.  The run counts leg-days of each kind (``leg_days_observed``,
      ``leg_days_modeled``).
    * ``observed``: observed quotes only; a day without a chain offers no entries, and a held or traded leg
      without a quote stops the run with an error naming the date and the contract (a leg settling that
      day needs none: it settles at intrinsic value).
    * ``modeled``: the modeled chain only, even where quotes exist.

    ``roots``: the OCC roots whose observed quotes to use, the first preferred where two list the same
    expiry, strike and right (``[SPX]``: the AM-settled monthlies of the CBOE indexes; ``[SPXW, SPX]``).
    Default: every root, the PM-settled one preferred (it settles on the close, as the backtest's marks do).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)  # as every section of the config

    source: ChainSourceMode = "auto"
    roots: list[str] | None = None

    @field_validator("roots")
    @classmethod
    def _roots(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        bad = [r for r in v if not re.fullmatch(r"[A-Z0-9^.]{1,8}", r)]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"roots: distinct OCC roots such as SPX or SPXW, got {v}")
        return v
