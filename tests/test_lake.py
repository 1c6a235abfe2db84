"""The lakehouse contract: merge-by-key, versions, as-of reads, atomic failures, DuckDB views."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from quantlake.errors import LakeError, QueryError, TableNotFoundError, UserInputError, VersionNotFoundError
from quantlake.lake import Lake, parse_as_of
from quantlake.tables import TableSpec


def bars(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "date": [dt.date.fromisoformat(r[1]) for r in rows],
            "close": [r[2] for r in rows],
            "source": "test",
        }
    )


def test_merge_inserts_then_skips_identical_rows_without_a_commit(lake: Lake) -> None:
    first = lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0), ("B", "2020-01-02", 2.0)]))
    assert (first.inserted, first.updated, first.version) == (2, 0, 0)
    again = lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0), ("B", "2020-01-02", 2.0)]))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert not again.committed
    assert lake.version("equity_bars") == 0
    assert len(lake.read("equity_bars")) == 2


def test_merge_updates_changed_rows_and_old_version_stays_readable(lake: Lake) -> None:
    lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0), ("A", "2020-01-03", 1.1)]))
    res = lake.merge("equity_bars", bars([("A", "2020-01-03", 1.5), ("A", "2020-01-06", 1.6)]))
    assert (res.inserted, res.updated, res.unchanged, res.version) == (1, 1, 0, 1)
    now = lake.read("equity_bars")
    assert now["close"].tolist() == [1.0, 1.5, 1.6]
    then = lake.read("equity_bars", version=0)
    assert then["close"].tolist() == [1.0, 1.1]
    # no key appears twice after any number of merges
    assert not now.duplicated(["symbol", "date"]).any()


def test_filtered_reads_work_after_merges_that_update_rows(lake: Lake) -> None:
    """deltalake writes a merge's files with string_view columns, the first write with string: a table
    holding both must still answer filtered reads, views and later merges (delta-io/delta-rs#4579)."""
    lake.merge(
        "equity_bars", bars([("A", "2020-01-02", 1.0), ("A", "2020-01-03", 1.1), ("B", "2020-01-02", 2.0)])
    )
    lake.merge("equity_bars", bars([("A", "2020-01-03", 1.5)]))  # an update: rewrites a file
    lake.merge("equity_bars", bars([("B", "2020-01-02", 2.5), ("B", "2020-01-03", 2.6)]))  # update + insert
    a = lake.read("equity_bars", where="symbol = ?", params=["A"])
    assert a["close"].tolist() == [1.0, 1.5]
    b = lake.read("equity_bars", where="symbol = ? AND date >= ?", params=["B", dt.date(2020, 1, 3)])
    assert b["close"].tolist() == [2.6]
    con = lake.connect()
    rows = con.execute(
        "SELECT symbol, sum(close) FROM equity_bars WHERE symbol IN ('A', 'B') GROUP BY 1 ORDER BY 1"
    )
    assert [(s, round(v, 9)) for s, v in rows.fetchall()] == [("A", 2.5), ("B", 5.1)]
    # filters DuckDB pushes into the scan at run time (subquery / join filters)
    latest = con.execute(
        "SELECT symbol, close FROM equity_bars WHERE date = (SELECT max(date) FROM equity_bars) ORDER BY 1"
    )
    assert latest.fetchall() == [("A", 1.5), ("B", 2.6)]
    joined = con.execute(
        "SELECT a.symbol, a.close FROM equity_bars a JOIN (SELECT 'A' AS symbol) k USING (symbol) ORDER BY a.date"
    )
    assert joined.fetchall() == [("A", 1.0), ("A", 1.5)]
    assert lake.read("equity_bars", version=0, where="symbol = ?", params=["A"])["close"].tolist() == [
        1.0,
        1.1,
    ]
    assert str(a["symbol"].dtype) in ("str", "object", "string")  # still plain strings for pandas users


def test_pins_make_every_read_use_that_version(lake: Lake) -> None:
    lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0)]))
    lake.merge("equity_bars", bars([("A", "2020-01-03", 2.0)]))
    pinned = Lake(lake.uri, pins={"equity_bars": 0})
    assert len(pinned.read("equity_bars")) == 1
    assert pinned.query("select count(*) n from equity_bars")["n"].iloc[0] == 1
    assert pinned.versions_read == {"equity_bars": 0}
    assert len(Lake(lake.uri).read("equity_bars")) == 2


