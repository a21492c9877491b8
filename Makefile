# Tradeplane: the usual operator targets. `make help` lists them.
SHELL := /bin/bash
VENV := .venv/bin
DEMO_DIR ?= $(HOME)/.cache/tradeplane/demo

.PHONY: help bootstrap test test-unit manifests lint typecheck demo demo-down bench bench-fleet contracts clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

bootstrap:  ## install pinned tools and dependencies (idempotent)
	hack/bootstrap

test:  ## the whole suite: unit, real control plane, PostgreSQL, anvil
	hack/run-tests

test-unit:  ## only the fast tests that need no server
	hack/run-tests -m "not cluster and not postgres and not anvil and not prometheus"

manifests: bootstrap  ## regenerate crds/ from the pydantic models
	$(VENV)/python -m tradeplane_operator.api.crd > crds/tradingmodules.yaml
	cp crds/tradingmodules.yaml charts/tradeplane/crds/tradingmodules.yaml
	$(VENV)/python -m tradeplane_operator.api.crd portfolio > crds/tradingportfolios.yaml
	cp crds/tradingportfolios.yaml charts/tradeplane/crds/tradingportfolios.yaml

lint: bootstrap  ## ruff and mypy
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy -p tradeplane_operator -p module_runtime

typecheck: lint

contracts:  ## recompile the Solidity contracts into module_runtime/chain/artifacts
	hack/compile-contracts

demo:  ## start a local control plane, the operator, the pod stand-in and the samples
	hack/demo up $(DEMO_DIR)

demo-down:  ## stop everything `make demo` started
	hack/demo down $(DEMO_DIR)

bench:  ## benchmarks with ratios against an in-run baseline (incl. bench-fleet)
	hack/bootstrap && $(VENV)/python -m bench && $(VENV)/python -m bench.fleet

bench-fleet:  ## the operator at 1,000 modules vs the ReplicaSet controller (~5 min)
	hack/bootstrap && $(VENV)/python -m bench.fleet

clean:  ## remove build leftovers (keeps the cached control-plane binaries)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
