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
ingest_app = typer.Typer(help="Ingest data into the lake (Prefect flows, ephemeral mode).", no_args_is_help=True)
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


def _symbols(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [s for s in (p.strip() for p in value.replace(" ", ",").split(",")) if s]


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


DateOpt = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]


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
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
FlowOpt = Annotated[
    bool, typer.Option("--flow/--no-flow", help="Run as a Prefect flow (default) or directly, without Prefect.")
]


def source_help(kind: str) -> str:
    """``--source`` help listing exactly the sources an ingest of ``kind`` accepts."""
    from quantlake.sources import sources_for

    return "Where the data comes from: " + " | ".join(sources_for(kind)) + "."


def _report_rows(summary: Any) -> list[dict[str, Any]]:
    """Rows of a flow's summary (dicts) or of IngestReport objects (--no-flow)."""
    rows = []
    for r in summary:
        if isinstance(r, dict):
            rows.append(r)
        else:
            rows.append({"table": r.table, "source": r.source, "rows_read": r.rows_read, "accepted": r.accepted,
                         "rejected": r.rejected, "inserted": r.inserted, "updated": r.updated,
                         "version": r.version, "notes": list(r.notes)})
    return rows


def _print_reports(summary: Any) -> None:
    """Print an ingest summary (a failed flow has already raised) and the quarantine reasons."""
    from rich.text import Text

    from quantlake.display import Col, console, print_table
    from quantlake.lake import Lake

    rows = _report_rows(summary)  # a table never committed has version None: an empty cell
    out = console()
    print_table(rows, [
        Col("table"), Col("source"), Col("rows_read", "read", "int"), Col("accepted", kind="int"),
        Col("rejected", kind="int"), Col("inserted", kind="int"), Col("updated", kind="int"),
        Col("version", kind="int"),
    ], title="ingest", out=out)
    for r in rows:
        for note in r.get("notes", []):
            out.print(Text(f"note: {note}"), soft_wrap=True, style="dim")
    if any(r["rejected"] for r in rows):
        df = Lake().query(
            'SELECT "table", reason, count(*) AS n FROM rejected_rows GROUP BY ALL ORDER BY n DESC LIMIT 10'
        )
        out.print("Quarantined rows by reason (all batches so far; see `quantlake rejects`):", style="yellow",
                  markup=False)
        for row in df.itertuples(index=False):
            out.print(Text(f"  {row.n:>6,}  {row.table}: {row.reason}"), soft_wrap=True)


def _ingest(kind: str, flow: bool, **kwargs: Any) -> None:
    """Run one ingest through its Prefect flow or directly; print the summary; raise what failed."""
    if flow:
        import importlib

        module = importlib.import_module(f"flows.ingest_{kind}")
        summary = getattr(module, f"ingest_{kind}_flow")(**kwargs)
        _print_reports(summary)
        return
    from quantlake.ingest import failures_error
    from quantlake.ingest_run import run_ingest

    source = kwargs.pop("source")
    keys = kwargs.pop("symbols", None) or kwargs.pop("underlyings", None) or kwargs.pop("series", None)
    for k in ("symbols", "underlyings", "series"):
        kwargs.pop(k, None)
    reports = run_ingest(kind, source, keys=keys, **kwargs)
    _print_reports(reports)
    err = failures_error(reports)
    if err is not None:
        raise err


