# cloudfront-opens — every target sets up what it needs first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q 'uv>=0.5,<1'
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv with the exact locked dependencies
	@true

.PHONY: lock
lock: ## Re-resolve requirements.lock (and the worker image's runtime lock) from pyproject.toml
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --python-version 3.11 -c requirements.lock -o requirements-runtime.lock

.PHONY: lint
lint: install ## ruff lint + format check
	$(BIN)/ruff check processor infra tests scripts
	$(BIN)/ruff format --check processor infra tests scripts

.PHONY: fmt
fmt: install ## Format and autofix
	$(BIN)/ruff format processor infra tests scripts
	$(BIN)/ruff check --fix processor infra tests scripts

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
