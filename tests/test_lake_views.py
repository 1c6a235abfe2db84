"""`quantlake lake duckdb-views`: a SQL script of persistent DuckDB views pinned to the current versions
(issue 18), executed here by the duckdb Python API into a database file, as the DuckDB CLI would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from clirun import run_main

from quantlake.lake import Lake


def _bars(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({"symbol": [r[0] for r in rows], "date": [pd.Timestamp(r[1]).date() for r in rows],
                         "close": [r[2] for r in rows], "source": "t"})


_cli = run_main


def test_views_script_pins_current_versions_where_the_folder_is_stale(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake.merge("equity_bars", _bars([("A", "2020-01-02", 1.0), ("A", "2020-01-03", 1.1), ("B", "2020-01-02", 2.0)]))
    lake.merge("equity_bars", _bars([("A", "2020-01-03", 1.5)]))  # restates a close: rewrites a file
    lake.merge("corporate_actions", pd.DataFrame(
        {"symbol": ["A"], "date": [pd.Timestamp("2020-01-03").date()], "kind": ["split"], "value": [2.0]}))
    # the problem: the folder holds both versions' files, so reading it directly gives stale/duplicate rows
    folder = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake.root}/equity_bars/*.parquet')").fetchone()
    assert folder is not None and folder[0] > 3

    code, script, _ = _cli(monkeypatch, capsys, "lake", "duckdb-views")
    assert code == 0
    db = tmp_path / "lake.duckdb"
    con = duckdb.connect(str(db))
    con.execute(script)
    con.close()

    lake.merge("equity_bars", _bars([("C", "2020-01-06", 3.0)]))  # a later commit: the views stay pinned
    con = duckdb.connect(str(db), read_only=True)
    got = con.execute("SELECT symbol, date, close FROM equity_bars ORDER BY symbol, date").df()
    expected = lake.read("equity_bars", version=1)[["symbol", "date", "close"]]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)
    assert con.execute("SELECT value FROM corporate_actions").fetchall() == [(2.0,)]
    snap = dict(con.execute("SELECT table_name, version FROM quantlake_snapshot").fetchall())
    assert snap == {"corporate_actions": 0, "equity_bars": 1}
    con.close()

    # re-running moves the views forward; --as-of pins an older version
    code, _, err = _cli(monkeypatch, capsys, "lake", "duckdb-views", "--db", str(db))
    assert code == 0 and "equity_bars@2" in err
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM equity_bars").fetchone() == (4,)
    con.close()
    out = tmp_path / "v0.sql"
    code, _, _ = _cli(monkeypatch, capsys, "lake", "duckdb-views", "--as-of", "equity_bars=0", "--out", str(out))
    assert code == 0
    con = duckdb.connect()
    con.execute(out.read_text())
    assert con.execute("SELECT close FROM equity_bars WHERE symbol = 'A' ORDER BY date").fetchall() == [(1.0,), (1.1,)]


def test_empty_table_gets_a_typed_empty_view(lake: Lake, tmp_path: Path) -> None:
    from quantlake.lake_views import views_script

    lake.merge("equity_bars", _bars([("A", "2020-01-02", 1.0)]))
    lake.replace("equity_bars", _bars([("A", "2020-01-02", 1.0)]).iloc[0:0], lake.spec("equity_bars"))
    con = duckdb.connect()
    con.execute(views_script(lake.store, lake.snapshots()))
    assert con.execute("SELECT count(*) FROM equity_bars").fetchone() == (0,)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'equity_bars'").fetchall())
    assert types["date"] == "DATE" and types["close"] == "DOUBLE"


def test_script_has_the_all_bars_view_of_every_interval(lake: Lake) -> None:
    """The script emits ``all_bars`` like Lake.connect(): daily equity_bars (1d, opened at the session open)
    and the intraday/crypto ``bars`` table in one relation, pinned with the tables it reads."""
    from quantlake.lake_views import views_script
    from quantlake.tables import BARS

    lake.merge("equity_bars", _bars([("A", "2020-01-02", 1.0), ("A", "2020-07-01", 1.1)]))
    ts = pd.date_range("2024-03-01", periods=3, freq="1h", tz="UTC").astype("datetime64[us, UTC]")
    hourly = pd.DataFrame({"symbol": "BINANCE:BTC/USDT", "interval": "1h", "ts": ts, "date": ts.date,
                           "open": [1.0, 2.0, 3.0], "high": [1.5, 2.5, 3.5], "low": [0.5, 1.5, 2.5],
                           "close": [1.2, 2.2, 3.2], "adj_close": [1.2, 2.2, 3.2], "volume": 10.0, "source": "t"})
    lake.merge("bars", hourly, BARS)

    con = duckdb.connect()
    con.execute(views_script(lake.store, lake.snapshots()))
    got = con.execute("SELECT symbol, interval, ts, close FROM all_bars ORDER BY symbol, ts").fetchall()
    con.close()
    utc = dt.UTC
    assert [(s, i, t.astimezone(utc), c) for s, i, t, c in got] == [
        # daily rows open at 9:30 New York: EST in January, EDT in July
        ("A", "1d", dt.datetime(2020, 1, 2, 14, 30, tzinfo=utc), 1.0),
        ("A", "1d", dt.datetime(2020, 7, 1, 13, 30, tzinfo=utc), 1.1),
        ("BINANCE:BTC/USDT", "1h", dt.datetime(2024, 3, 1, 0, tzinfo=utc), 1.2),
        ("BINANCE:BTC/USDT", "1h", dt.datetime(2024, 3, 1, 1, tzinfo=utc), 2.2),
        ("BINANCE:BTC/USDT", "1h", dt.datetime(2024, 3, 1, 2, tzinfo=utc), 3.2),
    ]
