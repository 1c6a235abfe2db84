# quantlake worker image: exactly requirements.lock, then quantlake itself (no dependency resolution here).
#
#   docker build -t quantlake:$(git rev-parse --short HEAD) -t quantlake:latest .
#
# Used by the `docker` work pool deployments of prefect.yaml (see README "Scaling out") and as a Dask worker
# image (`docker run quantlake dask worker tcp://SCHEDULER:8786`).  The lake, MLflow and Prefect locations
# and the credentials come from the container's environment (QUANTLAKE_LAKE_URI, AWS_*, MLFLOW_TRACKING_URI,
# PREFECT_API_URL), never from the image.
FROM python:3.11-slim-bookworm

# byte-compiled at build time (--compile-bytecode): with PYTHONDONTWRITEBYTECODE each start would otherwise
# compile ~1,800 modules from source
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    QUANTLAKE_HOME=/var/lib/quantlake

WORKDIR /opt/quantlake

# 1. the locked dependency set (a layer that changes only when requirements.lock does)
COPY requirements.lock ./
RUN python -m pip install --no-cache-dir "uv==0.13.9" \
 && uv pip sync --system --no-cache --compile-bytecode requirements.lock

# 2. quantlake (its own code only: --no-deps, everything it needs is already installed from the lock)
COPY pyproject.toml README.md prefect.yaml ./
COPY quantlake ./quantlake
COPY flows ./flows
COPY features ./features
COPY backtests ./backtests
COPY risk ./risk
COPY tracking ./tracking
COPY execution ./execution
COPY sql ./sql
COPY configs ./configs
RUN uv pip install --system --no-cache --compile-bytecode --no-deps . \
 && useradd --create-home --uid 10001 quantlake \
 && mkdir -p /var/lib/quantlake && chown quantlake /var/lib/quantlake

USER quantlake
CMD ["quantlake", "--help"]
