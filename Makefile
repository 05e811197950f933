# Kafka CDC Studio: `make run` opens the application, `make test` runs the tests.
# Both set up what is missing first and are safe to run again.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast lint bench down wipe clean

$(STAMP): pyproject.toml
	@echo "== setting up: checking Java 17+ and Maven, creating $(VENV), installing Python packages"
	@bash scripts/check-system
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)
	@echo "== building the JVM module (Kafka, H2, our trigger classes) with Maven"
	@$(BIN)/cdc-studio jvm build

run: setup
	@echo "== starting Kafka CDC Studio on the embedded stack"
	@bash scripts/run-gui

test: setup
	@echo "== running the whole test suite (starts one real stack for the session)"
	@$(BIN)/python -m pytest

test-fast: setup
	@$(BIN)/python -m pytest tests/unit

lint: setup
	@$(BIN)/ruff check core gui tests
	@$(BIN)/ruff format --check core gui tests
	@$(BIN)/mypy core
	@$(BIN)/lint-imports

bench: setup
	@$(BIN)/python -m tests.bench.all

down:
	@$(BIN)/cdc-studio stack down

wipe:
	@$(BIN)/cdc-studio stack down --wipe
