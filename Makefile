# CX platform — `make run` starts everything locally, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help venv browsers run test test-fast lint format protos protos-check bench clean down status reset lock k8s-check images

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-13s %s\n",$$1,$$2}'

venv: ## create/update .venv (run and test do this themselves)
	@scripts/bootstrap.sh

run: venv ## start Postgres, NATS and all five services; Ctrl-C stops everything
	@$(BIN)/cx-local up

down: venv ## stop a running `make run` from another terminal
	@$(BIN)/cx-local down

status: venv ## show what the local stack is running
	@$(BIN)/cx-local status

reset: venv ## wipe local data (.cx/)
	@$(BIN)/cx-local reset --yes

test: venv protos-check browsers ## every test: unit, service, contract, e2e (real Postgres + NATS)
	@$(BIN)/pytest $(PYTEST_ARGS)

test-fast: venv ## tests without the slow and e2e ones
	@$(BIN)/pytest -m "not slow and not e2e" $(PYTEST_ARGS)

lint: venv ## ruff, ruff format --check, mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy libs/cx-common/src deploy/local/src $(wildcard services/*/src)

format: venv ## apply ruff fixes and formatting
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

protos: venv ## regenerate libs/cx-protos from protos/
	@PYTHON=$(PY) scripts/gen_protos.sh

protos-check: venv ## fail when libs/cx-protos differs from protos/
	@tmp=$$(mktemp -d) && PYTHON=$(PY) scripts/gen_protos.sh $$tmp >/dev/null && \
	  if diff -r -x __pycache__ -x '*.egg-info' -x README.md -x pyproject.toml $$tmp/cx libs/cx-protos/src/cx >/dev/null; then \
	    echo "protos: generated code is up to date"; rm -rf $$tmp; \
	  else diff -r -x __pycache__ $$tmp/cx libs/cx-protos/src/cx | head -20; rm -rf $$tmp; \
	    echo "protos: libs/cx-protos is out of date, run 'make protos'"; exit 1; fi

browsers: ## install Debian's Chromium for the browser tests when missing
	@scripts/ensure_chromium.sh

bench: venv ## benchmarks with their peers, printing ratios
	@$(PY) -m bench $(BENCH_ARGS)

k8s-check: venv ## render and validate deploy/k8s offline (kustomize, schemas, house rules, linters)
	@deploy/k8s/check.sh

images: ## build the container images where a Docker/Podman engine exists
	@deploy/k8s/build-images.sh

clean: ## remove the venv, caches and build output (keeps .cx data; see `make reset`)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +

lock: venv ## re-pin constraints.txt from the current .venv
	@{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^cx-' | sed -E 's/^torch==([0-9.]+)\+cpu/torch==\1/'; } > constraints.txt.new && mv constraints.txt.new constraints.txt
