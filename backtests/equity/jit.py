"""Numba on-disk caching for the one vectorbt kernel that ships without it.

vectorbt 1.2 compiles ``vectorbt.portfolio.nb.simulate_from_signals_nb`` with ``@njit`` (no ``cache=True``),
so every new process (each CLI call, each test worker, the demo) spent ~15 s compiling it before its first
``Portfolio.from_signals``.  :func:`enable_cache` swaps in the same Python function compiled with numba's
documented on-disk cache (``njit(cache=True)``): the machine code is written next to vectorbt's own cached
kernels (or numba's user cache dir when that is read-only) and reloaded in ~0.1 s afterwards.  The function
body, and therefore every result, is vectorbt's; numba invalidates the cache when vectorbt's source changes.
``from_signals`` resolves the kernel through the module attribute at call time, so replacing it suffices.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()
_ENABLED = False
KERNELS = ("simulate_from_signals_nb",)


def enable_cache() -> None:
    """Make vectorbt's uncached simulation kernel(s) cache their compiled code on disk (idempotent)."""
    global _ENABLED
    if _ENABLED:
        return
    with _LOCK:
        if _ENABLED:
            return
        import numba
        import vectorbt.portfolio.nb as nb

        for name in KERNELS:
            fn: Any = getattr(nb, name, None)
            py_func = getattr(fn, "py_func", None)
            if py_func is None or getattr(fn, "_cache", None) is None:
                continue
            if type(fn._cache).__name__ != "NullCache":  # already cached (a newer vectorbt)
                continue
            setattr(nb, name, numba.njit(cache=True)(py_func))
        _ENABLED = True
