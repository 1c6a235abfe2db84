"""Flow: reconcile a paper account with the backtest of its champion over the account's trading days.

Thin: the work is :func:`execution.reconcile.reconcile` (``quantlake trade reconcile --no-flow`` calls it
without Prefect); the daily ``paper-trade`` flow reconciles its own last days after trading.
"""

import datetime as dt
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

from execution.reconcile import Reconciliation, reconcile
from execution.trader import load_trade_config
from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly
from quantlake.lake import Lake


@flow(name="reconcile-account", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def reconcile_flow(
    config: dict[str, Any], start: dt.date | None = None, end: dt.date | None = None, threshold: float = 0.005
) -> Reconciliation | State[Any]:
    """``config`` holds :class:`execution.settings.TradeConfig` fields; reconcile its account over its trading
    days in [start, end] (one MLflow run; an alert past ``threshold`` x equity)."""
    rec = reconcile(load_trade_config(None, config), Lake(), start, end, threshold=threshold)
    get_run_logger().info("%s/%s %s – %s: drift %.2f (largest %.2f); MLflow run %s", rec.broker, rec.account,
                          rec.days[0], rec.days[-1], rec.drift, rec.max_abs_drift, rec.run_id)  # fmt: skip
    return rec
