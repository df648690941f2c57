# The table of contents: `make help` lists every target.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the mypyc-compiled matching core is no older than its source
CORE := $(VENV)/.core-built

.DEFAULT_GOAL := help
.PHONY: help install dev test test-unit test-e2e test-deploy lint typecheck bench image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,deploy,local]"
	bash scripts/install-deploy-tools.sh
	bash scripts/install-browser.sh
	bash scripts/install-redis.sh
	bash scripts/install-podman.sh
	touch $(STAMP) $(CORE)

# An editable install compiled book.py once; an edit to it would leave the old extension imported first.
$(CORE): services/matcher/book.py services/matcher/records.py shared/booksnapshot.py setup.py | $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace --force
	touch $(CORE)

install: $(STAMP) ## create .venv and install the project with its test tools

dev: $(STAMP) $(CORE) ## run the whole fleet locally (Tansu, Postgres, Redis, every service); Ctrl-C stops it
	$(BIN)/spot up

test: $(STAMP) $(CORE) ## install and run every test against real Postgres, Redis and Kafka-protocol broker
	$(BIN)/pytest -q

test-unit: $(STAMP) $(CORE) ## pure-core tests only (no servers)
	$(BIN)/pytest -q tests/unit

test-e2e: $(STAMP) $(CORE) ## the fleet as separate processes, driven over REST and WebSocket
	$(BIN)/pytest -q tests/e2e

test-deploy: $(STAMP) ## Dockerfile, compose, Helm, KEDA/VPA/Karpenter, Terraform checks, offline
	bash scripts/install-deploy-tools.sh
	$(BIN)/pytest -q tests/deploy

lint: $(STAMP) ## ruff, mypy and the import contracts (lint-imports: services share only shared/)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) $(CORE) ## benchmarks core|matcher|processor|fleet|scaleout (ARGS="core --events 200000"): table + bench/results/*.json
	$(BIN)/python -m bench $(ARGS)

image: ## build services/Dockerfile with podman (a debootstrap base where no registry answers; SPOT_IMAGE=tag)
	bash scripts/build-image.sh

clean: ## remove the virtual environment and local state
	rm -rf $(VENV) .spot .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