def test_connect_exposes_views_and_as_of(lake: Lake) -> None:
    lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0)]))
    lake.merge("equity_bars", bars([("B", "2020-01-02", 3.0)]))
    con = lake.connect()
    assert con.execute("select count(*) from equity_bars").fetchone() == (2,)
    con_old = lake.connect(as_of={"equity_bars": 0})
    assert con_old.execute("select symbol from equity_bars").fetchall() == [("A",)]
    # parameters, not formatted strings
    assert lake.query("select close from equity_bars where symbol = ?", ["B"])["close"].tolist() == [3.0]


def test_errors_are_specific(lake: Lake) -> None:
    with pytest.raises(TableNotFoundError):
        lake.read("equity_bars")
    lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0)]))
    with pytest.raises(VersionNotFoundError, match=r"versions 0\.\.0"):
        lake.read("equity_bars", version=7)
    with pytest.raises(QueryError):
        lake.query("select nope from equity_bars")
    with pytest.raises(TableNotFoundError):
        lake.connect(as_of={"nope": 1})
    with pytest.raises(UserInputError):
        parse_as_of(["equity_bars:3"])
    assert parse_as_of(["equity_bars=3", "macro_series=0"]) == {"equity_bars": 3, "macro_series": 0}


def test_batch_with_duplicate_keys_is_refused_and_table_unchanged(lake: Lake) -> None:
    lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0)]))
    with pytest.raises(LakeError, match="duplicate keys"):
        lake.merge("equity_bars", bars([("A", "2020-01-03", 1.0), ("A", "2020-01-03", 2.0)]))
    assert lake.version("equity_bars") == 0
    with pytest.raises(LakeError, match="null"):
        lake.merge(
            "equity_bars", pd.DataFrame({"symbol": [None], "date": [dt.date(2020, 1, 1)], "close": [1.0]})
        )
    with pytest.raises(LakeError, match="unexpected column"):
        lake.merge("equity_bars", bars([("A", "2020-01-04", 1.0)]).assign(bogus=1))


def test_info_reports_version_rows_and_date_range(lake: Lake) -> None:
    lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0), ("A", "2021-05-03", 1.0)]))
    lake.merge("equity_bars", bars([("B", "2019-12-31", 1.0)]))
    (info,) = lake.info()
    assert (info.name, info.version, info.rows) == ("equity_bars", 1, 3)
    assert (info.min_date, info.max_date) == (dt.date(2019, 12, 31), dt.date(2021, 5, 3))


def _features_test_spec() -> TableSpec:
    schema = pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("x", pa.float64())])
    return TableSpec("features_test", ("symbol", "date"), schema, "date")


def test_replace_with_predicate_only_touches_matching_rows(lake: Lake) -> None:
    spec = _features_test_spec()
    df = pd.DataFrame({"symbol": ["A", "B"], "date": [dt.date(2020, 1, 1)] * 2, "x": [1.0, 2.0]})
    lake.replace("features_test", df, spec)
    lake.replace("features_test", df[df.symbol == "A"].assign(x=9.0), spec, predicate="symbol = 'A'")
    got = lake.read("features_test")
    assert got["x"].tolist() == [9.0, 2.0]
    # a lake opened without the code that declared the table still knows its key
    assert Lake(lake.uri).spec("features_test").keys == ("symbol", "date")


def test_replace_parts_streams_parts_and_refuses_keys_repeated_across_parts(lake: Lake) -> None:
    spec = _features_test_spec()
    day = [dt.date(2020, 1, 1), dt.date(2020, 1, 2)]
    a = pd.DataFrame({"symbol": ["A", "A"], "date": day, "x": [1.0, 2.0]})
    b = pd.DataFrame({"symbol": ["B", "B"], "date": day[::-1], "x": [3.0, 4.0]})  # unsorted: hashed check
    res = lake.replace_parts("features_test", iter([a, b]), spec)
    assert (res.version, res.written) == (0, 4)
    assert lake.read("features_test")["x"].tolist() == [1.0, 2.0, 4.0, 3.0]

    def failing() -> object:
        yield b.assign(x=0.0)
        raise RuntimeError("part 2 failed")

    # a symbol in two parts (its keys could repeat), a duplicate key inside a part, a failing producer:
    # each aborts before the commit, with its own error, and the table keeps version 0
    with pytest.raises(LakeError, match=r"parts share symbol values, e\.g\. 'A'"):
        lake.replace_parts(
            "features_test", [a, a.assign(date=[dt.date(2021, 1, 1), dt.date(2021, 1, 4)])], spec
        )
    with pytest.raises(LakeError, match="duplicate keys"):
        lake.replace_parts("features_test", [pd.concat([a, a])], spec)
    with pytest.raises(RuntimeError, match="part 2 failed"):
        lake.replace_parts("features_test", failing(), spec)  # type: ignore[arg-type]
    assert lake.version("features_test") == 0
    assert lake.read("features_test")["x"].tolist() == [1.0, 2.0, 4.0, 3.0]
    # the failed writes deleted the files they had written: nothing is left for vacuum to find
    assert lake.vacuum("features_test", retention_hours=0, staging_older_than=dt.timedelta(0)) == []


