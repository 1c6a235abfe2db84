"""Small helpers the ingest flows share (kept out of quantlake so the library never imports Prefect)."""

from __future__ import annotations

from typing import Any

from prefect.logging import get_run_logger

from quantlake.ingest import IngestReport


def log_reports(reports: list[IngestReport]) -> list[dict[str, Any]]:
    logger = get_run_logger()
    out = []
    for r in reports:
        logger.info(r.summary())
        for reason, n in r.reasons.most_common():
            logger.warning("%s: %d row(s) quarantined: %s", r.table, n, reason)
        for key, exc in r.failures.items():
            logger.error("%s: %s failed: %s", r.table, key, exc)
        out.append(
            {
                "table": r.table,
                "source": r.source,
                "rows_read": r.rows_read,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "inserted": r.inserted,
                "updated": r.updated,
                "version": r.version,
                "failed": sorted(r.failures),
            }
        )
    return out
