"""Flow: one trading day of a registered model on a broker (paper by default): a signal model trading
shares, or (``instrument: options``) a registered option strategy whose managed exits, rolls and
assignments run with the backtest's own engine and strategy object (:mod:`execution.option_trader`).

Thin: the work is :func:`execution.trader.run_trade` (reconcile, kill switch, targets from
``models:/NAME@champion``, risk-checked idempotent orders, audit) and :func:`execution.trader.alert`
(alerts for drawdown, broker failures and rejections).  A kill switch, a broker failure or a rejected order
ends the run Failed with one line, after everything was recorded; a failed run also e-mails through
:func:`execution.alerts.flow_failure_hook`.
"""

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import State

from execution import alerts
from execution.option_trader import OptionTradeResult, run_option_trade
from execution.reconcile import reconcile_recent
from execution.trader import TradeResult, alert, load_trade_config, run_trade
from flows._common import quantlake_errors_fail_cleanly
from quantlake.errors import BrokerError
from quantlake.lake import Lake


@flow(name="paper-trade", on_failure=[alerts.flow_failure_hook], on_crashed=[alerts.flow_failure_hook])
@quantlake_errors_fail_cleanly
def paper_trade_flow(
    config: dict[str, Any], dry_run: bool = False, max_age_days: int | None = None, reconcile_days: int = 20
) -> dict[str, Any] | State[Any]:
    """``config`` holds :class:`execution.settings.TradeConfig` fields (``model`` is required).
    ``max_age_days``: fail (with an alert) when the latest bar is older than that many trading days — a
    data fetch failed — instead of trading on stale prices.  ``reconcile_days``: then reconcile the account's
    last that many trading days against a backtest of the champion (0: skip; an MLflow run, an alert past
    the drift threshold).  Returns the run's summary (orders by status,
    fills, positions, equity, drawdown, alerts)."""
    logger = get_run_logger()
    cfg = load_trade_config(None, config)
    lake = Lake()
    if max_age_days is not None:
        alerts.check_fresh_data(lake, max_age_days, symbols=cfg.symbols)
    result: TradeResult | OptionTradeResult
    try:
        if cfg.instrument == "options":  # a registered option strategy: the backtest's engine, broker fills
            result = run_option_trade(cfg, lake, dry_run=dry_run, flow_run_id=str(flow_run.id))
        else:
            result = run_trade(cfg, lake, dry_run=dry_run, flow_run_id=str(flow_run.id))
    except BrokerError as exc:  # outage, circuit open, lock held: nothing was sent; alert and fail
        alerts.fail(exc, "broker", f"{cfg.broker} trading run for {cfg.strategy_name} failed")
    summary = result.summary()
    logger.info("%s on %s/%s %s: orders %s, equity %.2f", summary["strategy"], cfg.broker, cfg.account,
                summary["as_of"], summary["orders"], summary["equity"])  # fmt: skip
    if reconcile_days > 0 and not dry_run and cfg.instrument == "equity":  # the backtest of the same days
        summary["reconciliation_run"] = reconcile_recent(cfg, lake, reconcile_days)
    error = alert(result, cfg)
    if error is not None:
        raise error
    return summary
