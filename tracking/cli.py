"""Commands ``quantlake runs ...``, ``quantlake models ...`` and ``quantlake ui ...``.

Heavy imports (mlflow ~5 s) happen inside the commands so ``quantlake --help`` stays fast.  Errors are
:mod:`quantlake.errors` types; ``quantlake.cli.main`` prints them as one line with their exit code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from quantlake.cli_options import FlowOpt

console = Console()

runs_app = typer.Typer(help="Tracked runs: list, compare, reproduce (MLflow).", no_args_is_help=True)
models_app = typer.Typer(help="Registered models and strategies: list, promote.", no_args_is_help=True)
ui_app = typer.Typer(help="Start the MLflow or Prefect UI on localhost.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
    app.add_typer(models_app, name="models")
    app.add_typer(ui_app, name="ui")


# ------------------------------------------------------------------------------------------------ runs
@runs_app.command("list")
def runs_list(
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Only this experiment")] = None,
    limit: Annotated[int, typer.Option(help="Newest runs to show")] = 20,
) -> None:
    """Recent runs with job, status, start time and the lake versions they read."""
    from quantlake.display import Col, print_table
    from tracking.run_context import client
    from tracking.runs import experiment_id, experiment_names, runs_frame, search

    c = client()
    names = experiment_names(c)
    ids = [experiment_id(c, experiment)] if experiment else list(names)
    frame = runs_frame(search(c, ids, limit=max(limit, 1)), names)
    if frame.empty:
        console.print("No runs yet. Research commands and `quantlake demo` log runs here.")
        return
    lake_cols = sorted(col for col in frame.columns if col.startswith("lake."))
    rows = []
    for _, r in frame.iterrows():
        rows.append({
            **r.to_dict(),
            "lake": " ".join(f"{col[5:]}@{int(r[col])}" for col in lake_cols if r[col] == r[col]),
            "reproduces": r["reproduces"] or None,
        })
    print_table(rows, [
        Col("run_id", "run id", "id"), Col("experiment"), Col("run_name", "run"), Col("status"),
        Col("start_time", "started (UTC)", "datetime"), Col("duration_s", "s", "int"),
        Col("job", optional=True), Col("reproduces", kind="id", optional=True), Col("lake", optional=True),
    ], title=f"runs (newest {len(rows)})")


@runs_app.command("jobs")
def runs_jobs() -> None:
    """Registered jobs (what `runs run` and `runs reproduce` can execute)."""
    from tracking.jobs import list_jobs

    t = Table(title="registered jobs")
    for col in ("job", "experiment", "config", "description"):
        t.add_column(col)
    for j in list_jobs():
        t.add_row(j.name, j.experiment, j.config_model.__name__, j.description)
    console.print(t)


def _load_config(path: Path | None, sets: list[str]) -> dict[str, Any]:
    from quantlake.errors import ConfigError, MalformedFileError

    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise MalformedFileError(f"cannot read config {path}: {exc.strerror}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                loaded = yaml.safe_load(text)
            else:
                loaded = json.loads(text)
        except Exception as exc:
            raise MalformedFileError(f"config {path} is not valid {path.suffix or 'JSON'}: {exc}") from None
        if not isinstance(loaded, dict):
            raise MalformedFileError(f"config {path} must hold a mapping of field: value")
        data.update(loaded)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects FIELD=VALUE (VALUE as JSON or text), got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return data


@runs_app.command("run")
def runs_run(
    job: Annotated[str, typer.Argument(help="Registered job name (see `quantlake runs jobs`)")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file (JSON or YAML)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one field: FIELD=VALUE (dotted, JSON values)")
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Default: the job's")] = None,
) -> None:
    """Run a registered job as a tracked run on the current lake."""
    from tracking.jobs import run_job

    run_id = run_job(job, _load_config(config, set_ or []), experiment=experiment)
    console.print(f"run [bold]{run_id}[/] finished")
    _print_metrics(run_id)


def _print_metrics(run_id: str) -> None:
    from tracking.compare import fmt
    from tracking.run_context import client

    metrics = client().get_run(run_id).data.metrics
    t = Table(title="metrics")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in sorted(metrics):
        t.add_row(k, fmt(metrics[k]))
    console.print(t)


@runs_app.command("reproduce")
def runs_reproduce(
    run_id: Annotated[str, typer.Argument(help="MLflow run id to re-execute")],
    lake_root: Annotated[
        str | None,
        typer.Option(help="Lake folder or s3://bucket/prefix (default: QUANTLAKE_LAKE_URI, else $QUANTLAKE_HOME/lake)"),
    ] = None,
) -> None:
    """Re-execute a run with its recorded config and table versions; exit 0 if every metric is identical."""
    from tracking.reproduce import reproduce

    result = reproduce(run_id, lake_root)
    spec = result.original
    pins = ", ".join(f"{t}@{v}" for t, v in sorted(spec.pins.items())) or "no lake tables"
    console.print(f"reproduced [bold]{spec.job}[/] run {run_id} as {result.new_run_id} on {pins}")
    if result.code_changed:
        console.print(f"[yellow]code differs: recorded {spec.code_version}, now {result.code_version}[/]")
    if result.unpinned_reads:
        tables = ", ".join(f"{t}@{v}" for t, v in sorted(result.unpinned_reads.items()))
        console.print(f"[yellow]the job now also reads tables the original did not (unpinned): {tables}[/]")
    t = Table(title="metrics (exact comparison)")
    for col in ("metric", "original", "reproduced", "identical"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for m in result.metrics:
        mark = "[green]yes[/]" if m.identical else "[bold red]NO[/]"
        t.add_row(m.name, _exact(m.original), _exact(m.reproduced), mark)
    console.print(t)
    differing = [m.name for m in result.metrics if not m.identical]
    if differing:
        console.print(
            f"[bold red]NOT identical[/]: {len(differing)} of {len(result.metrics)} metric(s) differ"
        )
        raise typer.Exit(1)
    console.print(f"[bold green]identical[/]: all {len(result.metrics)} metric(s) match exactly")


def _exact(value: float | None) -> str:
    return "missing" if value is None else repr(value)


@runs_app.command("compare")
def runs_compare(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="Experiment name")],
    metric: Annotated[
        str | None, typer.Option(help="Rank by this metric (default: sharpe if logged)")
    ] = None,
    top: Annotated[int, typer.Option(help="Runs to show")] = 20,
    ascending: Annotated[bool, typer.Option("--ascending", help="Smaller is better (e.g. drawdown)")] = False,
    report: Annotated[bool, typer.Option(help="Write the HTML comparison report")] = True,
    output: Annotated[
        Path | None, typer.Option(help="Report path (default under $QUANTLAKE_HOME/reports)")
    ] = None,
) -> None:
    """Leaderboard of an experiment's finished runs and an HTML comparison report."""
    from tracking.compare import leaderboard, print_board, write_report

    board = leaderboard(experiment, metric, top, ascending)
    print_board(board)
    if report:
        path = write_report(board, output)
        console.print(f"report: {path}", soft_wrap=True)


