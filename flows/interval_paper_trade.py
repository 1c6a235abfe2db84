"""Flow: one interval paper-trading run (hourly by default) — the interval paper ledger fills what the bars
closed since the last run allow, then the EMA-cross rule decides on the latest closed bar
(:func:`execution.interval_trader.run_interval_trade`).  It reads the bars the ``hourly-crypto-scan``
deployment ingested five minutes earlier; a run that finds no newer closed bar sends nothing."""

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, quantlake_errors_fail_cleanly


@flow(name="interval-paper-trade", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def interval_paper_trade_flow(config: dict[str, Any], as_of: str | None = None) -> dict[str, Any] | State[Any]:
    """``config``: :class:`execution.interval_trader.IntervalTradeConfig` fields; ``as_of``: an instant
    (ISO, UTC) to run at instead of now."""
    from execution.interval_trader import load_interval_config, run_interval_trade
    from quantlake.lake import Lake

    result = run_interval_trade(load_interval_config(config), Lake(), as_of=as_of)
    summary = result.summary()
    get_run_logger().info("%s", summary)
    return summary
