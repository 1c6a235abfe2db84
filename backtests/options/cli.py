"""``quantlake options-backtest --config FILE``: run one option backtest; ``quantlake options-sweep --config
FILE``: sweep its settings (both tracked in MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _print_result(run_id: str, result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from backtests.options.jobs import result_files
    from backtests.options.runner import BacktestResult

    assert isinstance(result, BacktestResult)
    console = Console()
    t = Table(title=f"options backtest {result.name}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    pct = {"total_return", "cagr", "ann_vol", "max_drawdown", "win_rate"}
    for k, v in result.summary().items():
        t.add_row(k, f"{v:.2%}" if k in pct else f"{v:,.2f}" if abs(v) < 1e6 else f"{v:,.0f}")
    console.print(t)
    if len(result.regimes):
        r = Table(title="per regime (returns attributed to the regime held under)")
        for col in ("regime", "days", "pnl", "ann_return", "sharpe", "positions", "win_rate"):
            r.add_column(col, justify="left" if col == "regime" else "right")
        for row in result.regimes.itertuples(index=False):
            r.add_row(str(row.regime), str(row.days), f"{row.pnl:,.0f}", f"{row.ann_return:.2%}",
                      f"{row.sharpe:.2f}", str(row.positions), f"{row.win_rate:.0%}" if row.win_rate == row.win_rate
                      else "-")
        console.print(r)
    console.print(f"MLflow run: {run_id}")
    for label, path in result_files(result).items():
        if label in ("equity", "greeks", "trades", "daily", "metrics") or (
                label in ("skipped", "rejections") and len(getattr(result, label))):
            console.print(f"  {label}: {path}")


def register(app: typer.Typer) -> None:
    register_sweep(app)

    @app.command("options-backtest")
    def options_backtest_cmd(
        config: Annotated[Path, typer.Option("--config", "-c", help="YAML or JSON backtest config")],
        flow: Annotated[bool, typer.Option("--flow/--no-flow", help="Run as a Prefect flow (default) or directly")]
        = True,
        plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Save equity/drawdown/Greeks PNGs")] = True,
    ) -> None:
        """Backtest an option strategy on observed (else modeled) chains; logs one MLflow run with lineage."""
        from backtests.options.config import load_config

        cfg = load_config(config)  # ConfigError (exit 2) before anything starts
        if not plots:
            cfg = cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update={"plots": False})})
        if flow:
            from flows.options_backtest import options_backtest_flow

            out = options_backtest_flow(cfg.model_dump(mode="json"))  # a failed run raises its error here
            assert isinstance(out, dict)
            run_id, result = out["run_id"], out["result"]
        else:
            from backtests.options.jobs import run_tracked

            run_id, result = run_tracked(cfg)
        _print_result(run_id, result)


def _print_sweep(digest: dict[str, Any], out: Any = None) -> None:
    from quantlake.display import Col, Kind, console, format_cell, print_path, print_table

    out = out or console()
    top = digest.get("top") or []
    if top:
        shown = ("trial", "sharpe", "cagr", "max_drawdown", "positions", "win_rate")
        cols = [Col("trial", kind="int"), *(Col(p, kind="raw") for p in top[0] if p not in shown),
                Col("sharpe", kind="float"), Col("cagr", kind="pct"), Col("max_drawdown", "max DD", kind="pct"),
                Col("positions", kind="int", optional=True), Col("win_rate", "win rate", kind="pct", optional=True)]
        print_table(top, cols, title="best trials (Sharpe of daily returns in excess of cash)", out=out)
    m, t = digest.get("metrics") or {}, digest.get("timing") or {}
    figures: list[tuple[str, Any, Kind]] = [
        ("trials", m.get("n_trials"), "int"), ("selected trial", digest.get("best_trial"), "int"),
        ("deflated Sharpe", m.get("dsr.dsr"), "float"), ("PBO (CSCV)", m.get("pbo.pbo"), "pct"),
        ("walk-forward OOS Sharpe", m.get("wf.oos.sharpe"), "float"),
        ("walk-forward efficiency", m.get("wf.efficiency"), "float"),
        ("Monte Carlo risk of ruin (bootstrap)", m.get("mc.bootstrap.risk_of_ruin"), "pct"),
        ("seconds per trial", t.get("seconds_per_trial"), "float"), ("sweep seconds", t.get("sweep_seconds"), "float"),
    ]
    rows = [{"figure": k, "value": format_cell(v, kind)} for k, v, kind in figures if v is not None]
    print_table(rows, [Col("figure"), Col("value", kind="raw")], title="sweep", out=out)
    for note in digest.get("notes") or []:
        out.print(f"note: {note}", markup=False, soft_wrap=True)
    out.print(f"MLflow run: {digest.get('run_id')}", markup=False)
    files = digest.get("files") or {}
    for label in ("trials", "heatmap", "selected_equity", "selected_greeks", "walkforward_table", "montecarlo"):
        if label in files:
            print_path(label, files[label], out)


def register_sweep(app: typer.Typer) -> None:
    @app.command("options-sweep")
    def options_sweep_cmd(
        config: Annotated[Path, typer.Option("--config", "-c", help="YAML or JSON sweep config")],
        runner: Annotated[str, typer.Option(help="task runner: thread | dask | none (no Prefect)")] = "thread",
        workers: Annotated[int, typer.Option(min=1, help="threads or Dask worker processes")] = 2,
        as_of: Annotated[list[str] | None, typer.Option("--as-of", help="pin a table version, TABLE=VERSION")]
        = None,
        dask_address: Annotated[str | None, typer.Option(
            "--dask-address", help="run the trial chunks on this existing Dask cluster, tcp://HOST:PORT (default: "
            "$QUANTLAKE_DASK_ADDRESS, else dask.address in the config file)")] = None,
    ) -> None:
        """Sweep an option strategy's settings (lists, ranges, random draws) on shared chains: trials table,
        heatmaps, deflated Sharpe and PBO, optional walk-forward and Monte Carlo; one MLflow parent run."""
        from backtests.options.sweep.config import load_sweep_config
        from quantlake.config import dask_address as configured_dask
        from quantlake.config import quiet_environment
        from quantlake.errors import UserInputError
        from quantlake.lake import parse_as_of

        quiet_environment()
        cfg = load_sweep_config(config)  # a bad config exits 2 before Prefect/MLflow start
        pins = parse_as_of(as_of or [])
        if runner not in ("thread", "dask", "none"):
            raise UserInputError(f"--runner: unknown task runner {runner!r}; choose thread, dask or none")
        address = configured_dask(dask_address)
        if address:
            from quantlake.cluster import check_reachable

            if runner == "none":
                raise UserInputError("--dask-address needs a Prefect task runner: drop --runner none")
            check_reachable(address)
        data = cfg.model_dump(mode="json")
        if runner == "none":
            from backtests.options.sweep.jobs import JOB, summary
            from quantlake.lake import Lake
            from tracking.jobs import run_job

            digest = summary(run_job(JOB, data, Lake(pins=pins), run_name=cfg.name))
        else:
            from flows.options_backtest import run_options_sweep_flow

            digest = run_options_sweep_flow(data, runner=runner, workers=workers, as_of=pins or None,
                                            dask_address=address)
        _print_sweep(digest)
