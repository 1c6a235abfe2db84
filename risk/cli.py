"""``quantlake risk ...`` commands.  Heavy imports live inside the commands so ``quantlake --help`` stays fast."""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from quantlake.lake import Lake
    from risk.book import Position

risk_app = typer.Typer(help="Risk: VaR/CVaR, drawdowns, beta and stress tests of a backtest or an account.",
                       no_args_is_help=True)  # fmt: skip


class ReportFormat(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    """Mount the ``risk`` sub-app on the root CLI."""
    app.add_typer(risk_app, name="risk")


@risk_app.command("report")
def report(
    returns: Annotated[
        Path | None,
        typer.Option(
            "--returns",
            help="Parquet or CSV with a 'date' column and a returns column (returns/return/ret) or an equity "
            "column (equity/value/nav): a backtest result.",
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="MLflow run id of a backtest (options backtest: daily equity; equity research: the selected "
            "combination's returns).",
        ),
    ] = None,
    paper: Annotated[
        str | None,
        typer.Option(
            "--paper",
            help="Paper account name (ledger $QUANTLAKE_HOME/paper/NAME.sqlite): its equity and positions.",
        ),
    ] = None,
    column: Annotated[
        str | None, typer.Option(help="Value column to use (default: detected by name).")
    ] = None,
    positions: Annotated[
        Path | None,
        typer.Option(
            "--positions", help="JSON list of current positions (risk.book.Position fields) to stress."
        ),
    ] = None,
    confidence: Annotated[
        list[float] | None, typer.Option("--confidence", help="VaR confidence level(s); repeat for several.")
    ] = None,
    benchmark: Annotated[
        str, typer.Option(help="Benchmark symbol in the lake for beta and stress.")
    ] = "^GSPC",
    spot_shock: Annotated[
        list[float] | None,
        typer.Option("--spot-shock", help="Hypothetical spot move(s), e.g. -0.2 for -20 %."),
    ] = None,
    vol_shock: Annotated[
        list[float] | None,
        typer.Option("--vol-shock", help="Hypothetical vol move(s) in vol points, e.g. 10."),
    ] = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Valuation date for options (default today)."),
    ] = None,
    date: Annotated[
        list[dt.datetime] | None,
        typer.Option("--date", formats=["%Y-%m-%d"],
                     help="With --run of an options backtest/sweep: the date(s) whose open book to stress "
                     "(default: the worst-drawdown date and the last day)."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many drawdowns to list.")] = 5,
    no_lake: Annotated[
        bool, typer.Option("--no-lake", help="Do not read the lake (no beta, no history).")
    ] = False,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", help="table or json.")
    ] = ReportFormat.table,
) -> None:
    """Risk report of a backtest result (a returns/equity file or a tracked run) or a paper account:
    VaR/CVaR by three methods, drawdown table, beta to the benchmark, and stress results (historical
    windows and hypothetical shocks)."""
    from rich.console import Console

    from quantlake.errors import UserInputError
    from quantlake.lake import Lake
    from risk.report import build_report, read_positions_file, render
    from risk.stress import StressConfig

    given = [
        name for name, v in (("--returns", returns), ("--run", run), ("--paper", paper)) if v is not None
    ]
    if len(given) != 1:
        raise UserInputError(
            "give exactly one of --returns FILE, --run RUN_ID, --paper ACCOUNT"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if paper is not None and no_lake:
        raise UserInputError("--paper needs the lake (positions are marked at its closes); drop --no-lake")
    lake = None if no_lake else Lake()
    update: dict[str, object] = {"as_of": as_of.date() if as_of else None}
    if spot_shock:
        update["spot_shocks"] = tuple(spot_shock)
    if vol_shock:
        update["vol_shocks"] = tuple(v / 100.0 for v in vol_shock)
    cfg = StressConfig.model_validate({**StressConfig().model_dump(), **update})
    kwargs = {"confidences": tuple(confidence or (0.95, 0.99)), "benchmark": benchmark, "top_drawdowns": top}
    if run is not None and positions is None and column is None:
        from risk.run_book import option_run

        art = option_run(run)
        if art is not None:  # an options backtest/sweep: stress its open book on the date(s)
            _option_run_reports(art, [d.date() for d in date or []], lake, cfg, kwargs, output_format)
            return
    if date:
        raise UserInputError("--date needs --run RUN_ID of an options backtest or sweep")
    equity, held = _input_curve(returns, run, paper, column, lake)
    if positions:
        held = read_positions_file(positions)
    rep = build_report(equity, held, lake, stress=cfg, **kwargs)  # type: ignore[arg-type]
    link = _reconciliation(paper) if paper is not None else None
    if output_format is ReportFormat.json:
        typer.echo(json.dumps({**rep.to_dict(), **({"reconciliation": link} if link else {})}, indent=2))
    else:
        render(rep, Console())
        if link:
            Console().print(f"reconciliation with the backtest: MLflow run {link['run_id']} ({link['name']}, P&L drift "
                            f"{link['drift']:,.2f}); `quantlake ui mlflow`, experiment reconciliation")  # fmt: skip


def _reconciliation(account: str) -> dict[str, Any] | None:
    """The account's latest backtest-vs-paper reconciliation run (``quantlake trade reconcile`` logs them to the
    MLflow experiment ``reconciliation`` with the tag ``quantlake.account``), if any.  Looked up in MLflow
    directly: risk does not import execution."""
    import mlflow

    from tracking.run_context import configure_mlflow

    configure_mlflow()
    exp = mlflow.get_experiment_by_name("reconciliation")
    if exp is None:
        return None
    runs = mlflow.search_runs([exp.experiment_id], filter_string=f"tags.`quantlake.account` = '{account}'",
                              order_by=["attributes.start_time DESC"], max_results=1, output_format="list")  # fmt: skip
    if not runs:
        return None
    r = runs[0]
    return {"run_id": r.info.run_id, "name": r.info.run_name, "drift": r.data.metrics.get("drift", float("nan"))}


def _option_run_reports(art: object, dates: list[dt.date], lake: Lake | None, cfg: object,
                        kwargs: dict[str, object], output_format: ReportFormat) -> None:
    """One report per date of an options run's open book (see :mod:`risk.run_book`)."""
    from rich.console import Console
    from rich.text import Text

    from quantlake.lake import Lake
    from risk.report import build_report, render
    from risk.run_book import RunArtifacts, book_on, default_dates, equity_until
    from risk.stress import StressConfig

    assert isinstance(art, RunArtifacts) and isinstance(cfg, StressConfig)
    pinned = Lake(lake.uri, pins=art.pins) if lake is not None else None
    wanted = [(d, "given date") for d in dates] if dates else default_dates(art.daily)
    docs = []
    console = Console()
    for day, label in wanted:
        book = book_on(art, day, pinned, label)
        scfg = cfg.model_copy(update={"as_of": book.date, "rate": book.rate, "dividend_yield": art.dividend_yield})
        rep = build_report(equity_until(art, book.date), book.positions, pinned, stress=scfg,
                           **kwargs)  # type: ignore[arg-type]
        rep.notes[:0] = book.notes
        if output_format is ReportFormat.json:
            docs.append({"date": book.date.isoformat(), "label": label, "equity": book.equity,
                         "legs": [p.model_dump(mode="json", exclude_none=True) for p in book.positions],
                         **rep.to_dict()})
        else:
            console.print(Text(f"run {art.run_id}: open book on {book.date} ({label}): {len(book.positions)} "
                               f"leg(s), {art.underlying} at {book.spot:,.2f}, equity {book.equity:,.0f}",
                               style="bold"), soft_wrap=True)
            render(rep, console)
    if output_format is ReportFormat.json:
        typer.echo(json.dumps({"run_id": art.run_id, "books": docs}, indent=2, default=str))


def _input_curve(
    returns: Path | None, run: str | None, paper: str | None, column: str | None, lake: Lake | None
) -> tuple[pd.Series, list[Position]]:
    """The equity curve (and, for an account, its positions) of whichever input was given."""
    from risk.report import curve_from_frame, read_returns_file

    if returns is not None:
        return read_returns_file(returns, column), []
    if paper is not None:
        from risk.accounts import PaperLedger

        assert lake is not None
        ledger = PaperLedger.for_account(paper, lake)
        return ledger.equity_curve(), list(ledger.positions())
    import tempfile

    import pandas as pd

    from quantlake.errors import MalformedFileError
    from tracking.runs import backtest_curve

    assert run is not None
    with tempfile.TemporaryDirectory(prefix="ql-risk-run-") as tmp:
        local, tagged = backtest_curve(run, Path(tmp))
        try:
            frame = pd.read_parquet(local)
        except Exception as exc:
            raise MalformedFileError(f"run {run}: cannot read {local.name}: {exc}") from None
    origin = f"run {run} ({local.name})"
    if column is None and tagged is not None:
        values = [c for c in frame.columns if str(c).lower() != "date"]
        if tagged in frame.columns:
            column = tagged
        elif len(values) == 1:
            column = str(values[0])
        else:
            raise MalformedFileError(
                f"{origin}: the selected combination {tagged!r} is not a column; choose one with --column "
                f"(columns: {', '.join(map(str, values[:20]))})"
            )
    return curve_from_frame(frame, origin, column), []


class Method(StrEnum):
    min_variance = "min-variance"
    mean_variance = "mean-variance"
    risk_parity = "risk-parity"
    hrp = "hrp"


@risk_app.command("optimize")
def optimize(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols from the lake's equity_bars.")],
    method: Annotated[Method, typer.Option(help="Optimizer (riskfolio-lib).")] = Method.hrp,
    start: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First date.")] = None,
    end: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last date.")] = None,
    max_weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Upper bound per asset.")] = 1.0,
    min_weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Lower bound per asset.")] = 0.0,
    target_return: Annotated[
        float | None, typer.Option(help="Annual target return for mean-variance (e.g. 0.12).")
    ] = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", help="table or json.")
    ] = ReportFormat.table,
) -> None:
    """Portfolio weights from daily returns in the lake (dates where every symbol has a close)."""
    from rich.console import Console
    from rich.table import Table

    from quantlake.errors import UserInputError
    from quantlake.lake import Lake
    from risk import portfolio as pf
    from risk.data import load_closes
    from risk.errors import InsufficientDataError

    names = [s for s in (p.strip() for p in symbols.split(",")) if s]
    closes = load_closes(Lake(), names, start.date() if start else None, end.date() if end else None)
    missing = sorted({n.upper() for n in names} - set(closes.columns))
    if missing:
        raise InsufficientDataError(f"no equity_bars in the lake for {', '.join(missing)}")
    returns = closes.dropna().pct_change().dropna()
    bounds = pf.WeightBounds(lower=min_weight, upper=max_weight)
    if method is Method.mean_variance:
        if target_return is None:
            raise UserInputError("--target-return is required for --method mean-variance")
        weights = pf.mean_variance(returns, target_return / 252, bounds)
    elif method is Method.min_variance:
        weights = pf.min_variance(returns, bounds)
    elif method is Method.risk_parity:
        weights = pf.risk_parity(returns, bounds)
    else:
        weights = pf.hierarchical_risk_parity(returns, bounds)
    rc = pf.risk_contributions(weights, returns.cov())
    if output_format is ReportFormat.json:
        typer.echo(json.dumps({"method": method.value, "start": str(returns.index[0].date()),
                               "end": str(returns.index[-1].date()), "weights": weights.round(6).to_dict(),
                               "risk_contributions": rc.round(6).to_dict()}, indent=2))  # fmt: skip
        return
    t = Table(title=f"{method.value} weights, {returns.index[0].date()}..{returns.index[-1].date()}")
    for col in ("symbol", "weight", "risk share"):
        t.add_column(col, justify="left" if col == "symbol" else "right")
    for sym in weights.index:
        t.add_row(str(sym), f"{weights[sym]:.2%}", f"{rc[sym]:.2%}")
    Console().print(t)
