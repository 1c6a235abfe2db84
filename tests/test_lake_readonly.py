"""`quantlake query` and `quantlake.lake.connect()` cannot change the lake or touch any other file (issue 19.1).

Each test is one attack from the issue, tried through the CLI (one line, exit 2, nothing changed) and through
the Python API (DuckDB refuses; nothing changed); a writable session is only had by asking for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from clirun import run_main

from quantlake.lake import Lake, connect


def _bars(n: int, symbol: str = "A") -> pd.DataFrame:
    days = pd.bdate_range("2020-01-02", periods=n)
    return pd.DataFrame(
        {"symbol": symbol, "date": [d.date() for d in days], "close": [float(i + 1) for i in range(n)], "source": "t"}
    )


@pytest.fixture()
def filled(lake: Lake) -> Lake:
    lake.merge("equity_bars", _bars(30))
    lake.merge("equity_bars", _bars(5, "B"))
    lake.merge("macro_series", pd.DataFrame(
        {"series_id": "DGS10", "date": [dt.date(2020, 1, 2)], "realtime_start": [dt.date(2020, 1, 2)], "value": [1.9]}
    ))
    return lake


def _digest(root: Path) -> dict[str, str]:
    """Every file under the lake with its content hash (detects any overwrite, addition or removal)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _part_file(lake: Lake) -> str:
    return lake.delta("equity_bars").file_uris()[0]


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit code and stderr of one command (its stdout is kept in ``run_cli.out``)."""
    code, out, err = run_main(monkeypatch, capsys, *args)
    run_cli.out = out  # type: ignore[attr-defined]
    return code, err


def _attacks(lake: Lake, outside: Path) -> dict[str, str]:
    part = _part_file(lake)
    log = lake.root / "macro_series" / "_delta_log" / "00000000000000000001.json"
    forged = '{"remove":{"path":"x","deletionTimestamp":0,"dataChange":true}}'
    return {
        "copy over a committed part file": f"COPY (SELECT 42 AS a) TO '{part}' (FORMAT parquet, USE_TMP_FILE false)",
        "forged log entry": f"COPY (SELECT '{forged}' AS j) TO '{log}' (FORMAT csv, HEADER false, QUOTE '')",
        "read a file outside the lake": f"SELECT * FROM read_csv('{outside / 'secret.txt'}')",
        "write anywhere": f"COPY (SELECT 1 AS a) TO '{outside / 'dropped.csv'}'",
        "attach a database": f"ATTACH '{outside / 'other.duckdb'}' AS other",
        "install an extension": "INSTALL httpfs",
        "load an extension": "LOAD httpfs",
        "unlock external access": "SET enable_external_access = true",
        "export the database": f"EXPORT DATABASE '{outside / 'export'}'",
    }


@pytest.mark.parametrize(
    "attack",
    [
        "copy over a committed part file", "forged log entry", "read a file outside the lake", "write anywhere",
        "attach a database", "install an extension", "load an extension", "unlock external access",
        "export the database",
    ],
)
def test_query_cli_refuses_each_attack_in_one_line_and_changes_nothing(
    filled: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], attack: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("user,password\nroot,hunter2\n")
    before = _digest(filled.root)
    rows_before = len(filled.read("equity_bars"))
    code, err = run_cli(monkeypatch, capsys, "query", _attacks(filled, outside)[attack])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "read-only" in err
    assert "hunter2" not in err
    assert _digest(filled.root) == before
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert len(Lake(filled.root).read("equity_bars")) == rows_before


@pytest.mark.parametrize(
    "attack",
    ["copy over a committed part file", "forged log entry", "read a file outside the lake", "write anywhere",
     "attach a database", "install an extension", "load an extension", "unlock external access",
     "export the database"],
)
def test_connect_is_read_only_unless_asked(filled: Lake, tmp_path: Path, attack: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("user,password\nroot,hunter2\n")
    before = _digest(filled.root)
    con = connect(root=filled.root)
    with pytest.raises(duckdb.Error):
        con.execute(_attacks(filled, outside)[attack]).fetchall()
    # the session still answers queries, and nothing changed on disk
    assert con.execute("SELECT count(*) FROM equity_bars").fetchone() == (35,)
    con.close()
    assert _digest(filled.root) == before
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_relation_writers_cannot_overwrite_lake_files(filled: Lake) -> None:
    before = _digest(filled.root)
    con = filled.connect()
    rel = con.sql("SELECT 42 AS a")
    with pytest.raises(duckdb.Error):
        rel.write_parquet(_part_file(filled))
    with pytest.raises(duckdb.Error):
        rel.write_csv(str(filled.root / "equity_bars" / "_delta_log" / "00000000000000000009.json"))
    con.close()
    assert _digest(filled.root) == before


def test_query_cli_refuses_write_statements_with_one_line(
    filled: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for sql in ("CREATE TABLE t AS SELECT 1", "INSERT INTO equity_bars VALUES (1)", "DROP VIEW equity_bars",
                "SELECT 1; COPY (SELECT 1) TO 'x.csv'"):
        code, err = run_cli(monkeypatch, capsys, "query", sql)
        assert code == 2, (sql, err)
        assert len(err.strip().splitlines()) == 1 and "read-only" in err, (sql, err)


def test_reads_still_work_in_read_only_sessions(filled: Lake, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QUANTLAKE_HOME", str(filled.root.parent))
    code, _ = run_cli(monkeypatch, capsys, "query", "SELECT symbol, count(*) AS n FROM equity_bars GROUP BY 1 "
                      "ORDER BY 1", "--format", "csv")
    assert code == 0
    assert run_cli.out.split() == ["symbol,n", "A,30", "B,5"]  # type: ignore[attr-defined]
    # as-of, parameters, registered frames and scratch tables in memory work in a read-only session
    con = connect(as_of={"equity_bars": 0}, root=filled.root)
    assert con.execute("SELECT count(*) FROM equity_bars WHERE symbol = ?", ["A"]).fetchone() == (30,)
    con.register("wanted", pd.DataFrame({"symbol": ["A"]}))
    assert con.execute("SELECT count(*) FROM equity_bars JOIN wanted USING (symbol)").fetchone() == (30,)
    con.execute("CREATE TEMP TABLE scratch AS SELECT * FROM equity_bars WHERE close > 10")
    assert con.execute("SELECT count(*) FROM scratch").fetchone() == (20,)
    con.close()


def test_writable_session_is_explicit(filled: Lake, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    con = connect(root=filled.root, writable=True)
    con.execute(f"COPY (SELECT symbol, date, close FROM equity_bars WHERE symbol = 'B') TO '{out}'")
    con.close()
    assert len(out.read_text().splitlines()) == 6
