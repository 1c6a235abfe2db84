"""Flow: an equity research run (sweep, optional walk-forward and Monte Carlo) as one MLflow run, its symbol
chunks fanned out as Prefect tasks on the chosen task runner (threads by default, or a local Dask cluster
through ``prefect-dask``), or as Dask tasks on an existing cluster (``dask_address``).  The work is in :mod:`backtests.equity`; this module only orchestrates."""

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from backtests.research.runner import use_runner
from flows._common import (
    ALERT_HOOKS,
    RESOLVE_HOOKS,
    prefect_runner,
    quantlake_errors_fail_cleanly,
    task_runner,
)
from quantlake.errors import UserInputError
from quantlake.lake import Lake


@flow(name="equity-research", on_failure=ALERT_HOOKS, on_crashed=ALERT_HOOKS, on_completion=RESOLVE_HOOKS)
@quantlake_errors_fail_cleanly
def equity_research_flow(
    config: dict[str, Any],
    job: str = "equity.sweep",
    as_of: dict[str, int] | None = None,
    dask_address: str | None = None,
) -> dict[str, Any] | State[Any]:
    """Run research job ``job`` (``equity.sweep|walkforward|montecarlo``) on ``config`` (a JSON-able mapping).

    Chunks run as tasks on the flow's task runner, or on the existing Dask cluster at ``dask_address``
    (default ``$QUANTLAKE_DASK_ADDRESS`` / ``dask.address`` of the config file)."""
    from backtests.equity.jobs import summary
    from quantlake.cluster import cluster_runner
    from quantlake.config import dask_address as configured_dask
    from tracking.jobs import run_job

    lake = Lake(pins=as_of)
    address = configured_dask(dask_address)
    with use_runner(cluster_runner(address) if address else prefect_runner):
        run_id = run_job(job, config, lake, run_name=str(config.get("name") or job))
    digest = summary(run_id)
    m = digest.get("metrics", {})
    get_run_logger().info(
        "%s: %d trials, best %s, deflated Sharpe %.3f, PBO %.3f; MLflow run %s",
        job,
        int(m.get("n_trials", 0)),
        digest.get("best_params"),
        m.get("dsr.dsr", float("nan")),
        m.get("pbo.pbo", float("nan")),
        run_id,
    )
    return digest


def run_equity_flow(
    config: dict[str, Any],
    job: str = "equity.sweep",
    runner: str = "thread",
    workers: int = 2,
    as_of: dict[str, int] | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Run :func:`equity_research_flow` with the chosen task runner (Prefect ephemeral mode by default);
    ``dask_address`` submits the chunks to that existing Dask cluster.

    A quantlake error inside the flow is raised here (Prefect re-raises the Failed state's exception)."""
    out = equity_research_flow.with_options(task_runner=task_runner("thread" if dask_address else runner, workers))(
        config=config, job=job, as_of=as_of, dask_address=dask_address
    )
    if not isinstance(out, dict):  # a Failed state returned instead of raised
        raise UserInputError(f"equity research flow failed: {out}")
    return out
