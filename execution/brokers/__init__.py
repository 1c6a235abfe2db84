"""Broker adapters behind one protocol (:class:`~execution.brokers.base.Broker`).

* ``paper`` — :class:`~execution.brokers.paper.PaperBroker`: a local ledger under ``$QUANTLAKE_HOME/paper``,
  fills at the next bar's open with the configured costs (the default).
* ``alpaca`` — :class:`~execution.brokers.alpaca.AlpacaBroker`: alpaca-py against the paper endpoint.
* ``ibkr`` — :class:`~execution.brokers.ibkr.IbkrBroker`: ib_async against TWS / IB Gateway on a paper port.

Only these modules import ``alpaca`` or ``ib_async`` (DESIGN §8), lazily, so choosing ``paper`` never pays
for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from execution.brokers.base import Broker
    from execution.settings import TradeConfig
    from quantlake.lake import Lake

BROKERS = ("paper", "alpaca", "ibkr")


def make_broker(cfg: TradeConfig, lake: Lake, **options: Any) -> Broker:
    """The adapter ``cfg.broker`` names, configured from ``cfg`` (account, costs, cash, shorting) and
    ``options`` (adapter-specific: ``ledger_dir`` for paper, ``base_url``/``timeout`` for Alpaca,
    ``host``/``port``/``client_id``/``timeout`` for IBKR)."""
    if cfg.broker == "paper":
        from execution.brokers.paper import PaperBroker

        return PaperBroker(
            lake,
            account=cfg.account,
            costs=cfg.costs,
            initial_cash=cfg.initial_cash,
            allow_short=cfg.allow_short,
            **options,
        )
    if cfg.broker == "alpaca":
        from execution.brokers.alpaca import AlpacaBroker

        return AlpacaBroker(**options)
    if cfg.broker == "ibkr":
        from execution.brokers.ibkr import IbkrBroker

        return IbkrBroker(**options)
    raise ValueError(f"unknown broker {cfg.broker!r}; choose one of {', '.join(BROKERS)}")
