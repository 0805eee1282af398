# pushsync — `make help` lists the targets.

# A build cache outside the clone, shared by every checkout and by CI.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/pushsync-target
CARGO ?= cargo
# Pinned tools the tests run (helm) live here; see scripts/install-helm.sh.
export PUSHSYNC_TOOLS ?= $(HOME)/.cache/pushsync-tools
export PATH := $(PUSHSYNC_TOOLS)/bin:$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help run run-receiver test test-unit lint check-deps check-manifests image deps broker bench soak fmt clean-broker sandbox

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: deps ## Run the whole product locally: receiver, worker, in-memory queue, API sandbox, sample repo
	$(CARGO) build --locked -p pushsync-local
	$(CARGO_TARGET_DIR)/debug/pushsync-local

run-receiver: ## Run only the receiver on an in-memory queue (PUSHSYNC_AMQP_URL: publish to RabbitMQ)
	$(CARGO) build --locked -p pushsync-receiver
	scripts/run-local.sh

test: deps broker lint ## Everything: lint, unit, integration and end-to-end tests (needs RabbitMQ)
	# The end-to-end tests run the shipped binaries; `cargo test` alone builds
	# only those of the test's own package.
	$(CARGO) build --workspace --bins --locked
	# scripts/leak-check.sh fails the run when a test leaves a process behind.
	scripts/leak-check.sh $(CARGO) test --workspace --all-targets --locked
	$(CARGO) test --workspace --doc --locked

test-unit: ## Only the tests beside the code: no broker, no sandbox (passes with RabbitMQ stopped)
	$(CARGO) test --workspace --lib --locked

lint: check-deps check-manifests ## cargo fmt --check, clippy -D warnings, dependency direction, unused dependencies, RustSec advisories, chart and monitoring checks
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) machete
	# RustSec advisories, offline, against the vendored snapshot (third_party/advisory-db/;
	# its commit and date are printed: later advisories are not checked). cargo-deny
	# runs `cargo metadata`, which needs every target's crates downloaded.
	@scripts/advisory-db.sh
	$(CARGO) fetch --locked --quiet
	$(PUSHSYNC_TOOLS)/bin/cargo-deny --offline --locked check advisories sources

check-deps: ## Fail if a crate depends on what it must not (see ARCHITECTURE.md)
	@scripts/check-deps.sh

check-manifests: ## helm lint + chart/Kustomize parity, promtool check/test rules, dashboard checks
	@scripts/check-chart.sh
	@scripts/check-monitoring.sh

fmt: ## Format the code
	$(CARGO) fmt --all

deps: ## Install the tools the tests and lint use (promtool; pinned helm 4; prism 5.14.2 + @octokit/openapi 23.0.2; chromium, oidc-provider 9.13.3 + playwright-core 1.65.1; cargo-machete; pinned cargo-deny)
	@command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v openssl >/dev/null || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openssl >/dev/null; }
	@dpkg -s libssl-dev pkg-config >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libssl-dev pkg-config >/dev/null; }
	@command -v npm >/dev/null || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm >/dev/null; }
	@scripts/install-helm.sh
	@scripts/install-prism.sh
	@scripts/install-ui-test-tools.sh
	@python3 -m pip --version >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-pip >/dev/null; }
	@python3 -c 'import yaml' 2>/dev/null || command -v yq >/dev/null || python3 -m pip install --quiet 'PyYAML==6.0.3'
	@scripts/install-cargo-deny.sh
	@command -v cargo-machete >/dev/null || $(CARGO) install --locked --quiet cargo-machete@0.9.2

broker: ## Make sure RabbitMQ answers on 127.0.0.1:5672 (installs and starts it if needed)
	@scripts/ensure-rabbitmq.sh

image: ## Build the container images with buildah (images/README.md): IMAGE_REGISTRY, IMAGE_TAG, IMAGE_BASE=auto|local|registry, IMAGE_TARGETS
	scripts/build-images.sh

bench: broker ## Benchmarks against same-run baselines (prints figures and core count)
	$(CARGO) build --release --locked -p pushsync-receiver -p pushsync-worker -p pushsync-sandbox -p pushsync-bench
	scripts/leak-check.sh $(CARGO_TARGET_DIR)/release/pushsync-bench --receiver-bin $(CARGO_TARGET_DIR)/release/pushsync-receiver --worker-bin $(CARGO_TARGET_DIR)/release/pushsync-worker --sandbox-bin $(CARGO_TARGET_DIR)/release/pushsync-sandbox $(BENCH_ARGS)

soak: broker ## Minutes of pushes while workers are killed and the broker cut; ends with the count of lost pushes (SOAK_SECONDS, default 120)
	$(CARGO) build --release --locked -p pushsync-worker -p pushsync-bench
	scripts/leak-check.sh $(CARGO_TARGET_DIR)/release/pushsync-bench --only soak --worker-bin $(CARGO_TARGET_DIR)/release/pushsync-worker --soak-seconds $(or $(SOAK_SECONDS),120)

sandbox: ## Run the Kubernetes API sandbox on 127.0.0.1:6443 (kubeconfig: sandbox.kubeconfig)
	$(CARGO) run --locked -q -p pushsync-sandbox -- --port 6443 --kubeconfig-out sandbox.kubeconfig

clean-broker: ## Delete test queues and exchanges left on the local RabbitMQ
	@rabbitmqctl -q list_queues name | grep '^test-' | xargs -r -n1 rabbitmqctl -q delete_queue >/dev/null || true
