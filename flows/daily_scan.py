"""Flow: the daily scanner (after the evening ingest) — signals to the lake, JSON, MOTD and e-mail.

Thin: the work is :func:`execution.report.run_daily_scan`.  The run's summary is a markdown artifact (the
Prefect UI shows the ranked table); a failure (stale data, SMTP down, bad config) ends the run Failed with
one line and sends an alert (:mod:`execution.alerts`).
"""

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

from execution import alerts
from flows._common import quantlake_errors_fail_cleanly


@flow(name="daily-scan", on_failure=[alerts.flow_failure_hook], on_crashed=[alerts.flow_failure_hook])
@quantlake_errors_fail_cleanly
def daily_scan_flow(
    as_of: dt.date | None = None,
    symbols: list[str] | None = None,
    config: dict[str, Any] | None = None,
    config_path: str | None = None,
    start: dt.date | None = None,
    json_dir: str | None = None,
    motd: bool = True,
    motd_path: str | None = None,
    email: bool | None = None,
    max_age_days: int | None = None,
) -> dict[str, Any] | State[Any]:
    """Scan ``as_of`` (default: the latest trading date in the lake).

    ``config``/``config_path``: :class:`~execution.settings.ScanConfig` fields (the mapping wins);
    ``email``: None = send when SMTP is configured; ``max_age_days``: fail (and alert) when the newest bar
    is older than that many trading days (a failed or missing ingest)."""
    from execution.report import load_scan_config, render_text, run_daily_scan
    from quantlake.lake import Lake

    logger = get_run_logger()
    overrides = dict(config or {})
    if as_of is not None:
        overrides["as_of"] = as_of
    if symbols:
        overrides["symbols"] = symbols
    cfg = load_scan_config(Path(config_path) if config_path else None, overrides)
    outcome = run_daily_scan(
        Lake(),
        cfg,
        start=start,
        json_dir=Path(json_dir) if json_dir else None,
        motd=Path(motd_path) if motd_path else motd,
        email=email,
        max_age_days=max_age_days,
    )
    text = render_text(outcome.result)
    logger.info("%s", text.rstrip())
    for line in outcome.result.crosscheck:
        logger.warning("features_technical differs from the scanner: %s", line)
    if outcome.motd_error:
        logger.warning("MOTD not written: %s", outcome.motd_error)
    _artifact(outcome.result.as_of.isoformat(), text)
    return outcome.summary()


def _artifact(as_of: str, text: str) -> None:
    """The scan as a markdown artifact (key ``daily-scan``: the UI keeps its history)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key="daily-scan", markdown=f"# quantlake scan {as_of}\n\n```\n{text}```\n",
                             description=f"daily scan {as_of}")  # fmt: skip
