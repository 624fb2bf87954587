# The two commands of the README: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench bench-drain bench-trace bench-rollback bench-all clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m agentctl.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check agentctl tests bench
	$(BIN)/ruff format --check agentctl tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python bench/contain.py

bench-drain: $(STAMP)
	$(BIN)/python bench/drain.py

bench-trace: $(STAMP)
	$(BIN)/python bench/trace.py

bench-rollback: $(STAMP)
	$(BIN)/python bench/rollback.py

bench-all: bench bench-drain bench-trace bench-rollback

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build
