"""A failed ingest flow run alerts (on_failure hook), and its error still reaches the caller unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantlake.errors import MalformedFileError
from quantlake.lake import Lake

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_failed_ingest_flow_records_a_critical_alert(ql_home: Path, tmp_path: Path) -> None:
    from flows.ingest_equity import ingest_equity_flow

    data = tmp_path / "vendor"
    data.mkdir()
    (data / "ABC.csv").write_text("when,price\n2024-01-02,10\n")  # no date/close columns

    with pytest.raises(MalformedFileError, match=r"ABC\.csv"):
        ingest_equity_flow(source="csv", path=str(data), progress=False)

    log = ql_home / "reports" / "alerts.jsonl"
    assert log.exists(), "the flow's failure hook wrote no alert"
    alerts = [json.loads(line) for line in log.read_text().splitlines()]
    flow_alerts = [a for a in alerts if a["kind"] == "flow"]
    assert len(flow_alerts) == 1, alerts
    a = flow_alerts[0]
    assert a["severity"] == "critical"
    assert "ingest-equity" in a["subject"] and "Failed" in a["subject"]
    assert "ABC.csv" in a["detail"]
    assert not Lake(ql_home / "lake").exists("equity_bars")  # nothing half-written
