# entwatch: the two commands are `make demo` and `make test` (each makes .venv when it is missing).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup test unit demo up console

setup:  ## make a virtualenv in .venv and install entwatch with its test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@echo "ready: run 'make demo', 'make test', or '. $(VENV)/bin/activate && entwatch up'"

$(VENV)/bin/entwatch: pyproject.toml  ## the environment: made (make setup) when missing or older than pyproject.toml
	$(MAKE) setup
	@touch $@

demo: $(VENV)/bin/entwatch  ## the embedded stack fed a simulated city, with the console (prints its URL and a login)
	$(VENV)/bin/entwatch demo

test: $(VENV)/bin/entwatch  ## every test: unit, doctests, integration on real broker/ClickHouse/chDB/Chromium/PostgreSQL
	$(PY) -m pytest -q

unit: $(VENV)/bin/entwatch  ## only the tests that need no service
	$(PY) -m pytest -q -m "not integration"

up: $(VENV)/bin/entwatch
	$(VENV)/bin/entwatch up

console: $(VENV)/bin/entwatch  ## the console alone, on this machine's worker (entwatch up)
	$(VENV)/bin/entwatch console
