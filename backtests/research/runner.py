"""How a sweep maps its chunk function over chunks: sequentially by default; a Prefect flow installs a runner
that submits each chunk as a task (thread pool or Dask), see ``flows/equity_sweep.py``.

A runner returns the results in the order of the items, as an iterable: the sweep folds each result into
its totals as it arrives, so the default runner (a generator) keeps one chunk's result in memory at a time.

A context variable rather than a parameter, so a registered job ``fn(config, lake)`` (which ``quantlake runs
reproduce`` calls without Prefect) is the same code path the flow runs."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

ChunkRunner = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]


def sequential(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
    """One item after the other, each result handed on before the next item starts."""
    for item in items:
        yield fn(item)


_RUNNER: contextvars.ContextVar[ChunkRunner] = contextvars.ContextVar(
    "research_chunk_runner", default=sequential
)


def current_runner() -> ChunkRunner:
    return _RUNNER.get()


@contextlib.contextmanager
def use_runner(runner: ChunkRunner) -> Iterator[None]:
    token = _RUNNER.set(runner)
    try:
        yield
    finally:
        _RUNNER.reset(token)
