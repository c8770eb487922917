# The two commands a new machine needs: `make run` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint setup setup-dev services

$(BIN)/activate:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt
	bash scripts/ensure-cjk-font.sh
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt scripts/ensure-chromium.sh scripts/ensure-wrk.sh $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	bash scripts/ensure-wrk.sh
	bash scripts/ensure-chromium.sh
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

## Embedded default: SQLite in instance/, jobs in process, photos on disk, WeChat messages recorded.
## `make run PORT=5001 HOST=0.0.0.0`; PUBLIC_BASE_URL follows the port unless it is set.
HOST ?= 127.0.0.1
PORT ?= 5000
run: setup
	$(BIN)/flask --app wsgi demo
	$(BIN)/flask --app wsgi serve --host $(HOST) --port $(PORT)

## Lint and layer contracts, then tests against real MySQL/MariaDB and Redis (started if down),
## plus the embedded SQLite mode.
test: lint services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## ruff (ruff.toml) and the layer contracts (.importlinter, explained in ARCHITECTURE.md).
lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

services:
	bash scripts/ensure-services.sh