@ingest_app.command("equity")
def ingest_equity_cmd(
    source: Annotated[str, typer.Option("--source", "-s", help=source_help("equity"))] = "sample",
    path: Annotated[Path | None, typer.Option(help="csv source: directory (or file) of CSV/Parquet bars.")] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: all the source has).")] = None,
    start: DateOpt = None,
    end: DateOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore watermarks and refetch everything.")] = False,
    interval: Annotated[
        str | None, typer.Option(help="csv: bar interval of intraday files (default: inferred, e.g. 5m).")
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="csv: time zone of timestamps without an offset (default: the exchange's).")
    ] = None,
    calendar: Annotated[str, typer.Option(help="csv: trading calendar of intraday rows: XNYS | 24/7.")] = "XNYS",
    bar_time: Annotated[str, typer.Option(help="csv: intraday timestamps mark the bar's open | close.")] = "open",
    cross_check: Annotated[
        bool, typer.Option(help="Chains (yahoo,stooq): ask every source and record closes that disagree.")
    ] = True,
    tolerance: Annotated[float, typer.Option(help="Chains: relative close difference that is a disagreement.")] = 0.005,
    progress: ProgressOpt = True,
    flow: FlowOpt = True,
) -> None:
    """Daily bars (and splits/dividends) → equity_bars, corporate_actions; intraday rows of csv files → bars.
    A comma-separated --source (yahoo,stooq) is a chain: fallback, cross-checked closes, daily quotas."""
    from quantlake.sources import check_source, get_source
    from quantlake.tables import validate_symbol

    check_source("equity", source)
    syms = [validate_symbol(s) for s in _symbols(symbols) or []] or None
    csv_opts: dict[str, Any] = {}
    if source == "csv":
        csv_opts = {"interval": interval, "tz": tz, "calendar": calendar, "bar_time": bar_time}
    known: list[str] = []
    if "," not in source:  # a chain's sources were checked by name above
        src = get_source(source, path, **csv_opts)  # fail fast on a bad source/path/file before Prefect starts
        known = src.symbols()
    unknown = [s for s in syms or [] if known and s not in known]
    if unknown:
        from quantlake.errors import InvalidSymbolError

        raise InvalidSymbolError(
            f"unknown symbol(s) for source {source!r}: {', '.join(unknown)}; available: {', '.join(known)}"
        )
    _ingest("equity", flow, source=source, symbols=syms, path=str(path) if path else None,
            start=_date(start), end=_date(end), full=full, progress=progress, csv_options=csv_opts or None,
            cross_check=cross_check, tolerance=tolerance)
    if source == "csv":
        _print_gaps()


@ingest_app.command("crypto")
def ingest_crypto_cmd(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id (binance, kraken, coinbase, ...).")] = "binance",
    symbols: Annotated[str, typer.Option(help="Comma-separated pairs, e.g. BTC/USDT,ETH/USDT.")] = "BTC/USDT",
    interval: Annotated[str, typer.Option(help="Candle interval: 1m, 5m, 15m, 1h, 4h, 1d, ...")] = "1h",
    start: DateOpt = None,
    end: DateOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore watermarks (default start: a year ago).")] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Send the exchange's API requests to this server (a mirror or proxy).")
    ] = None,
    progress: ProgressOpt = True,
    flow: FlowOpt = True,
) -> None:
    """Crypto OHLCV candles (ccxt; stored as EXCHANGE:BASE/QUOTE) → bars, instruments."""
    from quantlake.calendars import check_interval
    from quantlake.ingest_crypto import parse_pairs
    from quantlake.sources.crypto import CryptoSource

    pairs = parse_pairs(_symbols(symbols) or [])
    check_interval(interval)
    CryptoSource(exchange)  # an unknown exchange fails here, before Prefect starts
    kwargs: dict[str, Any] = {"exchange": exchange, "symbols": pairs, "interval": interval, "start": _date(start),
                              "end": _date(end), "full": full, "base_url": base_url, "progress": progress}
    if flow:
        from flows.ingest_crypto import ingest_crypto_flow

        _print_reports(ingest_crypto_flow(**kwargs))
    else:
        from quantlake.ingest import failures_error
        from quantlake.ingest_crypto import run_ingest_crypto

        reports = run_ingest_crypto(**kwargs)
        _print_reports(reports)
        err = failures_error(reports)
        if err is not None:
            raise err
    _print_gaps(interval)


def _print_gaps(interval: str | None = None) -> None:
    """One line per symbol with intraday bars missing inside its sessions (reported, never filled in)."""
    from features.bars import gaps
    from quantlake.calendars import is_intraday
    from quantlake.display import console as display_console
    from quantlake.lake import Lake

    lake = Lake()
    if not lake.exists("bars"):
        return
    intervals = [interval] if interval else list(lake.query("SELECT DISTINCT interval FROM bars")["interval"])
    for iv in sorted(i for i in intervals if is_intraday(str(i))):
        g = gaps(lake, interval=str(iv))
        if g.empty:
            continue
        per = g.groupby("symbol", as_index=False)["missing_bars"].agg(missing="sum", runs="count")
        for row in per.itertuples(index=False):
            display_console().print(
                f"{row.symbol}: {int(row.missing)} {iv} bar(s) missing inside sessions in {int(row.runs)} gap(s) "
                f"(quantlake bars gaps --symbols {row.symbol} --interval {iv})",
                style="yellow", markup=False, highlight=False, soft_wrap=True,
            )


class ChainFormat(StrEnum):
    auto = "auto"
    daily = "daily"
    optionsdx = "optionsdx"
    cboe = "cboe"
    orats = "orats"
    quantlake = "quantlake"


