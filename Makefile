# One command runs the daemon, one command runs the tests (README "Quick start").
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit bench migration mutation clean

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

## make migration MSG="what changed": autogenerate the next schema migration (review it!)
migration: $(BIN)/intake
	$(BIN)/python -m store.migrate revision "$(MSG)"

## make bench: the benchmarks under bench/ (not part of the tests); BENCH_ARGS=--quick
BENCH_ARGS ?=
bench: $(BIN)/intake
	$(BIN)/python bench/compare.py $(BENCH_ARGS)
	$(BIN)/python bench/imap_intake.py --no-cli
	$(BIN)/python bench/corpus_check.py

## make mutation: mutmut on parsing/ against tests/parsing, then the score per module.
## MUTANTS='parsing.subject.* parsing.fields.*' narrows the run; MUTATION_JOBS sets the workers.
MUTANTS       ?=
MUTATION_JOBS ?= 2
# mutmut runs the tests inside mutants/, where the tests' ../shared/corpus default misses.
MUTATION_CORPUS ?= $(abspath $(CURDIR)/../shared/corpus)

$(BIN)/mutmut: $(BIN)/intake
	$(BIN)/pip install --quiet -e '.[test,mutation]'
	@touch $@

mutation: $(BIN)/mutmut
	INTAKE_CORPUS=$(MUTATION_CORPUS) $(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	@$(BIN)/mutmut results --all true | awk -F': ' '$(MUTATION_SCORE)' | sort

# The score as mutmut's badge counts it: (killed + timeout) / checked. "no tests" and
# "suspicious" count against it; "not checked" (outside MUTANTS) and "skipped" do not.
MUTATION_SCORE = \
	{ key = $$1; sub(/^ +/, "", key); module = key; sub(/\.[^.]*$$/, "", module) } \
	$$2 == "not checked" || $$2 == "skipped" { next } \
	{ checked[module]++; all++ } \
	$$2 == "killed" || $$2 == "timeout" || $$2 == "caught by type check" { killed[module]++; dead++ } \
	$$2 == "survived" || $$2 == "no tests" || $$2 == "suspicious" { print "  " $$2 ": " key } \
	END { for (m in checked) printf "score %-16s %5.1f %% (%d of %d killed)\n", m, 100 * killed[m] / checked[m], killed[m], checked[m]; \
	      if (all) printf "score %-16s %5.1f %% (%d of %d killed)\n", "all", 100 * dead / all, dead, all }

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache mutants
