"""``quantlake serve``: a REST API (FastAPI on uvicorn) for other tools.

Submit sweeps, option backtests and training runs through the Prefect deployments (``runs``), read a flow
run's state and the MLflow metrics of the runs it made, list registered models and their aliases, read the
latest signals, run a read-only DuckDB query with a row and time limit, and scrape ``/metrics``
(Prometheus).  Every route but ``/health``, ``/docs`` and ``/openapi.json`` needs the API key
(:mod:`quantlake.api.auth`).
"""
