# Every install step lives here: CI starts from a clean clone with nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/flashc envs  # the worker images' environments local endpoints run in: made once, from the index
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/flashc analyze fixtures/demo
	$(BIN)/flashc build fixtures/demo
	$(BIN)/flashc deploy fixtures/demo
	$(BIN)/python fixtures/demo/scripts/call_demo.py; status=$$?; $(BIN)/flashc undeploy fixtures/demo; exit $$status

bench: install
	$(BIN)/python tests/bench/run.py

lint: install
	$(BIN)/ruff check flashc runtime tests
	$(BIN)/ruff format --check flashc runtime tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
