# The two commands a newcomer runs: `make demo` and `make test`.
# Each creates .venv (Python 3.11+) and installs what it needs; the Kafka jars are
# fetched from Maven Central on first use and cached in ~/.cache/tidings.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint unit tools bench clean

demo: $(STAMP)
	$(BIN)/tidings demo

test: $(STAMP) lint tools
	$(BIN)/python -m pytest

# Browsers, podman, Prometheus, npm packages: what the heavier suites need (ops/tools/).
tools:
	@bash ops/tools/ensure.sh

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check tidings tests producers consumers schemas ops benchmarks
	$(BIN)/mypy

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
	  || { echo "Tidings needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --retries 5 --timeout 60 --upgrade pip
	$(BIN)/python -m pip install --quiet --retries 5 --timeout 60 -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Benchmarks (measurements, never pass/fail): `make bench`, or `make bench ARGS=--quick`
# for a ~1 minute smoke run. Writes benchmarks/results/latest.md and latest.json.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --retries 5 --timeout 60 -e '.[dev,bench]'
	@rm -f $(VENV)/.bench-*
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