def test_replace_without_predicate_replaces_the_schema_too(lake: Lake) -> None:
    spec = _features_test_spec()
    lake.replace("features_test", pd.DataFrame({"symbol": ["A"], "date": [dt.date(2020, 1, 1)], "x": [1.0]}), spec)
    # changed settings: a column added, one dropped (e.g. other SMA periods)
    schema = pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("y", pa.float64())])
    wider = TableSpec("features_test", ("symbol", "date"), schema, "date")
    res = lake.replace("features_test", pd.DataFrame({"symbol": ["B"], "date": [dt.date(2020, 1, 2)], "y": [5.0]}), wider)
    assert (res.version_before, res.version, res.written) == (0, 1, 1)
    got = lake.read("features_test")
    assert list(got.columns) == ["symbol", "date", "y"] and got["y"].tolist() == [5.0]
    assert lake.read("features_test", version=0)["x"].tolist() == [1.0]  # the old version stays readable


def test_merge_into_table_keyed_on_reserved_words(lake: Lake) -> None:
    q = pd.DataFrame(
        {
            "quote_date": [dt.date(2020, 1, 2)],
            "underlying": ["SPY"],
            "root": ["SPY"],
            "expiry": [dt.date(2020, 2, 21)],
            "strike": [300.0],
            "right": ["C"],
            "bid": [1.0],
            "ask": [1.2],
        }
    )
    lake.merge("option_quotes", q)
    res = lake.merge("option_quotes", q.assign(bid=1.1))
    assert (res.updated, res.inserted) == (1, 0)
    assert lake.read("option_quotes")["bid"].tolist() == [1.1]


def test_symbol_date_filter_selects_what_pandas_selects(lake: Lake) -> None:
    from quantlake.lake import symbol_date_filter

    rows = [(s, f"2020-01-0{d}", float(d)) for s in ("A", "B", "C") for d in (2, 3, 6, 7)]
    lake.merge("equity_bars", bars(rows))
    everything = lake.read("equity_bars")
    assert symbol_date_filter() == (None, [])
    for symbols, start, end in [(["A", "C"], None, None), (None, dt.date(2020, 1, 3), None),
                                (["B"], dt.date(2020, 1, 3), dt.date(2020, 1, 6)), ([], None, dt.date(2020, 1, 2))]:  # fmt: skip
        where, params = symbol_date_filter(symbols, start, end, "close > 2")
        got = lake.read("equity_bars", where=where, params=params)
        d = everything["date"].map(lambda x: x.date() if hasattr(x, "date") else x)
        mask = everything["close"] > 2
        if symbols:
            mask &= everything["symbol"].isin(symbols)
        if start:
            mask &= d >= start
        if end:
            mask &= d <= end
        expected = everything[mask]
        key = ["symbol", "date", "close"]
        assert list(got[key].itertuples(index=False)) == list(expected[key].itertuples(index=False))
        assert len(got) == int(mask.sum())


def test_read_only_views_read_files_written_before_a_column_was_added(lake: Lake) -> None:
    """A merge that adds a column leaves older files without it: those views read it as NULL (union_by_name);
    a table whose files all have the same columns is read without union_by_name (through the read-only
    Python filesystem, its bind-time scan deadlocked DuckDB about 1 time in 10)."""
    narrow = TableSpec("features_evo", ("symbol", "date"),
                       pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("x", pa.float64())]), "date")
    wide = TableSpec("features_evo", ("symbol", "date"), pa.schema(
        [("symbol", pa.string()), ("date", pa.date32()), ("x", pa.float64()), ("y", pa.float64())]), "date")
    day = dt.date(2020, 1, 1)
    lake.merge("features_evo", pd.DataFrame({"symbol": ["A"], "date": [day], "x": [1.0]}), narrow)
    lake.merge("features_evo", pd.DataFrame({"symbol": ["B"], "date": [day], "x": [2.0], "y": [3.0]}), wide)
    lake.merge("equity_bars", bars([("A", "2020-01-02", 1.0)]))
    con = lake.connect()
    got = con.execute("SELECT symbol, x, y FROM features_evo ORDER BY symbol").fetchall()
    assert got == [("A", 1.0, None), ("B", 2.0, 3.0)]
    if lake.is_local:
        views = dict(con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall())
        assert "union_by_name" in views["features_evo"] and "union_by_name" not in views["equity_bars"]
