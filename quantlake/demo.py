"""``quantlake demo``: the whole pipeline, offline, on the embedded sample data, in one process.

One process so Prefect's ephemeral server starts once.  Each stage is a function ``stage(ctx)`` living next
to the code it shows; :data:`STAGES` lists them in pipeline order.  A failing stage stops the demo with
its error (the demo is also the product's smoke test).
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from quantlake.config import paths, quiet_environment
from quantlake.demo_context import DemoContext
from quantlake.errors import UserInputError
from quantlake.lake import Lake

EXAMPLE_QUERY = """
SELECT symbol, count(*) AS bars, min(date) AS first, max(date) AS last, round(avg(close), 2) AS avg_close
FROM equity_bars GROUP BY symbol ORDER BY symbol
""".strip()


def stage_ingest(ctx: DemoContext) -> None:
    """Ingest every sample dataset through the Prefect ingest flows."""
    from flows.ingest_equity import ingest_equity_flow
    from flows.ingest_macro import ingest_macro_flow
    from flows.ingest_options import ingest_options_flow

    rows: list[dict[str, Any]] = []
    for result in (
        ingest_equity_flow(source="sample", progress=True),
        ingest_options_flow(source="sample", progress=False),
        ingest_macro_flow(source="sample", progress=True),
    ):
        assert isinstance(result, list)  # a failed flow raises its error instead of returning
        rows += result
    t = Table(title="ingested (sample source)")
    for col in ("table", "read", "accepted", "rejected", "inserted", "version"):
        t.add_column(col, justify="left" if col == "table" else "right")
    for r in rows:
        t.add_row(r["table"], f"{r['rows_read']:,}", f"{r['accepted']:,}", f"{r['rejected']:,}",
                  f"{r['inserted']:,}", str(r["version"]))
    ctx.console.print(t)
    for r in rows:
        for note in r.get("notes", []):
            ctx.console.print(f"[dim]{r['table']}: {note}[/]", highlight=False)
    ctx.console.print("[dim]The sample data has no CFTC COT history; `quantlake ingest cot` downloads it.[/]")
    ctx.results["ingest"] = rows


def stage_lake(ctx: DemoContext) -> None:
    """List the tables and run one example query."""
    t = Table(title="lake tables")
    for col in ("table", "version", "rows", "from", "to"):
        t.add_column(col)
    for i in ctx.lake.info():
        t.add_row(i.name, str(i.version), f"{i.rows:,}", str(i.min_date or ""), str(i.max_date or ""))
    ctx.console.print(t)
    from quantlake.cli import display_frame

    df = display_frame(ctx.lake.query(EXAMPLE_QUERY))
    q = Table(title="quantlake query: bars per symbol")
    for c in df.columns:
        q.add_column(str(c))
    for row in df.itertuples(index=False):
        q.add_row(*[str(v) for v in row])
    ctx.console.print(q)
    out = ctx.paths.reports / "bars_per_symbol.csv"
    df.to_csv(out, index=False)
    ctx.output("example query result", out)


# (name, "module:function") in pipeline order; later issues append their stages here
STAGES: list[tuple[str, str]] = [
    ("ingest", "quantlake.demo:stage_ingest"),
    ("lake", "quantlake.demo:stage_lake"),
    ("features", "features.demo:stage"),
    ("equity", "backtests.equity.demo:stage"),
    ("options", "backtests.options.demo:stage"),
    ("options_spx", "backtests.options.demo_spx:stage"),  # real SPX quotes (needs the ingest stage)
    ("options_sweep", "backtests.options.sweep.demo:stage"),
    ("risk", "risk.demo:stage"),
    ("tracking", "tracking.demo:stage"),
    ("scan", "execution.demo:stage_scan"),
    ("paper_trade", "execution.paper_demo:stage"),  # after the scan stage
    ("reproduce", "tracking.demo:stage_reproduce"),  # last: re-runs earlier stages' runs after new data
]


def _resolve(ref: str) -> Callable[[DemoContext], None]:
    mod, _, fn = ref.partition(":")
    func: Callable[[DemoContext], None] = getattr(importlib.import_module(mod), fn)
    return func


def run_demo(home: Path | None = None, only: list[str] | None = None, console: Console | None = None) -> DemoContext:
    quiet_environment()
    console = console or Console()
    if home is not None:
        os.environ["QUANTLAKE_HOME"] = str(home.expanduser().resolve())
    names = [n for n, _ in STAGES]
    unknown = set(only or []) - set(names)
    if unknown:
        raise UserInputError(f"unknown demo stage(s) {sorted(unknown)}; stages: {', '.join(names)}")
    p = paths().ensure()
    ctx = DemoContext(lake=Lake(p.lake), paths=p, console=console)
    console.print(Panel.fit(f"quantlake demo — QUANTLAKE_HOME={p.home}", style="bold"))
    t_all = time.perf_counter()
    for name, ref in STAGES:
        if only and name not in only:
            continue
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        _resolve(ref)(ctx)
        console.print(f"[green]✓ {name}[/] ({time.perf_counter() - t0:.1f} s)")
    console.rule("[bold]done")
    console.print(f"Finished in {time.perf_counter() - t_all:.1f} s. Everything is under {p.home}:")
    console.print(f"  lake tables:  {p.lake}   (quantlake lake tables / quantlake query \"...\")")
    console.print(f"  MLflow runs:  {p.mlflow}   (quantlake ui mlflow)")
    from quantlake.orchestration import decided

    if decided() in ("home-server", "configured"):  # a server that outlives the demo: its UI has the runs
        console.print(f"  Prefect runs: {os.environ['PREFECT_API_URL'].removesuffix('/api')}   (quantlake ui prefect)")
    for label, path in ctx.outputs.items():
        console.print(f"  {label}: {path}")
    return ctx
