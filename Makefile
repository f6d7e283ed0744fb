# incidentflow: `make run` (embedded stack + demo) and `make test` (the whole suite).
# Both create .venv and install the project on first use, and again when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run dev test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/incidentflow dev

dev: $(STAMP)
	$(BIN)/incidentflow dev --no-demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/lifecycle.py

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff mypy types-PyYAML
	$(BIN)/ruff check incidentflow workflows activities workers tests bench
	$(BIN)/mypy incidentflow workflows activities workers

clean:
	rm -rf $(VENV) .incidentflow