# ------------------------------------------------------------------------------------------------ models
@models_app.command("list")
def models_list() -> None:
    """Registered models with their champion, previous champion and last promotion decision."""
    from quantlake.display import Col, print_table
    from tracking.registry import list_models

    models = list_models()
    if not models:
        console.print("No registered models yet. `quantlake demo` (or flows/train_models.py) trains some.")
        return
    print_table(models, [
        Col("name", "model"), Col("champion"), Col("champion_sharpe", "champion OOS Sharpe", "float"),
        Col("last_decision", "last decision"), Col("versions", kind="int"), Col("latest"),
        Col("kind", optional=True), Col("previous", optional=True),
    ], title="registered models")


@models_app.command("features")
def models_features(
    family: Annotated[str | None, typer.Option("--family", help="Only this family (technical, macro, ...)")] = None,
    fmt_: Annotated[str, typer.Option("--format", help="table | csv")] = "table",
) -> None:
    """The ML feature registry: every point-in-time feature with its family, source table and lag."""
    from quantlake.display import Col, print_table
    from quantlake.errors import UserInputError
    from tracking.ml.feature_registry import describe

    doc = describe()
    if family:
        if family not in set(doc["family"]):
            raise UserInputError(f"unknown family {family!r}; families: {', '.join(dict.fromkeys(doc['family']))}")
        doc = doc[doc["family"] == family]
    if fmt_ == "csv":
        typer.echo(doc.to_csv(index=False), nl=False)
        return
    if fmt_ != "table":
        raise UserInputError(f"--format must be table or csv, not {fmt_!r}")
    cols = [Col("name"), Col("family"), Col("source"), Col("lag", kind="int"), Col("description", optional=True),
            Col("lag_rule", "availability", optional=True)]  # fmt: skip
    print_table(doc, cols, title=f"feature registry ({len(doc)} features)")


