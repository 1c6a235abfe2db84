"""What a strategy is: a pydantic model of its parameters and a vectorized signal function.

A signal function receives the bars of a chunk of symbols and a table of parameter combinations (one row
per combination) and returns boolean arrays of shape ``(T, C * S)``: column ``c * S + s`` is combination
``c`` on symbol ``s``.  Indicators are computed once per distinct parameter value and gathered into that
layout with numpy indexing; nothing loops over rows or combinations.  Signals are stated at the bar whose
close they use; the simulator shifts them to the bar they trade on.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from backtests.equity.data import Bars


@dataclass
class Signals:
    entries: np.ndarray
    exits: np.ndarray
    short_entries: np.ndarray | None = None
    short_exits: np.ndarray | None = None
    # stop-loss as a fraction of the entry price, read on the entry bar (e.g. k * ATR / close)
    sl_stop: np.ndarray | None = None
    sl_trail: np.ndarray | bool = False

    @property
    def has_shorts(self) -> bool:
        return self.short_entries is not None

    def gate(self, entry_ok: np.ndarray | None, force_exit: np.ndarray | None) -> Signals:
        """Entries only where ``entry_ok``; exits also where ``force_exit`` (both ``(T, N)``)."""
        out = Signals(
            self.entries, self.exits, self.short_entries, self.short_exits, self.sl_stop, self.sl_trail
        )
        if entry_ok is not None:
            out.entries = self.entries & entry_ok
            if self.short_entries is not None:
                out.short_entries = self.short_entries & entry_ok
        if force_exit is not None:
            out.exits = self.exits | force_exit
            if self.short_exits is not None:
                out.short_exits = self.short_exits | force_exit
        return out


SignalFn = Callable[[Bars, pd.DataFrame], Signals]
Constraint = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class StrategyDef:
    name: str
    params_model: type[BaseModel]
    fn: Callable[..., Any]
    description: str
    constraint: Constraint | None = None
    constraint_text: str = ""
    pairs: bool = False
    uses_sl_stop: bool = False
    needs_ohlc: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    needs_htf: bool = False  # reads bars.htf: the sweep attaches the config's htf_interval bars

    @property
    def param_names(self) -> list[str]:
        return list(self.params_model.model_fields)

    def defaults(self) -> dict[str, Any]:
        return self.params_model().model_dump()

    def check_value(self, name: str, value: Any) -> Any:
        """``value`` validated (and coerced) as parameter ``name``; ValueError naming the field."""
        try:
            return getattr(self.params_model.model_validate({name: value}), name)
        except ValidationError as exc:
            msgs = "; ".join(e["msg"] for e in exc.errors() if e["loc"] and e["loc"][0] == name) or str(exc)
            raise ValueError(f"params.{name}: {value!r}: {msgs}") from None

    def check_params(self, params: Mapping[str, Any]) -> None:
        from backtests.research.search import candidate_values

        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            raise ValueError(
                f"params.{unknown[0]}: unknown parameter of {self.name}; known: {', '.join(self.param_names)}"
            )
        for name, spec in params.items():
            for v in candidate_values(spec, bounds_only=True):
                self.check_value(name, v)

    def valid(self, combos: pd.DataFrame) -> np.ndarray:
        if self.constraint is None or combos.empty:
            return np.ones(len(combos), dtype=bool)
        return np.asarray(self.constraint(combos), dtype=bool)


STRATEGIES: dict[str, StrategyDef] = {}


def strategy(
    name: str,
    params: type[BaseModel],
    constraint: Constraint | None = None,
    constraint_text: str = "",
    pairs: bool = False,
    uses_sl_stop: bool = False,
    needs_ohlc: bool = False,
    needs_htf: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a signal function under ``name``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        STRATEGIES[name] = StrategyDef(
            name, params, fn, doc, constraint, constraint_text, pairs, uses_sl_stop, needs_ohlc, needs_htf=needs_htf
        )
        return fn

    return deco


# ------------------------------------------------------------------------------------- gathering
def value_table(
    values: Sequence[Hashable] | np.ndarray, compute: Callable[..., np.ndarray], n_args: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(table, inv)``: ``table[:, k, :]`` is ``compute(*value_k)`` for each *distinct* value ``k`` (computed
    once), ``inv[c]`` the position of combination ``c``'s value (``values`` has length C, of tuples when
    ``n_args > 1``)."""
    arr = np.asarray(values, dtype=object if n_args > 1 else None)
    if n_args > 1:
        keys = [tuple(v) for v in arr]
        uniq = list(dict.fromkeys(keys))
        pos = {k: i for i, k in enumerate(uniq)}
        inv = np.fromiter((pos[k] for k in keys), dtype=np.int64, count=len(keys))
        stack = np.stack([compute(*u) for u in uniq], axis=1)
    else:
        uniq_arr, inv = np.unique(arr, return_inverse=True)
        stack = np.stack([compute(u.item() if hasattr(u, "item") else u) for u in uniq_arr], axis=1)
    return stack, inv.ravel().astype(np.int64)


