# Two commands do everything on a fresh machine:
#   make demo   - virtualenv + the simulator on the embedded default (no Kafka/Redis)
#   make test   - virtualenv + Redis (Debian) + Kafka jars (Maven Central), both started on
#                 loopback, the validators and headless Chromium + chromedriver (Debian,
#                 scripts/install-tools.sh), then lint, type check and the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test venv tools services services-stop lint typecheck unit bench soak clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/pacer-stream simulate --out out/demo --seeds 1 --campaigns 8 --days 3 --warmup-days 2

tools: venv
	bash scripts/install-tools.sh

services:
	bash scripts/services.sh start

services-stop:
	bash scripts/services.sh stop

lint: venv
	$(BIN)/ruff check pacer_stream tests

typecheck: venv
	$(BIN)/mypy

unit: venv tools
	$(BIN)/pytest -q tests/unit tests/contract

test: venv tools services lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

bench: venv services
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/pacer-stream bench --out bench/results

# Kill -9 soak on a private broker (not part of `make test`): >= 100,000 spend events,
# 20 SIGKILLs, one broker restart; report in out/soak/soak_report.json.
soak: venv services
	$(BIN)/pytest -q -p no:cacheprovider -m soak -s tests/integration/test_soak.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
