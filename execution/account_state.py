"""Per broker account state kept under ``$QUANTLAKE_HOME/execution``: the run lock, the kill switch and the
circuit breaker's state file (every trader, daily, interval and option, uses these)."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from execution.brokers.guard import CircuitBreaker
from execution.settings import TradeConfig
from quantlake.config import paths
from quantlake.errors import BrokerError


class TradeInProgressError(BrokerError):
    """Another trading run holds the lock of this broker account."""


# ----------------------------------------------------------------------------------------- state
def state_dir() -> Path:
    """``$QUANTLAKE_HOME/execution``: locks, kill switches and circuit breaker states."""
    return paths().home / "execution"


def _state_name(broker: str, account: str) -> str:
    return f"{broker}-{account}"


def kill_switch_file(broker: str, account: str) -> Path:
    return state_dir() / f"kill-switch-{_state_name(broker, account)}.json"


def kill_switch(broker: str, account: str) -> dict[str, Any] | None:
    """The tripped kill switch of this broker account (when, why), or None."""
    path = kill_switch_file(broker, account)
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {"reason": f"unreadable kill switch file {path} (delete it or reset the kill switch)"}


def trip_kill_switch(broker: str, account: str, reason: str, **details: Any) -> dict[str, Any]:
    path = kill_switch_file(broker, account)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"tripped_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "reason": reason, **details}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, default=str))
    os.replace(tmp, path)
    return state


def reset_kill_switch(broker: str, account: str) -> bool:
    """Clear the kill switch; True if it was tripped."""
    path = kill_switch_file(broker, account)
    existed = path.exists()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return existed


def circuit_breaker(cfg: TradeConfig) -> CircuitBreaker:
    return CircuitBreaker(
        cfg.circuit_failures,
        cfg.circuit_reset_seconds,
        state_file=state_dir() / f"circuit-{_state_name(cfg.broker, cfg.account)}.json",
    )


@contextlib.contextmanager
def account_lock(broker: str, account: str) -> Iterator[None]:
    """An exclusive lock of one broker account for the length of a run (released by the OS if the process
    dies, so a killed run never leaves it stuck)."""
    path = state_dir() / f"{_state_name(broker, account)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TradeInProgressError(
                f"another trading run is using {broker} account {account!r} (lock {path}); try again when it ends"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
