"""``quantlake sweep|walkforward|montecarlo --config FILE``: an equity research run as one MLflow run.

The config is validated before anything heavy is imported (a bad field exits 2 at once).  By default the
run goes through the Prefect flow ``equity-research`` (ephemeral mode) with a thread-pool task runner;
``--runner dask`` fans the symbol chunks out to a local Dask cluster, ``--runner none`` skips Prefect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="YAML or JSON config file", show_default=False)
]
RunnerOpt = Annotated[str, typer.Option(help="task runner: thread | dask | none (no Prefect)")]
FlowOpt = Annotated[
    bool, typer.Option("--flow/--no-flow", help="Run as a Prefect flow (default) or directly (= --runner none)")
]
WorkersOpt = Annotated[int, typer.Option(min=1, help="threads or Dask worker processes")]
DaskOpt = Annotated[
    str | None,
    typer.Option("--dask-address", help="run the chunks on this existing Dask cluster, tcp://HOST:PORT "
                 "(default: $QUANTLAKE_DASK_ADDRESS, else dask.address in the config file)"),
]
AsOfOpt = Annotated[
    list[str] | None, typer.Option("--as-of", help="pin a table version, TABLE=VERSION (repeatable)")
]


def _run(
    command: str, config: Path, runner: str, workers: int, as_of: list[str] | None, dask_address: str | None = None
) -> None:
    from backtests.equity.config import MonteCarloConfig, SweepConfig, WalkForwardConfig, load_config
    from quantlake.config import quiet_environment
    from quantlake.display import console as display_console
    from quantlake.errors import UserInputError
    from quantlake.lake import parse_as_of

    quiet_environment()
    console = display_console()
    model = {"sweep": SweepConfig, "walkforward": WalkForwardConfig, "montecarlo": MonteCarloConfig}[command]
    cfg = load_config(config, model)  # a bad config exits 2 before MLflow/Prefect/vectorbt are imported
    from backtests.equity.params import combinations

    combinations(cfg.strategy, cfg.costs, cfg.search)  # an empty grid is a config error too, found now
    pins = parse_as_of(as_of or [])
    if runner not in ("thread", "dask", "none"):
        raise UserInputError(f"--runner: unknown task runner {runner!r}; choose thread, dask or none")
    if pins:  # an unknown table or version is one line now, not a failed flow run later
        from quantlake.lake import Lake

        lake = Lake()
        for table, version in pins.items():
            lake.delta(table, version)
    from quantlake.config import dask_address as configured_dask

    address = configured_dask(dask_address)
    if address and runner == "none":
        if dask_address:
            raise UserInputError("--dask-address needs a Prefect task runner: drop --runner none")
        address = None  # a configured cluster is for flows; --runner none runs here
    if address:
        from quantlake.cluster import check_reachable

        check_reachable(address)
        runner = "dask"
    from backtests.equity import jobs

    job = jobs.JOB_FOR_COMMAND[command]
    where = f" at {address}" if address else ""
    console.print(f"[bold]{command}[/] {cfg.name}: {cfg.strategy.kind}, runner={runner}{where}")
    data = cfg.model_dump(mode="json")
    if runner == "none":
        from quantlake.lake import Lake
        from tracking.jobs import run_job

        run_id = run_job(job, data, Lake(pins=pins), run_name=cfg.name)
        digest = jobs.summary(run_id)
    else:
        from flows.equity_sweep import run_equity_flow

        digest = run_equity_flow(
            data, job=job, runner=runner, workers=workers, as_of=pins or None, dask_address=address
        )
    _print(console, digest)


def _print(console: Any, digest: dict[str, Any]) -> None:
    from rich.text import Text

    from quantlake.display import Col, kind_of, print_table

    top = digest.get("top") or []
    if top:
        cols = [Col(str(k), kind=kind_of(str(k)) if isinstance(v, int | float) else "text", optional=i >= 6)
                for i, (k, v) in enumerate(top[0].items())]
        print_table(top, cols, title="best combinations", out=console)
    m = {**digest.get("metrics", {}), **digest.get("timing", {})}
    keys = [
        ("best.sharpe", "best Sharpe"),
        ("dsr.dsr", "deflated Sharpe"),
        ("pbo.pbo", "PBO (CSCV)"),
        ("n_trials", "trials"),
        ("backtests_per_s", "backtests/s"),
        ("wf.oos.sharpe", "walk-forward OOS Sharpe"),
        ("wf.efficiency", "walk-forward efficiency"),
        ("mc.bootstrap.risk_of_ruin", "risk of ruin (bootstrap)"),
    ]
    shown = [(label, m[k], k) for k, label in keys if k in m]
    if shown:
        print_table([{label: value for label, value, _ in shown}],
                    [Col(label, kind=kind_of(k)) for label, _, k in shown], title="summary", out=console)
    for note in digest.get("notes", []):
        console.print(Text(f"note: {note}", style="yellow"), soft_wrap=True)
    for label, path in digest.get("files", {}).items():
        if not path.endswith(".parquet"):
            console.print(Text(f"  {label}: {path}"), soft_wrap=True)  # unwrapped: copyable paths
    console.print(Text(f"MLflow run: {digest.get('run_id')} (quantlake ui mlflow)"), soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        config: ConfigOpt,
        runner: RunnerOpt = "thread",
        workers: WorkersOpt = 2,
        as_of: AsOfOpt = None,
        flow: FlowOpt = True,
        dask_address: DaskOpt = None,
    ) -> None:
        """Equity parameter sweep (vectorbt): metrics per combination, heatmaps, tearsheet, overfitting."""
        _run("sweep", config, runner if flow else "none", workers, as_of, dask_address)

    @app.command("walkforward")
    def walkforward(
        config: ConfigOpt,
        runner: RunnerOpt = "thread",
        workers: WorkersOpt = 2,
        as_of: AsOfOpt = None,
        flow: FlowOpt = True,
        dask_address: DaskOpt = None,
    ) -> None:
        """Walk-forward optimization (rolling or anchored) of an equity sweep."""
        _run("walkforward", config, runner if flow else "none", workers, as_of, dask_address)

    @app.command("montecarlo")
    def montecarlo(
        config: ConfigOpt,
        runner: RunnerOpt = "thread",
        workers: WorkersOpt = 2,
        as_of: AsOfOpt = None,
        flow: FlowOpt = True,
        dask_address: DaskOpt = None,
    ) -> None:
        """Monte Carlo (bootstrap, shuffle, parametric) of a sweep's selected combination."""
        _run("montecarlo", config, runner if flow else "none", workers, as_of, dask_address)
