# quantlake — the three commands of the README: `make install`, `make demo`, `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
# byte-compiled at install: every command imports ~1,800 modules, and where PYTHONDONTWRITEBYTECODE is set
# (CI images, containers) Python would compile them from source on every start (~2-5 s per command)
PACKAGES := quantlake flows features backtests risk tracking execution

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install chromium demo test test-fast lint typecheck bench lock clean

install: ## create .venv and install quantlake with every dependency (from requirements.lock)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; quantlake needs Python 3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 $(PACKAGES) >/dev/null
	@$(MAKE) --no-print-directory chromium
	@$(BIN)/quantlake --version

chromium: ## headless Chromium for the UI end-to-end test (Debian package; needs root or sudo)
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  && echo "chromium: installed $$(command -v chromium)"; \
	else echo "note: chromium not installed (needs root + apt-get); the UI end-to-end test will fail without it" >&2; fi

demo: ## run the whole pipeline offline on the embedded sample data
	$(BIN)/quantlake demo

test: ## the full suite: unit, integration and end-to-end (slow) tests
	$(BIN)/python -m pytest -n 2 --timeout 900 -q

test-fast: ## unit tests only
	$(BIN)/python -m pytest -n 2 -q -m "not slow and not integration"

lint:
	$(BIN)/ruff check .
	$(BIN)/mypy

bench:
	$(BIN)/python -m benchmarks

lock: ## re-resolve requirements.lock after editing pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .quantlake .pytest_cache .mypy_cache .ruff_cache
