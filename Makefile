# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint types unit bench mutate clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

demo: $(BIN)/.installed
	@echo "sladaemon on a simulated helpdesk, 10 simulated minutes per second; Ctrl-C stops it"
	@echo "and says what to try next."
	@echo "The live board: http://127.0.0.1:9466/ (sign in as demo / demo-password)."
	rm -rf .demo  # each demo starts from the same simulated Monday, with nothing sent yet
	$(BIN)/sladaemon run --config config/demo.yaml

test: lint types unit

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # layers, a pure core, no import cycles (pyproject.toml)

types: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest -q

bench: $(BIN)/.installed
	$(BIN)/python -m bench

mutate: $(BIN)/.installed  # mutation testing of delivery, outbox and retry ([tool.mutmut])
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) mutants .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
