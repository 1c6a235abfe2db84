"""Replay a fixed list of orders on given dates (a trade list from a broker, a hand-worked example).

Each date maps to orders, or to callables ``ctx -> orders`` for orders that need the state of the day
(e.g. :func:`close_tag` closes whatever positions of a tag are open then).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from backtests.options.config import Delay
from backtests.options.context import Context
from backtests.options.orders import CloseOrder, Order

Step = Order | Callable[[Context], list[Order]]


class ScriptedStrategy:
    name = "scripted"

    def __init__(self, script: Mapping[dt.date, Sequence[Step]], delay: Delay = "next_bar") -> None:
        self.script = {d: list(steps) for d, steps in script.items()}
        self.default_delay: Delay = delay

    def on_bar(self, ctx: Context) -> list[Order]:
        out: list[Order] = []
        for step in self.script.get(ctx.date, []):
            if callable(step):
                out += step(ctx)
            else:
                out.append(copy.copy(step))
        return out


def close_tag(tag: str, reason: str = "scripted") -> Callable[[Context], list[Order]]:
    """A step closing every open position tagged ``tag``."""

    def step(ctx: Context) -> list[Order]:
        return [CloseOrder(p.id, reason) for p in ctx.positions(tag)]

    return step
