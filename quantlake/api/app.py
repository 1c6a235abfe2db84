"""The FastAPI application of ``quantlake serve`` (routes documented at ``/docs``)."""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from quantlake.api import auth
from quantlake.errors import QuantlakeError, UserInputError

DEPLOYMENTS = {  # kind -> the prefect.yaml deployment ("flow/deployment") a submission runs
    "sweep": "equity-research/equity-sweep",
    "backtest": "options-backtest/options-backtest",
    "training": "train-models/train-models",
}
MAX_ROWS = 10_000
MAX_SECONDS = 60.0


class RunRequest(BaseModel):
    """A run to submit through its Prefect deployment."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sweep", "backtest", "training"]
    parameters: dict[str, Any] = Field(default_factory=dict, description="flow parameters (override the deployment's)")


class RunSubmitted(BaseModel):
    flow_run_id: str
    deployment: str
    state: str


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str = Field(min_length=1, max_length=20_000, description="one read-only query over the lake's views")
    limit: int = Field(default=1000, ge=1, le=MAX_ROWS, description="rows returned at most")
    timeout_s: float = Field(default=10.0, gt=0, le=MAX_SECONDS, description="interrupted after this long")


class QueryResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_s: float


def _cell(v: Any) -> Any:
    """One JSON value of a lake cell (NaN/NaT/NA -> null, dates ISO)."""
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if isinstance(v, dt.datetime) and v.tzinfo is None and v.time() == dt.time(0):
        return v.date().isoformat()  # a DATE column read back through pandas
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if hasattr(v, "item"):
        return _cell(v.item())
    return v if isinstance(v, int | float | str | bool) else str(v)


def _prefect_required() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise HTTPException(503, "no Prefect server configured: set PREFECT_API_URL for quantlake serve")


def create_app(key: str | None) -> FastAPI:
    """The app; ``key`` None leaves it open (only allowed on loopback, see :mod:`quantlake.api.auth`)."""
    app = FastAPI(
        title="quantlake",
        description="Submit research runs, read their results, models, signals and the lake. Authenticate "
        "with the header `X-API-Key: KEY` or `Authorization: Bearer KEY`.",
        version=_version(),
    )

    def require_key(
        x_api_key: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> None:
        if key is None:
            return
        given = x_api_key
        if given is None and authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not auth.matches(given, key):
            raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(require_key)]

    @app.exception_handler(QuantlakeError)
    async def _quantlake_error(request: Request, exc: QuantlakeError) -> JSONResponse:
        status = 400 if isinstance(exc, UserInputError) else 502
        return JSONResponse({"detail": str(exc).splitlines()[0][:2000]}, status_code=status)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness (no key needed)."""
        return {"status": "ok", "version": _version(), "auth": key is not None}

    @app.post("/runs", tags=["runs"], dependencies=guarded, status_code=202, response_model=RunSubmitted)
    def submit(req: RunRequest) -> RunSubmitted:
        """Submit a sweep / option backtest / training run through its Prefect deployment (a worker runs
        it); returns the flow-run id to poll with ``GET /runs/{id}``."""
        _prefect_required()
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        name = DEPLOYMENTS[req.kind]
        try:
            run: Any = run_deployment(name=name, parameters=req.parameters or None, timeout=0)
        except ObjectNotFound:
            raise HTTPException(
                404, f"deployment {name} not found on the Prefect server (prefect deploy --name {name.split('/')[1]})"
            ) from None
        return RunSubmitted(flow_run_id=str(run.id), deployment=name, state=str(run.state_name or "Scheduled"))

    @app.get("/runs/{flow_run_id}", tags=["runs"], dependencies=guarded)
    def status(flow_run_id: str) -> dict[str, Any]:
        """A flow run's Prefect state and the MLflow runs (with their metrics) it recorded."""
        import uuid

        _prefect_required()
        try:
            uuid.UUID(flow_run_id)
        except ValueError:
            raise HTTPException(422, f"{flow_run_id!r} is not a flow-run id (a UUID)") from None
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        try:
            with get_client(sync_client=True) as client:
                fr = client.read_flow_run(uuid.UUID(flow_run_id))
        except ObjectNotFound:
            raise HTTPException(404, f"no flow run {flow_run_id}") from None
        return {
            "flow_run_id": flow_run_id,
            "name": fr.name,
            "state": fr.state_name,
            "state_type": fr.state_type.value if fr.state_type else None,
            "expected_start_time": _cell(fr.expected_start_time),
            "start_time": _cell(fr.start_time),
            "end_time": _cell(fr.end_time),
            "parameters": fr.parameters,
            "mlflow_runs": _mlflow_runs(flow_run_id),
        }

    @app.get("/models", tags=["models"], dependencies=guarded)
    def models() -> list[dict[str, Any]]:
        """Registered models with their aliases (``champion``, ``previous``) and latest version."""
        from tracking.run_context import client

        c = client()
        out = []
        for m in c.search_registered_models():
            versions = c.search_model_versions(f"name = '{m.name}'")
            latest = max((int(v.version) for v in versions), default=None)
            out.append({"name": m.name, "aliases": dict(m.aliases or {}), "latest_version": latest,
                        "versions": len(versions), "tags": dict(m.tags or {})})  # fmt: skip
        return sorted(out, key=lambda x: x["name"])

    @app.get("/signals/latest", tags=["signals"], dependencies=guarded)
    def signals(
        kind: Annotated[Literal["daily", "intraday"], Query()] = "daily",
        limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 500,
    ) -> dict[str, Any]:
        """The latest scan's signals (``daily_signals`` of the newest date, or the newest closed bar's
        ``intraday_signals``)."""
        from quantlake.lake import Lake

        lake = Lake()
        table, when = ("daily_signals", "date") if kind == "daily" else ("intraday_signals", "bar_close")
        if not lake.exists(table):
            return {"table": table, "as_of": None, "signals": []}
        frame = lake.query(f"SELECT * FROM {table} WHERE {when} = (SELECT max({when}) FROM {table})")
        frame = frame.head(limit)
        as_of = _cell(frame[when].iloc[0]) if len(frame) else None
        rows = [{k: _cell(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]
        return {"table": table, "as_of": as_of, "signals": rows}

    @app.post("/query", tags=["lake"], dependencies=guarded, response_model=QueryResult)
    def query(req: QueryRequest) -> QueryResult:
        """A read-only query over the lake's tables (DuckDB; no file access, no writes), at most ``limit``
        rows and ``timeout_s`` seconds."""
        return run_query(req)

    @app.get("/metrics", tags=["service"], dependencies=guarded, response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus text: flow outcomes, lake freshness per table, paper equity and drawdown, alerts."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from quantlake.api.prom import registry

        return PlainTextResponse(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)

    return app


def run_query(req: QueryRequest) -> QueryResult:
    import duckdb

    from quantlake.lake import Lake
    from quantlake.lake_sql import check_read_only, query_error

    check_read_only(req.sql)  # one query, no COPY/ATTACH/INSTALL/SET/... (UserInputError -> 400)
    lake = Lake()
    con = lake.connect()  # read-only: external access disabled, only the snapshot's files
    timer = threading.Timer(req.timeout_s, con.interrupt)
    t0 = time.perf_counter()
    timer.start()
    try:
        cur = con.execute(req.sql)
        names = [d[0] for d in cur.description or []]
        got = cur.fetchmany(req.limit + 1)
    except duckdb.InterruptException:
        raise HTTPException(408, f"query exceeded the time limit of {req.timeout_s:g} s") from None
    except duckdb.Error as exc:
        if time.perf_counter() - t0 >= req.timeout_s:
            raise HTTPException(408, f"query exceeded the time limit of {req.timeout_s:g} s") from None
        raise query_error(exc) from None
    finally:
        timer.cancel()
        con.close()
    rows = [[_cell(v) for v in r] for r in got[: req.limit]]
    return QueryResult(columns=names, rows=rows, truncated=len(got) > req.limit,
                       elapsed_s=round(time.perf_counter() - t0, 4))  # fmt: skip


def _mlflow_runs(flow_run_id: str) -> list[dict[str, Any]]:
    from tracking.run_context import client
    from tracking.tags import FLOW_RUN, JOB

    c = client()
    exps = [e.experiment_id for e in c.search_experiments()]
    if not exps:
        return []
    found = c.search_runs(exps, f"tags.`{FLOW_RUN}` = '{flow_run_id}'", max_results=100)
    return [
        {"run_id": r.info.run_id, "experiment_id": r.info.experiment_id, "job": r.data.tags.get(JOB),
         "status": r.info.status, "metrics": dict(r.data.metrics)}
        for r in found
    ]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quantlake")
    except PackageNotFoundError:
        return "0"
