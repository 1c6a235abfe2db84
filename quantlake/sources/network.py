"""Registry of the network sources (``yahoo``, ``fred``, ``cot``) and their polite request rates.

:func:`quantlake.sources.get_source` delegates here for these names; the adapters' modules are imported
only when asked for, so listing sources never imports yfinance or fredapi.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from quantlake.errors import UserInputError

if TYPE_CHECKING:
    from quantlake.sources.cot import CotSource
    from quantlake.sources.fred import FredSource
    from quantlake.sources.stooq import StooqSource
    from quantlake.sources.yahoo import YahooSource

# Calls per second the ingest flows allow per source (quantlake.ingest.RateLimiter spaces the adapter calls).
RATE_LIMITS: dict[str, float] = {
    # unofficial API; bursts get HTTP 429 and cookie/crumb resets. One call is 1-2 requests for bars+actions
    # and 2 + one per expiry for an option chain.
    "yahoo": 1.0,
    # FRED documents 120 requests per minute per API key.
    "fred": 2.0,
    # static yearly files of a few MB from cftc.gov; one call is one download per year.
    "cot": 0.5,
    # free CSV download; undocumented limits (it answers "Exceeded the daily hits limit" when hit)
    "stooq": 1.0,
}

NAMES = tuple(RATE_LIMITS)


def _build(cls: type, name: str, kwargs: dict[str, Any]) -> Any:
    params = inspect.signature(cls).parameters
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        if "path" in unknown:
            raise UserInputError(f"source {name!r} reads from the network and takes no --path")
        raise UserInputError(
            f"source {name!r} has no option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(p for p in params if p != 'self')}"
        )
    return cls(**kwargs)


def get_source(name: str, **kwargs: Any) -> YahooSource | FredSource | CotSource | StooqSource:
    """A network source by name; ``kwargs`` go to its constructor (e.g. ``vintages=True`` for fred,
    ``path=`` for cot files you downloaded, ``base_url=`` for a mirror or a test server)."""
    if name == "yahoo":
        from quantlake.sources.yahoo import YahooSource

        return _build(YahooSource, name, kwargs)
    if name == "fred":
        from quantlake.sources.fred import FredSource

        return _build(FredSource, name, kwargs)
    if name == "cot":
        from quantlake.sources.cot import CotSource

        return _build(CotSource, name, kwargs)
    if name == "stooq":
        from quantlake.sources.stooq import StooqSource

        return _build(StooqSource, name, kwargs)
    raise UserInputError(f"unknown network source {name!r}; choose one of {', '.join(NAMES)}")
