# cloudfront-opens — every target sets up what it needs first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PY_SCRIPTS := $(wildcard scripts/bench_* scripts/chaos scripts/profile_*)  # Python, no .py suffix
# The native decoding core (native/) is built with cargo; rustup installs it in ~/.cargo/bin.
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE_SRC := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock $(NATIVE_SRC)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q 'uv>=0.5,<1'
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/uv pip install -q --python $(BIN)/python --reinstall-package opens-native ./native
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv with the exact locked dependencies
	@true

.PHONY: lock
lock: ## Re-resolve requirements.lock (and the worker image's runtime lock) from pyproject.toml
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --python-version 3.11 -c requirements.lock -o requirements-runtime.lock

.PHONY: lint
lint: install ## ruff lint + format check; cargo fmt + clippy on native/
	$(BIN)/ruff check processor infra tests scripts $(PY_SCRIPTS)
	$(BIN)/ruff format --check processor infra tests scripts $(PY_SCRIPTS)
	cd native && cargo fmt --check && cargo clippy -q --all-targets -- -D warnings

.PHONY: fmt
fmt: install ## Format and autofix
	$(BIN)/ruff format processor infra tests scripts $(PY_SCRIPTS)
	$(BIN)/ruff check --fix processor infra tests scripts $(PY_SCRIPTS)

.PHONY: typecheck
typecheck: install ## mypy (strict) on processor/ and infra/
	$(BIN)/mypy

.PHONY: test
test: lint typecheck ## Lint, types, then the whole suite (unit + integration on the real stack)
	$(BIN)/pytest

.PHONY: unit
unit: install ## Unit tests only (no services)
	$(BIN)/pytest -m unit

.PHONY: demo
demo: install ## The pipeline end to end on the local stack: traffic through a local edge, report checked against the truth
	$(BIN)/opens demo

.PHONY: bench
bench: install ## Benchmarks (throughput as ratios to same-run baselines)
	@for b in scripts/bench_*; do echo "== $$b"; $(BIN)/python "$$b" || exit 1; done

.PHONY: chaos
chaos: install ## Fault drill: demo traffic while the worker, Kafka, ClickHouse and Kinesis fail
	$(BIN)/python scripts/chaos

.PHONY: stack-up stack-down stack-status
stack-up: install ## Start Kafka + moto on loopback
	$(BIN)/opens stack up
stack-down: install ## Stop what stack-up started
	$(BIN)/opens stack down
stack-status: install ## Show the stack's components, addresses and PIDs
	$(BIN)/opens stack status

.PHONY: clean
clean: ## Stop the stack and remove local state (keeps the Kafka jar cache)
	-[ -x $(BIN)/opens ] && $(BIN)/opens stack down
	rm -rf .opens .pytest_cache .mypy_cache .ruff_cache
