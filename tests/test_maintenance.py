"""Lake maintenance (quantlake.maintenance, `quantlake lake maintain`, the weekly `lake-maintenance` flow):
small files compacted with the rows unchanged, old versions kept for the retention, one failing table
reported without stopping the others."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from quantlake.cli import app
from quantlake.errors import TableNotFoundError, UserInputError, VersionNotFoundError
from quantlake.lake import Lake
from quantlake.maintenance import maintain_lake


def _bars(days: pd.DatetimeIndex, symbols: tuple[str, ...] = ("A", "B")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": [s for s in symbols for _ in days],
            "date": [d.date() for _ in symbols for d in days],
            "close": [100.0 + i for i in range(len(symbols) * len(days))],
            "source": "t",
        }
    )


def _daily_lake(lake: Lake) -> Lake:
    """equity_bars as a history and then one merge per day: one small file per day."""
    days = pd.bdate_range("2024-01-01", periods=60)
    lake.merge("equity_bars", _bars(days[:50]))
    for i in range(50, 60):
        lake.merge("equity_bars", _bars(days[i : i + 1]))
    return lake


def _frame(lake: Lake, version: int | None = None) -> pd.DataFrame:
    df = lake.read("equity_bars", version=version).drop(columns=["ingested_at"])
    return df.sort_values(["symbol", "date"]).reset_index(drop=True)


def test_small_files_are_compacted_with_the_same_rows_and_old_versions_kept(lake: Lake) -> None:
    _daily_lake(lake)
    before_version, before = lake.version("equity_bars"), _frame(lake)
    files_before = len(lake.delta("equity_bars").file_uris())
    assert files_before >= 10
    (row,) = maintain_lake(lake)
    assert (row.table, row.files_before, row.error) == ("equity_bars", files_before, "")
    assert row.files_after < files_before and row.files_after == len(lake.delta("equity_bars").file_uris())
    assert row.compacted >= files_before - 1 and row.version == before_version + 1
    assert row.deleted == 0  # everything a version of the past week needs stays
    pd.testing.assert_frame_equal(_frame(lake), before)
    pd.testing.assert_frame_equal(_frame(lake, before_version), before)  # the old version still reads
    # readers still filter by symbol after compaction (no string_view files)
    assert len(lake.read("equity_bars", where="symbol = ?", params=["B"])) == 60
    # nothing left to compact: a second run rewrites nothing
    (again,) = maintain_lake(lake)
    assert again.compacted == 0 and again.version == row.version


def test_zero_retention_deletes_what_only_old_versions_needed(lake: Lake) -> None:
    _daily_lake(lake)
    old = lake.version("equity_bars")
    (row,) = maintain_lake(lake, retention_hours=0)
    assert row.deleted >= row.compacted > 0
    folder = lake.root / "equity_bars"
    assert len(list(folder.glob("*.parquet"))) == row.files_after
    # older versions cannot be read any more (that is what the retention is for), and the error says why
    with pytest.raises(VersionNotFoundError, match=rf"version {old} can no longer be read: .* removed by a vacuum"):
        _frame(lake, old)
    assert len(_frame(lake)) == 120


def test_a_failing_table_is_reported_and_the_others_are_maintained(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _daily_lake(lake)
    lake.merge("corporate_actions", pd.DataFrame({"symbol": ["A"], "date": [pd.Timestamp("2024-01-02").date()],
                                                  "kind": ["dividend"], "value": [0.5]}))
    real = Lake.optimize

    def optimize(self: Lake, name: str) -> dict[str, object]:
        if name == "equity_bars":
            raise RuntimeError("Transaction failed: a concurrent transaction deleted data this operation read")
        return real(self, name)

    monkeypatch.setattr(Lake, "optimize", optimize)
    rows = {r.table: r for r in maintain_lake(lake)}
    assert rows["equity_bars"].error.startswith("RuntimeError: Transaction failed")
    assert rows["corporate_actions"].error == "" and rows["corporate_actions"].version == 0
    with pytest.raises(TableNotFoundError, match="nosuch"):
        maintain_lake(lake, ["nosuch"])
    with pytest.raises(UserInputError, match="retention hours"):
        maintain_lake(lake, retention_hours=-1)


def test_cli_maintain_prints_each_table(lake: Lake) -> None:
    _daily_lake(lake)
    res = CliRunner().invoke(app, ["lake", "maintain", "--table", "equity_bars"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "lake maintenance" in res.output and "equity_bars" in res.output
    assert len(lake.delta("equity_bars").file_uris()) < 10
