"""A circuit breaker in front of a broker: after ``failures`` consecutive failures the broker is not called
again until ``reset_seconds`` have passed; then one trial call decides (success closes the circuit, failure
opens it again).

Only calls that reach the broker count.  Failures *of the broker* (unreachable, errors, timeouts) add to the
count; answers about an order — a duplicate client id, a rejection — are the broker working correctly and
reset it.  Operations an adapter does locally (a live broker's no-op ``sync``) do not touch the count.

With a ``state_file`` the breaker's state survives the process (JSON, replaced atomically), so a flow retried
by Prefect a minute later — or tomorrow's scheduled run — does not hammer a broker that just failed.

Hand-written (about 60 lines) because no circuit-breaker library is installed (``pybreaker`` is not in the
lock) and the policy is tied to quantlake's error types: which exceptions count as failures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from execution.brokers.base import AccountState, Broker, BrokerFill, BrokerOrder, OrderRequest
from execution.errors import CircuitOpenError, DuplicateOrderError
from quantlake.errors import BrokerError, UserInputError
from quantlake.redact import redact_urls

T = TypeVar("T")
log = logging.getLogger(__name__)


class CircuitBreaker:
    """``clock`` returns seconds; it must be wall time (the default, ``time.time``) when a ``state_file`` is
    shared between processes."""

    def __init__(
        self,
        failures: int = 3,
        reset_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        state_file: Path | None = None,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.state_file = state_file
        self.consecutive = 0
        self.opened_at: float | None = None
        self.last_error: str = ""
        self.calls = 0  # calls that reached the broker
        self._load()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            data = json.loads(self.state_file.read_text())
            self.consecutive = int(data.get("consecutive", 0))
            opened = data.get("opened_at")
            self.opened_at = float(opened) if opened is not None else None
            self.last_error = str(data.get("last_error", ""))
        except (OSError, ValueError, TypeError):  # unreadable state: start closed, say so
            log.warning("ignoring unreadable circuit breaker state %s", self.state_file)

    def _save(self) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"consecutive": self.consecutive, "opened_at": self.opened_at, "last_error": self.last_error})
        )
        os.replace(tmp, self.state_file)

    def reset(self) -> None:
        """Close the circuit (e.g. after the user fixed the broker connection)."""
        self.consecutive, self.opened_at, self.last_error = 0, None, ""
        if self.state_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_seconds else "open"

    def ensure_closed(self, name: str) -> None:
        """Raise :class:`CircuitOpenError` while the circuit is open (half-open lets one trial through)."""
        if self.state == "open":
            assert self.opened_at is not None
            wait = self.reset_seconds - (self.clock() - self.opened_at)
            raise CircuitOpenError(
                f"circuit breaker open for {name}: {self.consecutive} consecutive failure(s), last: "
                f"{self.last_error}; not calling the broker for another {wait:.0f} s"
            )

    def call(self, name: str, fn: Callable[[], T]) -> T:
        self.ensure_closed(name)
        self.calls += 1
        try:
            result = fn()
        except DuplicateOrderError:
            self._success()
            raise
        except BrokerError as exc:
            self._failure(str(exc))
            raise
        except UserInputError:  # the caller's mistake (bad symbol...), not the broker's: neither counts
            raise
        except Exception as exc:  # an adapter bug or an unmapped library error still counts as a failure
            self._failure(f"{type(exc).__name__}: {exc}")
            raise BrokerError(f"{name} failed: {type(exc).__name__}: {exc}") from exc
        self._success()
        return result

    def _success(self) -> None:
        if self.consecutive or self.opened_at is not None:
            self.consecutive = 0
            self.opened_at = None
            self.last_error = ""
            self._save()

    def _failure(self, message: str) -> None:
        self.consecutive += 1
        self.last_error = redact_urls(message)
        if self.consecutive >= self.threshold or self.opened_at is not None:
            if self.opened_at is None:
                log.error("circuit breaker opened after %d consecutive failures: %s", self.consecutive, message)
            self.opened_at = self.clock()
        self._save()


class GuardedBroker:
    """The same protocol, every call through one :class:`CircuitBreaker`."""

    def __init__(self, broker: Broker, breaker: CircuitBreaker) -> None:
        self.inner = broker
        self.breaker = breaker
        self.name = broker.name
        self.syncs = getattr(broker, "syncs", True)

    def _call(self, op: str, fn: Callable[[], T]) -> T:
        return self.breaker.call(f"{self.name}.{op}", fn)

    def now(self) -> dt.datetime:
        return self.inner.now()

    def sync(self, as_of: dt.date) -> None:
        """Through the breaker only when the adapter's sync is a broker call (``syncs``, true for the paper
        ledger): a live broker's sync does nothing, and a success that never reached the broker must not
        reset the failure count (issue 19 item 6).  An open circuit still stops the run here."""
        if self.syncs:
            self._call("sync", lambda: self.inner.sync(as_of))
            return
        self.breaker.ensure_closed(f"{self.name}.sync")
        self.inner.sync(as_of)

    def account(self) -> AccountState:
        return self._call("account", self.inner.account)

    def positions(self) -> dict[str, float]:
        return self._call("positions", self.inner.positions)

    def submit(self, order: OrderRequest) -> BrokerOrder:
        return self._call("submit", lambda: self.inner.submit(order))

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        return self._call("get_order", lambda: self.inner.get_order(client_order_id))

    def open_orders(self) -> list[BrokerOrder]:
        return self._call("open_orders", self.inner.open_orders)

    def cancel(self, client_order_id: str) -> BrokerOrder:
        return self._call("cancel", lambda: self.inner.cancel(client_order_id))

    def fills(self, client_order_id: str) -> list[BrokerFill]:
        return self._call("fills", lambda: self.inner.fills(client_order_id))

    def replace(self, client_order_id: str, new_client_order_id: str, limit_price: float) -> BrokerOrder:
        return self._call("replace", lambda: self.inner.replace(client_order_id, new_client_order_id, limit_price))

    def close(self) -> None:
        self.inner.close()
