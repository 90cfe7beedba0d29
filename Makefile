# tse-repro: `make reproduce` and `make test` are all a fresh clone needs; both install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= demo
NPROC ?= 1
PYTEST_ARGS ?=

.PHONY: install test reproduce reference lab export clean bench

install: $(STAMP)

# Reinstalls whenever the pins (settings.ini) or the packaging shim change.
$(STAMP): settings.ini setup.py pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -x -ra tests/ $(PYTEST_ARGS)

# Trains the profile afresh in runs/$(PROFILE)/ (resuming an interrupted sweep), reports it and compares it with results/$(PROFILE)/.
reproduce: $(STAMP)
	$(BIN)/python -m tse_repro.experiments --profile $(PROFILE) --nproc $(NPROC)

# The one deliberate way to change the committed reference: promote the finished sweep in runs/$(PROFILE)/ to results/$(PROFILE)/.
reference: $(STAMP)
	$(BIN)/python -m tse_repro.experiments --profile $(PROFILE) --promote

bench: $(STAMP)
	$(BIN)/python -m tse_repro.bench

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=. --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# Notebooks are the source: export them to tse_repro/ and strip outputs before committing.
export: $(STAMP)
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export

clean:
	rm -rf _docs _proc .pytest_cache
	find . -name __pycache__ -prune -not -path './$(VENV)/*' -exec rm -rf {} +
