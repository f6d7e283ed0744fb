# incidentflow: `make run` (embedded stack + demo) and `make test` (the whole suite).
# Both create .venv and install the project on first use, and again when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run dev test check bench faults lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/incidentflow dev

dev: $(STAMP)
	$(BIN)/incidentflow dev --no-demo

test: check
	$(BIN)/python -m pytest

# The structure is a contract: layers point one way (import-linter), the lower layers type-check
# strictly, and the code is lint-clean. Part of `make test`, so CI fails on an upward import.
check: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/mypy --strict domain activities workflows
	$(BIN)/ruff check domain activities workflows workers incidentflow tests bench

bench: $(STAMP)
	$(BIN)/python bench/lifecycle.py

# Kills workers and restarts Temporal during an alert storm; fails if anything is lost or repeated.
faults: $(STAMP)
	$(BIN)/python bench/faults.py

lint: check
	$(BIN)/mypy domain activities workflows workers incidentflow

clean:
	rm -rf $(VENV) .incidentflow
