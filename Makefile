# One entry point for humans and CI. `make test` is the README's test command.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv deps demo test check lint typecheck schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages of the real servers the integration tests start (see tests/services.py).
deps:
	@bash .ci/ensure-servers

demo: $(STAMP)
	$(BIN)/hazgw demo

test: $(STAMP) deps
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

schema: $(STAMP)
	$(BIN)/hazgw schema

bench: $(STAMP) deps
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
