# entwatch: the two commands are `make setup` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup test unit demo up

setup:  ## make a virtualenv in .venv and install entwatch with its test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@echo "ready: run 'make test', or '. $(VENV)/bin/activate && entwatch up'"

test:   ## every test: unit, doctests, integration on real broker/ClickHouse/chDB
	$(PY) -m pytest -q

unit:   ## only the tests that need no service
	$(PY) -m pytest -q -m "not integration"

up:
	$(VENV)/bin/entwatch up
