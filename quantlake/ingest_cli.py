"""``quantlake ingest equity|crypto|options|macro|cot``: each runs its Prefect flow (``--no-flow``: the same
plain function directly) and prints what was read, accepted, quarantined and committed."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from quantlake.cli_options import DateOpt, FlowOpt, ProgressOpt, _date, _symbols

ingest_app = typer.Typer(help="Ingest data into the lake (each a Prefect flow; --no-flow runs it directly).",
                         no_args_is_help=True)


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