@models_app.command("register")
def models_register(
    run_id: Annotated[str, typer.Argument(help="A finished run that logged models (e.g. of `runs run models.train`)")],
    name: Annotated[
        str | None, typer.Option("--name", help="Registered name for a run that logged one signal model")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Name prefix for a models.train run's families")] = "ml",
) -> None:
    """Register the model(s) a finished run logged as new versions: a `models.train` run's families as
    PREFIX_FAMILY (ml_logistic, ml_lightgbm, ml_ensemble), or the one signal model of another run as --name."""
    from quantlake.display import Col, print_table
    from tracking.ml.report import register_trained
    from tracking.registry import register_from_run

    versions = {name: register_from_run(run_id, name)} if name else register_trained(run_id, prefix)
    print_table([{"model": k, "version": v} for k, v in versions.items()],
                [Col("model"), Col("version")], title=f"registered from run {run_id[:8]}")
    first, version = next(iter(versions.items()))
    console.print(f"next: quantlake models promote {first} --version {version}", soft_wrap=True, markup=False)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name")],
    version: Annotated[int, typer.Option("--version", "-v", help="Version to promote")],
    force: Annotated[bool, typer.Option("--force", help="Promote even if the gate fails (recorded)")] = False,
    note: Annotated[str, typer.Option(help="Why (recorded with the decision)")] = "",
    gate: Annotated[Path | None, typer.Option(help="Gate thresholds file (JSON/YAML)")] = None,
) -> None:
    """Judge a version with the promotion gate; make it `champion` if it passes (exit 1 if rejected)."""
    from tracking.promotion import gate_from_file, promote

    decision = promote(name, version, gate_from_file(gate) if gate else None, force=force, note=note)
    t = Table(title=f"promotion gate: {name} v{decision.version}")
    t.add_column("check")
    t.add_column("result")
    t.add_column("detail")
    for c in decision.checks:
        t.add_row(c.name, "[green]pass[/]" if c.passed else "[bold red]FAIL[/]", c.detail)
    console.print(t)
    outcome = decision.outcome
    if outcome == "promoted":
        was = f" (v{decision.previous_champion} is now `previous`)" if decision.previous_champion else ""
        console.print(f"[bold green]promoted[/]: {name} v{decision.version} is champion{was}")
    elif outcome == "forced":
        console.print(f"[bold yellow]forced[/]: {name} v{decision.version} is champion despite failed checks")
    elif outcome == "unchanged":
        console.print(f"{name} v{decision.version} already is the champion")
    else:
        console.print(f"[bold red]rejected[/]: {name} stays at champion v{decision.previous_champion or '-'}")
    console.print(
        f"decision recorded in run {decision.record_run_id} (experiment promotions)", soft_wrap=True
    )
    if outcome == "rejected":
        raise typer.Exit(1)


@models_app.command("monitor")
def models_monitor(
    name: Annotated[str, typer.Argument(help="Registered model whose champion is checked")] = "ml_ensemble",
    as_of: Annotated[
        str | None, typer.Option(help="last day of live inputs (YYYY-MM-DD; default: newest of the model's own inputs)")
    ] = None,
    live_days: Annotated[int, typer.Option(help="trading days of live inputs")] = 60,
    retrain: Annotated[bool, typer.Option("--retrain/--no-retrain", help="start train-models past a threshold")] = True,
    gate: Annotated[Path | None, typer.Option(help="promotion gate of the retrained version (JSON/YAML)")] = None,
    flow: FlowOpt = True,
) -> None:
    """Drift of the champion's inputs (PSI per feature vs its training window) and paper vs backtest; past
    the thresholds a train-models run whose new version goes through the promotion gate (exit 1 if it drifted)."""
    from quantlake.config import quiet_environment
    from tracking.ml.monitor import describe_window
    from tracking.promotion import gate_from_file

    quiet_environment()
    config: dict[str, Any] = {"model": name, "live_days": live_days, "retrain": retrain}
    if as_of:
        config["as_of"] = as_of
    if gate:
        config["gate"] = gate_from_file(gate).model_dump()
    if flow:
        from flows.monitor import monitor_flow

        out = monitor_flow(config=config)
        if not isinstance(out, dict):
            raise typer.Exit(1)  # the flow logged its one-line error
    else:
        from tracking.ml.monitor_run import parse_config, run_check

        out = run_check(parse_config(config)).as_dict()
    t = Table(title=f"{out['model']} v{out['version']}: input drift (PSI vs its training window)")
    for col in ("feature", "PSI", "limit", "train mean", "live mean", "drifted"):
        t.add_column(col, justify="left" if col == "feature" else "right")
    for d in out["drift"]:
        t.add_row(d["feature"], f"{d['psi']:.3f}", f"{d['limit']:.3f}", f"{d['train_mean']:.4g}",
                  f"{d['live_mean']:.4g}", "[bold red]yes[/]" if d["drifted"] else "no")  # fmt: skip
    console.print(t)
    for line in describe_window(out["window"]):
        console.print(line, soft_wrap=True, markup=False)
    console.print(f"inputs: {out['drift_status']}; paper vs backtest: {out['performance']['status']}", soft_wrap=True)
    for r in out["reasons"]:
        console.print(f"[bold yellow]retrain[/]: {r}", soft_wrap=True)
    if out["retraining"]:
        console.print(f"retraining: {out['retraining']}", soft_wrap=True)
    console.print(f"recorded in run {out['record_run_id']} (experiment monitoring)", soft_wrap=True)
    if out["triggered"]:
        raise typer.Exit(1)


