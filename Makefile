# tse-repro: `make reproduce` and `make test` are all a fresh clone needs; both install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= demo
NPROC ?= 1
PYTEST_ARGS ?=
ARGS ?=

.PHONY: install test reproduce reference extend report lab export clean bench gpu-check docs

install: $(STAMP)

# Installs the package with the exact versions of requirements-lock.txt (settings.ini declares the ranges the
# package works with; the lock is the environment the references were made with). Reinstalls whenever the
# ranges, the lock or the packaging shim change.
$(STAMP): settings.ini requirements-lock.txt setup.py pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
	  { echo "make: $(PYTHON) is not Python 3.11; name one that is: make PYTHON=python3.11 $(MAKECMDGOALS)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned environment into $(VENV) (first time: about 3 minutes and 6 GB, torch included)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements-lock.txt -e ".[dev]"
	@touch $(STAMP)

# Tests run in TEST_WORKERS processes (pytest-xdist; many wait on a subprocess or a kernel), the longest first (tests/conftest.py).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -x -ra -n $(TEST_WORKERS) --dist worksteal tests/ $(PYTEST_ARGS)

# Trains the profile afresh in runs/$(PROFILE)/ (resuming an interrupted sweep), reports it and compares it with results/$(PROFILE)/.
reproduce: $(STAMP)
	$(BIN)/python -m tse_repro.experiments --profile $(PROFILE) --nproc $(NPROC) $(ARGS)

# The one deliberate way to change the committed reference: promote the finished sweep in runs/$(PROFILE)/ to results/$(PROFILE)/.
reference: $(STAMP)
	$(BIN)/python -m tse_repro.experiments --profile $(PROFILE) --promote $(ARGS)

# Grow a reference run by run: train the runs results/$(PROFILE)/ lacks (none twice) and add each to it as it completes;
# results/$(PROFILE)/ can be committed at any point, and the same command continues from it on any machine.
extend: $(STAMP)
	$(BIN)/python -m tse_repro.experiments --profile $(PROFILE) --nproc $(NPROC) --extend $(ARGS)
	$(BIN)/python -m tse_repro.readme

# Rebuild the reference's report from its committed runs (after a change to the report code); trains nothing.
report: $(STAMP)
	$(BIN)/python -m tse_repro.experiments --profile $(PROFILE) --report $(ARGS)
	$(BIN)/python -m tse_repro.readme

bench: $(STAMP)
	$(BIN)/python -m tse_repro.bench $(ARGS)

# On a GPU machine, first: throughput and memory of SDT/TET/TSE (bf16, channels_last, eager and compiled) and a DDP run.
gpu-check: $(STAMP)
	$(BIN)/python -m tse_repro.bench --gpu-check $(ARGS)

LAB_PORT ?= 8888
LAB_TOKEN := $(shell head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# kernels on IPC (local sockets), not TCP: no kernel port on the network, and no start-up warning about one
lab: $(STAMP)
	@echo "JupyterLab: open http://127.0.0.1:$(LAB_PORT)/lab?token=$(LAB_TOKEN)  (Ctrl-C stops it)"
	@$(BIN)/jupyter lab --notebook-dir=. --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 --no-browser \
	  --IdentityProvider.token=$(LAB_TOKEN) --ServerApp.log_level=WARN --KernelManager.transport=ipc $(if $(filter 0,$(shell id -u)),--allow-root)

# The guide notebooks (GUIDES in nbs/19_notebooks.ipynb) executed in place and committed with their figures; run it
# when a test says their outputs are out of date.
docs: $(STAMP)
	$(BIN)/python -m tse_repro.experiments docs $(ARGS)

# Notebooks are the source: export them to tse_repro/ and clean them (metadata, execution counts) before committing.
export: $(STAMP)
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export

clean:
	rm -rf _docs _proc .pytest_cache
	find . -name __pycache__ -prune -not -path './$(VENV)/*' -exec rm -rf {} +
