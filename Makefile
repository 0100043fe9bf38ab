# Axis: `make demo` runs the main job, `make test` the tests, `make check` ruff + mypy.
# Each target creates .venv and installs what it needs when it is missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo walkthrough test test-fast check wheel-check system-deps clean

# The main job: a scaled-down seed-2020 (the launch window of the national axis, 95 agencies)
# through a real hub, with a progress bar, a summary and an HTML report in demo-report/.
DEMO_DOCUMENTS ?= 1500

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests talk to: xmlsec1 (independent XMLDSig interop), curl.
system-deps:
	@scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/axis simulate --scenario seed-2020 --documents $(DEMO_DOCUMENTS) --report demo-report

# A scripted exchange between five agencies, one command at a time (axis-node send, inbox,
# status, recall ...): how an agency's software talks to the hub.
walkthrough: $(STAMP)
	$(BIN)/python scripts/demo.py

# The suite on PYTEST_WORKERS processes (pytest-xdist; 0 runs it in this one process).
PYTEST_WORKERS ?= 2

test: $(STAMP) system-deps
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

# Only what runs in this process (no hub, command, worker or browser of its own): the
# quick loop while working; make test runs everything, as CI does.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not process"

check: $(STAMP)
	$(BIN)/ruff check axis nodes tests scripts
	$(BIN)/ruff format --check axis nodes tests scripts
	$(BIN)/mypy

# Axis installed from a wheel into a fresh venv (as users install it), its commands run there.
wheel-check: $(STAMP)
	PYTHON=$(BIN)/python scripts/wheel-check.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .coverage demo-data demo-report .pytest_cache .mypy_cache .ruff_cache .hypothesis
