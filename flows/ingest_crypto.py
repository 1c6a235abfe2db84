"""Flow: ingest OHLCV candles of crypto pairs from a ccxt exchange into the lake's ``bars`` table."""


import datetime as dt
from typing import Any

from prefect import flow
from prefect.states import State

from flows._common import ALERT_HOOKS, RESOLVE_HOOKS, finish, quantlake_errors_fail_cleanly
from quantlake.ingest_crypto import run_ingest_crypto


@flow(name="ingest-crypto", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def ingest_crypto_flow(
    exchange: str = "binance",
    symbols: list[str] | None = None,
    interval: str = "1h",
    start: dt.date | None = None,
    end: dt.date | None = None,
    full: bool = False,
    base_url: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]] | State[Any]:
    reports = run_ingest_crypto(exchange, symbols, interval, start, end, full, base_url, progress)
    return finish(reports)
