"""The ``quantlake`` command line (typer + rich).

User mistakes print one line and exit 2; outside failures (network, broker) print one line and exit 1.
The CLI and :mod:`quantlake.demo` are the application layer: the only quantlake modules that start Prefect
flows (imported lazily inside commands); library modules never import ``flows``.

Packages add their own commands through ``<package>/cli.py:register(app)`` (see ``_PLUGINS``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from quantlake.config import quiet_environment
from quantlake.ingest_cli import ingest_app

quiet_environment()

console = Console()
err_console = Console(stderr=True)


def _plain_help_types() -> None:
    """Typer 0.29 prints every option's Python type in help (``<bool>`` beside flags, ``<list[str]>``,
    ``<%Y-%m-%d>``): show nothing for flags and click's plain metavars (TEXT, INTEGER, PATH, DATE...) for
    the rest.  Patched once here because every package's commands share the same help renderer."""
    from typer.core import TyperOption

    plain = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "%Y-%m-%d": "DATE",
             "datetime": "DATE"}

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.is_flag:
            return None
        label = self.display_type(ctx).strip("<>")
        repeat = label.startswith("list[")
        label = label.removeprefix("list[").removesuffix("]") if repeat else label
        choices = "|" in label and label not in plain
        text = f"[{label}]" if choices else plain.get(label, label.upper())
        return text + " (repeatable)" if repeat else text

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_plain_help_types()

