# roomcast: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never

UV = $(shell scripts/ensure-uv.sh)
PYTEST_ARGS ?=
SOAK_SECONDS ?= 120
EDGES ?= 1
TRACING ?=
BUS ?=
BIND ?=
WORKERS ?=
REGISTRY ?=
INGEST ?=

.PHONY: help install-runtime install install-js lint typecheck test test-unit test-js test-shared run clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

# --no-dev: the runtime only (no test tools); --inexact: keep them if `make install` put them there.
install-runtime: ## install what running the stack needs: uv, the locked runtime Python deps, redis-server, Kafka jars (not with BUS=redis)
	$(UV) sync --frozen --no-dev --inexact
	$(UV) run --no-sync roomcast-harness prepare $(if $(filter redis,$(BUS)),--no-kafka)

install: install-runtime install-js ## install what the tests need too: the dev Python deps, chromium, nginx, helm, jaeger, toxiproxy, centrifugo, podman, the JS client's and the console's build tools (npm ci)
	$(UV) sync --frozen
	$(UV) run roomcast-harness prepare --browser
	@scripts/ensure-helm.sh >/dev/null
	@scripts/ensure-toxiproxy.sh >/dev/null
	@scripts/ensure-jaeger.sh >/dev/null
	@scripts/ensure-centrifugo.sh >/dev/null
	@scripts/ensure-podman.sh
	@cd services/publisher/console && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; }

lint: install ## ruff lint and format check
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: install ## mypy --strict on our code, tests and benchmarks included
	$(UV) run mypy libs services clients tests bench

install-js: ## the JS client's build and test tools (npm ci, locked by clients/js/package-lock.json)
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error

test: install lint typecheck test-js ## everything: lint, types and the whole test suite against real Redis and Kafka
	$(UV) run pytest $(PYTEST_ARGS)

test-js: install-js ## the JS client alone: eslint, tsc, and its Node tests (the real-stack ones run in pytest)
	cd clients/js && npm run lint && npm run typecheck && npm test

test-shared: install ## shared ingest across edges (not in `make test` until it stops losing messages)
	$(UV) run pytest -m shared_ingest tests/integration/edge $(PYTEST_ARGS)

test-unit: install ## unit tests only (no servers)
	$(UV) run pytest tests/unit $(PYTEST_ARGS)

run: install-runtime ## the whole stack locally until Ctrl-C, on 127.0.0.1 (BIND=0.0.0.0 for every interface; EDGES=N for N edges on 8081, 8083, 8084, ...; INGEST=shared: the edges split the partitions; WORKERS=N|auto processes per edge and publisher; TRACING=jaeger adds Jaeger; BUS=redis: Redis Streams, no Kafka nor Java; ROOMCAST_REDIS__URL / ROOMCAST_KAFKA__BOOTSTRAP_SERVERS to use existing ones)
	$(if $(WORKERS),ROOMCAST_EDGE__WORKERS=$(WORKERS) ROOMCAST_PUBLISHER__WORKERS=$(WORKERS)) $(UV) run --no-sync roomcast-harness stack --edges $(EDGES) $(if $(TRACING),--tracing $(TRACING)) $(if $(BUS),--bus $(BUS)) $(if $(BIND),--host $(BIND)) $(if $(INGEST),--ingest $(INGEST))

clean: ## remove the virtualenv and caches (the Kafka jars cache in ~/.cache/roomcast stays)
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis

.PHONY: k8s helm-lint images

k8s: ## render helm/roomcast into the plain manifests in k8s/ (never edit those by hand)
	scripts/render-k8s.sh k8s

helm-lint: ## helm lint --strict of the chart, with the least an install needs and with every switch on
	$$(scripts/ensure-helm.sh) lint --strict helm/roomcast -f tests/deploy/values/minimal.yaml
	$$(scripts/ensure-helm.sh) lint --strict helm/roomcast -f tests/deploy/values/all-on.yaml

images: ## build the three service images (podman or docker; REGISTRY=registry.example.com/roomcast also pushes them there; ROOMCAST_LOCAL_BASE=1: local Debian base)
	REGISTRY=$(REGISTRY) scripts/build-images.sh

.PHONY: bench bench-quick bench-node bench-centrifugo bench-publisher

bench-node: ## install the Node.js benchmark peer's packages (npm ci, locked)
	cd bench/peers/node && npm ci --no-audit --no-fund --loglevel=error

bench-centrifugo: ## build the Centrifugo benchmark peer once (go install, cached in ~/.cache/roomcast)
	@scripts/ensure-centrifugo.sh >/dev/null

bench: install-runtime bench-node bench-centrifugo ## full benchmark: roomcast vs Centrifugo, Node ws, naive aiohttp; C = 1k/5k/10k and ticks; writes bench/results/
	$(UV) run python -m bench --plan full
	$(UV) run python -m bench.publisher --plan full

bench-quick: install-runtime bench-node bench-centrifugo ## quick benchmark (C = 400 and a small ticks run, a few minutes); writes bench/results/quick.json
	$(UV) run python -m bench --plan quick
	$(UV) run python -m bench.publisher --plan quick

bench-publisher: install-runtime ## publisher throughput vs bare aiokafka, Kafka's ProducerPerformance and a bare aiohttp endpoint (PLAN=full|quick); merged into bench/results/
	$(UV) run python -m bench.publisher --plan $(or $(PLAN),full)

.PHONY: soak chaos

CHAOS_SECONDS ?= 600
CHAOS_SEED ?=

chaos: install ## the chaos lane (CHAOS_SECONDS, default 600; CHAOS_SEED): kills, restarts and cut links under load, every promise checked; report in chaos-report/
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$(CHAOS_SEED) $(UV) run python -m tests.chaos

soak: install-runtime ## bounded soak (SOAK_SECONDS, default 120): publishes, client churn, stalled clients, one Kafka restart; prints the ledger, fails on any loss
	SOAK_SECONDS=$(SOAK_SECONDS) $(UV) run python -m tests.robustness.soak
