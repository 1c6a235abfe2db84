"""Flow: the intraday scan (hourly by default) — optionally an incremental crypto ingest first, then the
scanner on the latest closed bar (:func:`execution.intraday_scan.scan_interval`)."""

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, log_reports, quantlake_errors_fail_cleanly


@flow(name="intraday-scan", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def intraday_scan_flow(
    interval: str = "1h",
    symbols: list[str] | None = None,
    exchange: str | None = None,
    pairs: list[str] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any] | State[Any]:
    """``exchange`` + ``pairs``: ingest those pairs' ``interval`` candles first (incremental), then scan
    them; else scan ``symbols`` (default: every symbol of the ``bars`` table)."""
    from execution.intraday_scan import intraday_config, scan_interval
    from quantlake.ingest import failures_error
    from quantlake.ingest_crypto import run_ingest_crypto
    from quantlake.lake import Lake
    from quantlake.sources.crypto import stored_symbol

    logger = get_run_logger()
    if exchange and pairs:
        reports = run_ingest_crypto(exchange, pairs, interval, progress=False)
        log_reports(reports)
        err = failures_error(reports)
        if err is not None:
            raise err
        symbols = [stored_symbol(exchange, p) for p in pairs]
    result = scan_interval(Lake(), interval, symbols, intraday_config(config))
    for row in result.signals.itertuples(index=False):
        logger.info("%s %s %s score %.1f", row.symbol, row.signal, row.direction, row.score)
    summary = result.summary()
    logger.info("%s", summary)
    return summary
