"""A chain source shared by many backtests over the same days: each day's chain is read (observed quotes) or
priced (modeled chain) once, normalised once, and every backtest of a sweep reads the same snapshot.

:class:`SharedChains` wraps any :class:`~backtests.options.quotes.ChainSource` (normally
``features.chains.ChainProvider``, whose internals it does not touch) and implements the optional
``snapshot(...)`` method the engine prefers (:class:`~backtests.options.quotes.SnapshotSource`):

* ``chain(underlying, date, mode)`` — the inner source's frame, built on the first request and kept;
* ``snapshot(underlying, date, mode, market)`` — a :class:`~backtests.options.quotes.ChainSnapshot` of that
  frame for the bar's market (spot, rate, dividend yield), normalised over the whole chain at once
  (:meth:`ChainSnapshot.prepare`) so that every backtest marks and selects from the very same arrays.

Snapshots are read-only after ``prepare``: backtests running in threads of one process share them safely (a
lock keeps two threads from building the same day twice).  Separate processes (Dask workers) each keep their
own copy: :func:`shared_chains` returns one instance per key and process.

Memory: about 0.1 MB per modeled chain-day (a 3-month ``^GSPC`` chain has ~2,000 rows), so 11 years of daily
chains take ~300 MB; :meth:`SharedChains.clear` drops them.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Hashable

import pandas as pd

from backtests.options.quotes import ChainSnapshot, ChainSource, Market


class SharedChains:
    """Caches the chains and prepared snapshots of ``inner`` (see the module docstring)."""

    def __init__(self, inner: ChainSource) -> None:
        self.inner = inner
        self._frames: dict[tuple[str, dt.date, str], pd.DataFrame] = {}
        self._snaps: dict[tuple[str, dt.date, str, Market], ChainSnapshot | None] = {}
        self._lock = threading.RLock()
        self.builds = 0  # chains requested from the inner source (a test counts them)

    def chain(self, underlying: str, date: dt.date, mode: str = "observed_else_modeled") -> pd.DataFrame:
        key = (underlying, date, mode)
        frame = self._frames.get(key)
        if frame is None:
            with self._lock:
                frame = self._frames.get(key)
                if frame is None:
                    frame = self.inner.chain(underlying, date, mode)
                    self.builds += 1
                    self._frames[key] = frame
        return frame

    def snapshot(self, underlying: str, date: dt.date, mode: str, market: Market) -> ChainSnapshot | None:
        key = (underlying, date, mode, market)
        if key in self._snaps:
            return self._snaps[key]
        with self._lock:
            if key not in self._snaps:
                frame = self.chain(underlying, date, mode)
                snap = None
                if frame is not None and len(frame):
                    snap = ChainSnapshot(frame, market, underlying).prepare()
                self._snaps[key] = snap
            return self._snaps[key]

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._snaps.clear()


_REGISTRY: dict[Hashable, SharedChains] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_chains(key: Hashable, make: Callable[[], ChainSource]) -> SharedChains:
    """The process's :class:`SharedChains` for ``key`` (created from ``make()`` on first use), so chunks of one
    sweep that run in the same process (threads, or a Dask worker running several chunks) share one cache."""
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
        if found is None:
            found = _REGISTRY[key] = SharedChains(make())
        return found


def release(key: Hashable) -> None:
    """Forget the process's cache for ``key`` (the sweep is over)."""
    with _REGISTRY_LOCK:
        _REGISTRY.pop(key, None)
