# Axis: `make demo` runs the main job, `make test` the tests, `make check` ruff + mypy.
# Each target creates .venv and installs what it needs when it is missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests talk to: xmlsec1 (independent XMLDSig interop), curl.
system-deps:
	@scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP) system-deps
	$(BIN)/pytest -q

check: $(STAMP)
	$(BIN)/ruff check axis nodes tests scripts
	$(BIN)/ruff format --check axis nodes tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache .hypothesis
