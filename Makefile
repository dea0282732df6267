# The two commands a user needs: `make run` and `make test`. CI calls `make test` too.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `cpu` or `gpu` runtime; `train` brings torch for bootstrap and fine-tunes.
EXTRAS ?= cpu,train
HOST ?= 127.0.0.1
PORT ?= 8000
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install install-dev run serve bootstrap test test-fast test-services lint check-deploy docs docs-build bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cpu,train,dev,ray]'
	touch $@

install-dev: $(VENV)/.installed-dev

## Install, build the default models if the store has none, and serve on $(HOST):$(PORT).
run: install
	$(BIN)/textserve bootstrap
	$(BIN)/textserve serve --host $(HOST) --port $(PORT)

bootstrap: install
	$(BIN)/textserve bootstrap

## Install what the tests need, lint, build the manual, and run the whole suite (tests/cluster
## included: two replicas sharing a real redis-server and PostgreSQL, which
## scripts/install-test-services.sh installs).
test: install-dev lint check-deploy docs-build test-services
	$(BIN)/python -m pytest tests -q --ignore=tests/deploy

test-services:
	bash scripts/install-test-services.sh

test-fast: install-dev
	$(BIN)/python -m pytest tests/unit -q

lint: install-dev
	$(BIN)/ruff check app tests docker bench docs/hooks
	$(BIN)/ruff format --check app tests docker bench docs/hooks
	$(BIN)/mypy

## Deployment checks with real tools (installed by scripts/install-deploy-tools.sh): hadolint,
## kustomize + Kubernetes schemas, compose, promtool, the dashboard, a real Prometheus scraping us.
check-deploy: install-dev
	bash scripts/install-deploy-tools.sh
	$(BIN)/python -m pytest tests/deploy -q

## The manual (mkdocs.yml, pages in docs/): `make docs` serves it with live reload on
## $(HOST):$(DOCS_PORT); `make docs-build` writes it to site/ and fails on any warning (a broken
## link or anchor, a page missing from the nav, a setting without a description).
## `python -m mkdocs` puts this checkout first on the path: the configuration page is written
## from its app/config.py.
DOCS_PORT ?= 8001
export NO_MKDOCS_2_WARNING := 1
docs: install-dev
	$(BIN)/python -m mkdocs serve --dev-addr $(HOST):$(DOCS_PORT)

docs-build: install-dev
	$(BIN)/python -m mkdocs build --strict --site-dir site

## The CPU benchmarks (about 6 minutes on 2 cores): serving vs the in-process limit and the naive
## baseline (table, JSON and a PNG chart in bench/results/), int8 vs fp32, processes x runs x threads.
## DATA: texts (labelled for the int8 accuracy); STORE / MODEL: the version to measure;
## BENCH_QUANT_ARGS: label mapping for quantize.py, e.g. "--label-map 0=negative,1=positive
## --drop-label neutral" for the default sentiment model on SST-2.
BENCH_DATA ?= $(or $(DATA),../shared/data/sst2/dev.tsv)
BENCH_STORE ?= $(or $(STORE),models)
BENCH_MODEL ?= $(or $(MODEL),sentiment)
bench: install-dev
	$(BIN)/python bench/classify.py --data $(BENCH_DATA) --store $(BENCH_STORE) --model $(BENCH_MODEL)
	$(BIN)/python bench/quantize.py --data $(BENCH_DATA) --store $(BENCH_STORE) --model $(BENCH_MODEL) \
	    $(BENCH_QUANT_ARGS) || echo "bench/quantize.py did not run: see its message above"
	$(BIN)/python bench/cores.py --data $(BENCH_DATA) --store $(BENCH_STORE) --model $(BENCH_MODEL)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache site