app = typer.Typer(
    name="quantlake",
    help="Versioned lakehouse, features, research and paper trading for equity and option strategies.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
lake_app = typer.Typer(help="Inspect and maintain the lakehouse tables.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")
app.add_typer(ingest_app, name="ingest")

# packages that contribute commands; each module exposes register(app: typer.Typer)
_PLUGINS = ("features.cli", "features.bars_cli", "backtests.cli", "risk.cli", "tracking.cli", "execution.cli", "execution.intraday_cli", "quantlake.api.cli")


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"quantlake {version('quantlake')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """quantlake: data lands once in a versioned lake; every computation is a query or a pure function."""
    _upgrade_lake()


def _upgrade_lake() -> None:
    """A lake written by an earlier version is upgraded once, with one line on stderr (quantlake.migrations)."""
    from quantlake.lake import Lake
    from quantlake.migrations import upgrade_if_needed

    upgrade_if_needed(Lake(), say=lambda msg: err_console.print(msg, highlight=False, soft_wrap=True, markup=False))


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


# ----------------------------------------------------------------------------------------------- lake
@lake_app.command("tables")
def lake_tables() -> None:
    """Each table with its version, row count and date range."""
    from quantlake.lake import Lake

    lake = Lake()
    infos = lake.info()
    if not infos:
        console.print(f"The lake at {lake.uri} is empty. Try [bold]quantlake ingest equity --source sample[/].")
        return
    from quantlake.display import Col, print_table

    print_table([{"table": i.name, "version": i.version, "rows": i.rows, "from": i.min_date, "to": i.max_date,
                  "key": ", ".join(i.keys)} for i in infos],
                [Col("table"), Col("version", kind="int"), Col("rows", kind="int"), Col("from", kind="date"),
                 Col("to", kind="date"), Col("key", optional=True, wrap_width=12)], title=f"lake: {lake.uri}")


@lake_app.command("history")
def lake_history(table: Annotated[str, typer.Argument(help="Table name")]) -> None:
    """Commits of one table (version, time, operation, rows written)."""
    from quantlake.display import Col, print_table
    from quantlake.lake import Lake

    rows = []
    for h in Lake().history(table):
        ts = dt.datetime.fromtimestamp(h.get("timestamp", 0) / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        metrics = h.get("operationMetrics") or {}
        keep = {k: v for k, v in metrics.items() if k.startswith(("num_target_rows", "num_added_rows", "num_output"))}
        rows.append({"version": h.get("version"), "time": ts, "operation": h.get("operation"),
                     "note": h.get("quantlake.note", ""), "rows": " ".join(f"{k}={v}" for k, v in keep.items())})
    print_table(rows, [Col("version", kind="int"), Col("time", "time (UTC)", "datetime"), Col("operation"),
                       Col("note", optional=True), Col("rows", optional=True)], title=f"history of {table}")


@lake_app.command("vacuum")
def lake_vacuum(
    table: Annotated[str, typer.Argument(help="Table name")],
    retention_hours: Annotated[int, typer.Option(help="Keep files needed by versions newer than this")] = 168,
) -> None:
    """Delete data files no recent version needs (including orphans of killed writes)."""
    from quantlake.lake import Lake

    removed = Lake().vacuum(table, retention_hours)
    console.print(f"{table}: removed {len(removed)} file(s)")


@lake_app.command("duckdb-views")
def lake_duckdb_views(
    db: Annotated[
        Path | None, typer.Option("--db", help="Create/replace the views in this DuckDB database file")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the SQL script to this file")] = None,
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="Pin a table to a version: TABLE=VERSION (repeatable)")
    ] = None,
) -> None:
    """SQL that creates persistent DuckDB views of the lake (for the DuckDB CLI), pinned to current versions.

    Without --db/--out the script goes to stdout: `quantlake lake duckdb-views | duckdb lake.duckdb`.
    """
    from quantlake.lake import Lake, parse_as_of
    from quantlake.lake_views import apply_script, views_script

    lake = Lake()
    snapshots = lake.snapshots(parse_as_of(as_of or []))
    script = views_script(lake.store, snapshots)
    if out is not None:
        out.write_text(script)
        err_console.print(f"wrote {out}", highlight=False, soft_wrap=True)
    if db is not None:
        apply_script(script, str(db), lake.store)
        pinned = ", ".join(f"{n}@{t.version()}" for n, t in snapshots.items())
        err_console.print(f"{db}: {len(snapshots)} view(s) ({pinned}); query with: duckdb {db}",
                          highlight=False, soft_wrap=True)
    if out is None and db is None:
        sys.stdout.write(script)


@lake_app.command("optimize")
def lake_optimize(table: Annotated[str, typer.Argument(help="Table name")]) -> None:
    """Compact small files (new version, same data)."""
    from quantlake.lake import Lake

    metrics = Lake().optimize(table)
    console.print(f"{table}: {metrics.get('numFilesRemoved', 0)} files → {metrics.get('numFilesAdded', 0)}")


@lake_app.command("maintain")
def lake_maintain(
    table: Annotated[list[str] | None, typer.Option("--table", "-t", help="Only these tables (default: all)")] = None,
    retention_hours: Annotated[int, typer.Option(help="Keep every version younger than this (hours)")] = 168,
) -> None:
    """Compact each table's small files, then delete files no version within the retention needs
    (what the weekly lake-maintenance deployment runs)."""
    from quantlake.display import Col, print_table
    from quantlake.lake import Lake
    from quantlake.maintenance import maintain_lake

    lake = Lake()
    rows = maintain_lake(lake, table, retention_hours)
    print_table([{**r.__dict__, "seconds": round(r.seconds, 2)} for r in rows],
                [Col("table"), Col("files_before", "files before", "int"), Col("compacted", kind="int"),
                 Col("deleted", kind="int"), Col("files_after", "files after", "int"), Col("version", kind="int"),
                 Col("seconds", kind="float"), Col("error", "problem", optional=True)],
                title=f"lake maintenance: {lake.uri} (versions younger than {retention_hours} h kept)")
    if any(r.error for r in rows):
        raise typer.Exit(1)


@app.command("rejects")
def rejects(
    table: Annotated[str | None, typer.Option(help="Only rows rejected from this table")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show")] = 20,
) -> None:
    """Show quarantined rows with their reasons (the rejected_rows table)."""
    from quantlake.lake import Lake

    lake = Lake()
    if not lake.exists("rejected_rows"):
        console.print("No rejected rows.")
        return
    df = lake.query(
        'SELECT "table", origin, row_no, reason, raw FROM rejected_rows '
        + ('WHERE "table" = ? ' if table else "")
        + "ORDER BY rejected_at DESC, origin, row_no LIMIT ?",
        [table, limit] if table else [limit],
    )
    from quantlake.sources.text import cut

    for col in ("origin", "reason", "raw"):  # a 10 MB cell would flood the terminal: show its start and size
        df[col] = df[col].map(lambda v: v if not isinstance(v, str) else cut(v, 300))
    _print_frame(df, OutputFormat.table, title="rejected rows")


# ----------------------------------------------------------------------------------------------- query
def display_frame(df: Any) -> Any:
    """Dates that DuckDB hands back as midnight timestamps are shown as plain dates."""
    import pandas as pd

    df = df.copy()
    for c in df.columns:
        col = df[c]
        naive = pd.api.types.is_datetime64_any_dtype(col) and getattr(col.dt, "tz", None) is None
        if naive and (col.dropna() == col.dropna().dt.normalize()).all():
            df[c] = col.dt.strftime("%Y-%m-%d").where(col.notna(), None)
    return df


def _print_frame(df: Any, fmt: OutputFormat, title: str | None = None) -> None:
    df = display_frame(df)
    if fmt is OutputFormat.csv:
        sys.stdout.write(df.to_csv(index=False))
    elif fmt is OutputFormat.json:
        sys.stdout.write(df.to_json(orient="records", date_format="iso", indent=1) + "\n")
    else:
        import pandas as pd

        from quantlake.display import Col, print_table

        cols = [Col(str(c), kind="num" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
                    else "text") for c in df.columns]
        rows = [dict(zip(map(str, df.columns), r, strict=True)) for r in df.head(1000).itertuples(index=False)]
        print_table(rows, cols, title=title,
                    caption=f"{len(df) - 1000:,} more rows (use --format csv)" if len(df) > 1000 else None)


@app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help='DuckDB SQL over views named after the tables, e.g. "from equity_bars"')],
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format")] = OutputFormat.table,
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="Pin a table to a version: TABLE=VERSION (repeatable)")
    ] = None,
) -> None:
    """Run DuckDB SQL over the lake (read-only views, optionally as of table versions)."""
    from quantlake.lake import Lake, parse_as_of

    df = Lake().query(sql, as_of=parse_as_of(as_of or []))
    _print_frame(df, format)


# ----------------------------------------------------------------------------------------------- ingest


@app.command("demo")
def demo(
    home: Annotated[
        Path | None, typer.Option(help="QUANTLAKE_HOME for the demo (default: $QUANTLAKE_HOME or ./.quantlake)")
    ] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these stages (repeatable)")] = None,
) -> None:
    """Run the whole pipeline end to end on the embedded sample data, offline."""
    from quantlake.demo import run_demo

    run_demo(home=home, only=only, console=console)


def _register_plugins() -> None:
    for mod in _PLUGINS:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name in (mod, mod.rsplit(".", 1)[0]):
                continue  # that package has no commands yet
            raise
        module.register(app)


_register_plugins()


def main() -> None:
    """Console entry point: run the app, turning quantlake errors into one line and an exit code."""
    from quantlake.errors import QuantlakeError

    try:
        app()
    except QuantlakeError as exc:
        from rich.markup import escape

        from quantlake.redact import redact_urls

        line = escape(redact_urls(str(exc)))
        err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
