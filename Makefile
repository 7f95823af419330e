# One command runs the daemon, one command runs the tests (README "Quick start").
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit bench clean

$(BIN)/intake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

## make run: start the daemon with the embedded defaults (SMTP 127.0.0.1:2525, ./intake.db, ./outbox/)
run: $(BIN)/intake
	$(BIN)/intake serve $(ARGS)

## make test: lint, type-check, architecture contract, then the whole test suite
test: lint typecheck unit

lint: $(BIN)/intake
	$(BIN)/ruff check intake parsing store tests bench
	$(BIN)/lint-imports

typecheck: $(BIN)/intake
	$(BIN)/mypy

unit: $(BIN)/intake
	$(BIN)/pytest $(PYTEST_ARGS)

## make bench: the benchmarks under bench/ (not part of the tests)
bench: $(BIN)/intake
	$(BIN)/python bench/smtp_intake.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