@models_app.command("history")
def models_history(name: Annotated[str, typer.Argument(help="Registered model name")]) -> None:
    """Every promotion decision about a model, newest first."""
    from tracking.promotion import history

    t = Table(title=f"promotions of {name}")
    for col in ("at (UTC)", "version", "decision", "previous champion", "forced", "reasons"):
        t.add_column(col)
    for h in history(name):
        t.add_row(h["at"], h["version"], h["decision"], h["previous_champion"], h["forced"], h["reasons"])
    console.print(t)


# ------------------------------------------------------------------------------------------------ ui
@ui_app.command("mlflow")
def ui_mlflow(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 5000,
) -> None:
    """Serve the MLflow UI over quantlake's runs (until Ctrl-C)."""
    from rich.markup import escape

    from tracking.scrub import Scrubber
    from tracking.ui import LOCALHOST, check_port, mlflow_command, run_foreground

    check_port(LOCALHOST, port)
    cmd = mlflow_command(port)
    store = Scrubber().text(cmd[cmd.index("--backend-store-uri") + 1])
    console.print(f"MLflow UI on [bold]http://{LOCALHOST}:{port}[/] (store {escape(store)}) — Ctrl-C to stop",
                  soft_wrap=True)  # the store path unbroken: copyable
    _print_views(f"http://{LOCALHOST}:{port}")
    raise typer.Exit(run_foreground(cmd))


def _print_views(base: str) -> None:
    """Each experiment's runs with its key metrics as columns (the shared view quantlake keeps)."""
    from tracking.run_context import client
    from tracking.runs import experiment_names
    from tracking.views import VIEW_TAG, view_url

    c = client()
    for exp_id, name in sorted(experiment_names(c).items(), key=lambda kv: kv[1]):
        if VIEW_TAG in c.get_experiment(exp_id).tags:
            console.print(f"  {name}: {view_url(base, exp_id)}", soft_wrap=True, markup=False, highlight=False)


@ui_app.command("prefect")
def ui_prefect(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 4200,
    stop: Annotated[bool, typer.Option("--stop", help="Stop this home's background Prefect server")] = False,
) -> None:
    """Serve the Prefect API and UI (until Ctrl-C); or show/stop this home's background server."""
    from quantlake import prefect_server
    from quantlake.orchestration import forget_server, healthy, record_server
    from tracking.ui import LOCALHOST, check_port, prefect_command, run_foreground

    record = prefect_server.read_record()
    if stop:
        pid = prefect_server.stop()
        console.print(f"stopped this home's background Prefect server (pid {pid})" if pid else
                      "no background Prefect server is running for this home")
        raise typer.Exit(0)
    if record and record.get("background") and healthy(str(record["api_url"])):
        ui = str(record["api_url"]).removesuffix("/api")
        console.print(f"Prefect UI on [bold]{ui}[/] — this home's background server (pid {record['pid']}), "
                      f"started by a command; it stops after {float(record.get('idle_minutes') or 60):g} min idle, or "
                      "`quantlake ui prefect --stop`", soft_wrap=True)
        raise typer.Exit(0)
    check_port(LOCALHOST, port)
    cmd = prefect_command(port)
    console.print(f"Prefect UI on [bold]http://{LOCALHOST}:{port}[/] — Ctrl-C to stop")
    console.print("quantlake commands started with this QUANTLAKE_HOME report their flow runs to it", style="dim")
    try:
        code = run_foreground(cmd, started=lambda: record_server(f"http://{LOCALHOST}:{port}/api"))
    finally:
        forget_server()
    raise typer.Exit(code)
