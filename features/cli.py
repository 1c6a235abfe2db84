"""``quantlake features ...``: build and list the feature tables.  Heavy imports live inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

features_app = typer.Typer(
    help="Feature tables (technical, regime, macro, positioning, option analytics, IV surface) built by DuckDB SQL.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Mount the ``features`` sub-app on the root CLI."""
    app.add_typer(features_app, name="features")


def load_settings(path: Path | None) -> dict[str, Any] | None:
    """Feature settings from a YAML or JSON file (validated later; errors name the field)."""
    if path is None:
        return None
    import yaml

    from features.errors import FeatureConfigError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FeatureConfigError(f"cannot read settings file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise FeatureConfigError(f"settings file {path} is not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FeatureConfigError(f"settings file {path} must hold a mapping, got {type(data).__name__}")
    inner = data.get("features")  # a config file may keep the settings under a top-level "features:" key
    return inner if isinstance(inner, dict) else data


def print_results(results: list[dict[str, Any]], title: str = "feature build") -> None:
    from quantlake.display import Col, print_table

    print_table(results, [
        Col("table"), Col("mode"), Col("written", "rows written", "int"), Col("version", kind="int"),
        Col("seconds", kind="float"), Col("detail", optional=True),
    ], title=title)


@features_app.command("build")
def build(
    tables: Annotated[
        list[str] | None,
        typer.Option(
            "--tables",
            "-t",
            help="Table(s) to build, repeatable or comma-separated: technical, regime, macro, positioning, "
            "option_flow, options, surface (default: all; surface builds options and option_flow with it)",
        ),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild from scratch instead of incrementally")
    ] = False,
    settings: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help="YAML/JSON with feature settings, e.g. {technical: {ema_periods: [10, 50]}, "
            "regime: {high_rank: 80}}",
        ),
    ] = None,
    flow: Annotated[
        bool, typer.Option("--flow/--no-flow", help="Run as a Prefect flow (default) or directly")
    ] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar")] = True,
) -> None:
    """Build the feature tables from the lake (incremental: only what changed since the last build)."""
    from features.build import build_features, resolve_tables
    from features.settings import FeatureSettings

    names = resolve_tables([p for t in tables or [] for p in t.split(",") if p.strip()] or None)
    raw = load_settings(settings)
    parsed = FeatureSettings.parse(raw)  # fail fast on a bad setting before Prefect starts
    if flow:
        from flows.build_features import build_features_flow

        out = build_features_flow(tables=names, full=full, settings=raw, progress=progress)
        if not isinstance(out, dict):  # a Failed state (normally re-raised by Prefect)
            from features.errors import FeatureBuildError

            raise FeatureBuildError(f"feature build flow failed: {out}")
        results = out["results"]
    else:
        from quantlake.lake import Lake

        results = build_features(Lake(), names, full, parsed, progress=progress).as_dicts()
    print_results(results)


@features_app.command("list")
def list_tables() -> None:
    """Each feature table: key, version, rows, date range, and the input versions it was built from."""
    from features.build import table_status
    from quantlake.display import Col, console, print_table
    from quantlake.lake import Lake

    lake = Lake()
    rows = [{**r, "version": "not built" if r["version"] is None else str(r["version"])} for r in table_status(lake)]
    out = console()
    print_table(rows, [
        Col("table"), Col("version", kind="text"), Col("rows", kind="int"), Col("from", kind="date"),
        Col("to", kind="date"), Col("key", optional=True, wrap_width=12),
        Col("inputs", "built from", optional=True, wrap_width=18),
    ], title=f"feature tables in {lake.uri}", out=out)
    out.print("Columns and units: the header of each sql/<table>.sql file.", style="dim", markup=False)