class IvUnit(StrEnum):
    auto = "auto"
    decimal = "decimal"
    percent = "percent"


class QuoteTime(StrEnum):
    eod = "eod"
    t1545 = "1545"


@ingest_app.command("options")
def ingest_options_cmd(
    source: Annotated[str, typer.Option("--source", "-s", help=source_help("options"))] = "sample",
    path: Annotated[
        Path | None,
        typer.Option(help="csv: a chain file or a directory (searched recursively) of .csv, .csv.gz, .txt, .zip, "
                          ".parquet files."),
    ] = None,
    fmt: Annotated[
        ChainFormat,
        typer.Option("--format", metavar="LAYOUT",
                     help="csv: the files' layout: auto (recognised from each header), daily, optionsdx, cboe, orats, "
                          "quantlake."),
    ] = ChainFormat.auto,
    underlying: Annotated[
        str | None,
        typer.Option(help="csv: the rows' underlying (names it for layouts without one, e.g. OptionsDX; rows of "
                          "another underlying are quarantined)."),
    ] = None,
    iv_unit: Annotated[IvUnit, typer.Option(help="csv: vendor IVs in percent or decimal (auto: from the values).")]
    = IvUnit.auto,
    quote_time: Annotated[
        QuoteTime, typer.Option(help="csv, CBOE DataShop files: the 15:45 or the end-of-day snapshot.")
    ] = QuoteTime.eod,
    underlyings: Annotated[
        str | None, typer.Option(help="sample/yahoo: comma-separated underlyings (sample: ^GDAXI, SPX).")
    ] = None,
    progress: ProgressOpt = True,
    flow: FlowOpt = True,
) -> None:
    """Option chains → option_quotes: vendor chain files (--source csv --path), the sample, Yahoo snapshots."""
    from quantlake.errors import UserInputError
    from quantlake.sources import check_source
    from quantlake.tables import validate_symbol

    check_source("options", source)
    unds = [validate_symbol(s) for s in _symbols(underlyings) or []] or None
    und = validate_symbol(underlying) if underlying else None
    if source == "csv":
        if path is None:
            raise UserInputError("--source csv needs --path (a chain file or a directory of chain files)")
        from quantlake.ingest_chains import check_files

        check_files(path, fmt.value)  # fail fast (file and problem in one line) before Prefect starts
    elif path is not None or fmt is not ChainFormat.auto or und is not None:
        raise UserInputError("--path, --format and --underlying are options of --source csv")
    _ingest("options", flow, source=source, underlyings=unds, path=str(path) if path else None, fmt=fmt.value,
            underlying=und, iv_unit=iv_unit.value, quote_time=quote_time.value, progress=progress)


@ingest_app.command("macro")
def ingest_macro_cmd(
    source: Annotated[str, typer.Option("--source", "-s", help=source_help("macro"))] = "sample",
    series: Annotated[str | None, typer.Option(help="Comma-separated FRED series ids (e.g. DGS10,DGS2).")] = None,
    start: DateOpt = None,
    end: DateOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore watermarks.")] = False,
    progress: ProgressOpt = True,
    flow: FlowOpt = True,
) -> None:
    """Macro series (FRED, keeping realtime_start vintages) → macro_series."""
    from quantlake.sources import check_source, get_source

    check_source("macro", source)
    src = get_source(source)
    if hasattr(src, "check_credentials"):
        src.check_credentials()  # a missing API key is reported before Prefect starts
    _ingest("macro", flow, source=source, series=_symbols(series), start=_date(start), end=_date(end),
            full=full, progress=progress)


@ingest_app.command("cot")
def ingest_cot_cmd(
    path: Annotated[Path | None, typer.Option(help="A CFTC zip/txt file you downloaded (default: download).")] = None,
    report_type: Annotated[
        list[str] | None, typer.Option("--report-type", help="disaggregated | financial (repeatable).")
    ] = None,
    start: DateOpt = None,
    end: DateOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore watermarks.")] = False,
    progress: ProgressOpt = True,
    flow: FlowOpt = True,
) -> None:
    """CFTC Commitments of Traders (disaggregated, financial futures) → cot_positions."""
    if path is not None and not path.exists():
        from quantlake.errors import MalformedFileError

        raise MalformedFileError(f"--path {path}: no such file")
    _ingest("cot", flow, source="cot", path=str(path) if path else None, report_types=report_type,
            start=_date(start), end=_date(end), full=full, progress=progress)


# ----------------------------------------------------------------------------------------------- demo
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