def per_value(
    values: Sequence[Hashable] | np.ndarray, compute: Callable[..., np.ndarray], n_args: int = 1
) -> np.ndarray:
    """``(T, C, S)`` array whose slice ``[:, c, :]`` is ``compute(*values[c])``, computed once per
    distinct value (``values`` is a length-C sequence, of tuples when ``n_args > 1``)."""
    stack, inv = value_table(values, compute, n_args)
    return stack[:, inv, :]


@numba.njit(cache=True, parallel=True, nogil=True)
def _cross_nb(
    a: np.ndarray, a_idx: np.ndarray, b: np.ndarray, b_idx: np.ndarray, up: np.ndarray, down: np.ndarray
) -> None:
    # a/b are (K, S, T) and up/down (N, T): each series read and each column written contiguously
    n_sym, n_rows = a.shape[1], a.shape[2]
    for c in numba.prange(a_idx.shape[0]):
        ka, kb = a_idx[c], b_idx[c]
        for s in range(n_sym):
            col = c * n_sym + s
            if n_rows == 0:
                continue
            xa, xb = a[ka, s], b[kb, s]
            up[col, 0] = False
            down[col, 0] = False
            prev = xa[0] - xb[0]
            for t in range(1, n_rows):
                x, y = xa[t], xb[t]
                up[col, t] = (x > y) and (prev <= 0)  # NaN compares False: both must be defined
                down[col, t] = (x < y) and (prev >= 0)
                prev = x - y


def cross_signals(
    a: np.ndarray, a_idx: np.ndarray, b: np.ndarray, b_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Crosses of indicator ``a`` over/under ``b`` for every combination, as ``(T, C * S)`` booleans
    (column-major: what the engine reads fastest).

    ``a``/``b`` are :func:`value_table` tables ``(T, K, S)`` and ``a_idx``/``b_idx`` each combination's
    position in them: the same result as ``crossed_above``/``crossed_below`` of the gathered ``(T, C, S)``
    arrays, without materializing them (two float arrays of ``T × C × S``)."""
    n_rows, n_sym = a.shape[0], a.shape[2]
    up = np.empty((len(a_idx) * n_sym, n_rows), dtype=np.bool_)
    down = np.empty_like(up)
    a_t = np.ascontiguousarray(np.asarray(a, dtype=np.float64).transpose(1, 2, 0))  # (K, S, T)
    b_t = np.ascontiguousarray(np.asarray(b, dtype=np.float64).transpose(1, 2, 0))
    _cross_nb(a_t, np.asarray(a_idx, dtype=np.int64), b_t, np.asarray(b_idx, dtype=np.int64), up, down)
    return up.T, down.T


def flat(a: np.ndarray) -> np.ndarray:
    """``(T, C, S)`` → ``(T, C * S)`` (column ``c * S + s``)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def col(combos: pd.DataFrame, name: str) -> np.ndarray:
    """Parameter ``name`` per combination, shaped ``(1, C, 1)`` to broadcast against ``(T, C, S)``."""
    return combos[name].to_numpy()[None, :, None]


def tile(a: np.ndarray, n_combos: int) -> np.ndarray:
    """``(T, S)`` → ``(T, C, S)`` view."""
    return np.broadcast_to(a[:, None, :], (a.shape[0], n_combos, a.shape[1]))
