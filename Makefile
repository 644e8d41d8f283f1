# Conveyor. The two commands: `make run` starts the whole system, `make test` checks everything.
# Both install the locked dependencies first. See README.md.

export UV_PYTHON_DOWNLOADS := never

PYTHON := .venv/bin/python
LOCAL := $(PYTHON) scripts/local.py

.PHONY: run test install check format worker services bench help
.DEFAULT_GOAL := help

## run: migrate, create the demo, run web + one worker per queue + scheduler (Ctrl-C stops)
run: install
	$(LOCAL) run

## test: ruff, ruff format --check, mypy, migrations check, pytest (ARGS="..." go to pytest)
test: install
	$(LOCAL) test $(ARGS)

## install: uv sync --frozen into .venv (installs uv into .tools/ when there is none)
install:
	@scripts/install.sh

## check: everything `make test` does except pytest
check: install
	$(LOCAL) check

## format: fix what ruff can fix and format the code
format: install
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

## worker: one worker for QUEUE (e.g. make worker QUEUE=email, or QUEUE="email webhooks")
worker: install
	@test -n "$(QUEUE)" || { echo "usage: make worker QUEUE=email" >&2; exit 2; }
	$(LOCAL) worker $(QUEUE)

## services: only the embedded PostgreSQL / Valkey (for unset URLs), until Ctrl-C
services: install
	$(LOCAL) services

## bench: benchmarks beside bare RQ (ARGS="--quick", "--only throughput,latency", "--markdown")
bench: install
	$(PYTHON) -m bench $(ARGS)

## help: list these targets
help:
	@sed -n "s/^## //p" Makefile
