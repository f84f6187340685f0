# eventflow — entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export EVENTFLOW_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/eventflow
export CARGO_TARGET_DIR ?= $(EVENTFLOW_CACHE)/target
export CLUSTER ?= local
# Counts of each tier land here; `make test` prints them at the end.
export EVENTFLOW_TEST_SUMMARY ?= $(EVENTFLOW_CACHE)/test-summary.txt

CLUSTER_DIR := e2e/cluster
# CLUSTER=local (default: e2e/cluster/cluster.sh) or CLUSTER=kind (e2e/cluster/kind.sh).
CLUSTER_SCRIPT := $(CLUSTER_DIR)/$(if $(filter kind,$(CLUSTER)),kind.sh,cluster.sh)

.PHONY: help deps tools lint fmt unit integration e2e test test-summary \
        services-up services-down control-plane-up control-plane-down cluster-up cluster-down \
        cluster-check-clean images crds demo

help:
	@echo "make demo        bring up a cluster and run the example system"
	@echo "make test        every test tier (what CI runs)"
	@echo "make bench       benchmarks that print figures beside a baseline (warehouse lookups, Spring side by side, hot paths)"
	@echo "make measure     figures of the example system and the cost per order (MEASURE_ARGS=--fresh|--statements|--memory-only|--orders N --rate R)"
	@echo "make measure-burst  a burst into a fixed vs an autoscaled worker, side by side"
	@echo "make chaos       a load run while pods of every kind are killed, then the invariants (CHAOS_ARGS=--events N --rate R --kill-every 10..30 --seed S --max-minutes M | --broker-restart)"
	@echo "make cluster-up / cluster-down / control-plane-up / control-plane-down / images / crds / lint"
	@echo "make spring-apps the example Spring Cloud Stream apps' jars (spring-apps-test: with their tests)"
	@echo "make cli         the kubectl plugin kubectl-eventflow (release build; copy it onto the PATH)"

deps: ## Debian packages the tests need (installed when missing)
	@$(CLUSTER_DIR)/deps.sh

tools: deps ## Kubernetes, etcd, CoreDNS, local-path-provisioner, Helm (cached by version)
	@$(CLUSTER_DIR)/build-kube.sh

fmt:
	cargo fmt --all

lint: deps ## shellcheck, fmt, clippy, and the dependency policy (deny.toml; builds cargo-deny once)
	shellcheck $$(find e2e bench -name '*.sh' | sort)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	$(CLUSTER_DIR)/cargo-deny.sh

services-up: deps
	@$(CLUSTER_DIR)/services.sh up
services-down:
	@$(CLUSTER_DIR)/services.sh down

control-plane-up: tools
	@$(CLUSTER_DIR)/control-plane.sh up
control-plane-down:
	@$(CLUSTER_DIR)/control-plane.sh down

cluster-up: tools
	@$(CLUSTER_SCRIPT) up
cluster-down:
	@$(CLUSTER_SCRIPT) down
cluster-check-clean:
	@$(CLUSTER_SCRIPT) check-clean

crds: ## regenerate crds/ from the Rust types, and the chart's copy
	cargo run -q -p eventflow-operator --bin crdgen -- crds
	rm -f charts/eventflow/crds/*.yaml; cp crds/*.yaml charts/eventflow/crds/

images: tools
	@$(CLUSTER_DIR)/images.sh

.PHONY: cli
cli: ## the kubectl plugin, $(CARGO_TARGET_DIR)/release/kubectl-eventflow
	cargo build --release -p eventflow-cli
	@echo "kubectl-eventflow: $(CARGO_TARGET_DIR)/release/kubectl-eventflow (copy it onto the PATH: kubectl eventflow --help)"

.PHONY: spring-apps spring-apps-test
spring-apps: ## the example Spring Cloud Stream apps' jars (apps/spring), into $(EVENTFLOW_CACHE)/spring/jars
	@$(CLUSTER_DIR)/spring-apps.sh
spring-apps-test: ## the same, with the modules' tests
	@$(CLUSTER_DIR)/spring-apps.sh test

demo: cluster-up images ## the example system on a real cluster, with load
	@e2e/demo.sh

# Benchmarks print figures (a baseline beside each): tests named *_versus_*,
# left out of `make test`.
# The Spring side by side (bench/README.md): bench/build.sh builds the Spring
# jars and fetches PerfTest with Maven (skipped when bench/ is unchanged),
# outputs under $(EVENTFLOW_CACHE). SPRING_BENCH_ARGS="--posts N --clients N --messages N --postgres".
# The hot paths (apps/account/README.md, "Hot paths"): a command through the
# web role, the relay, a worker's loop, each beside its ceiling (bare SQL,
# PerfTest). HOTPATH_BENCH_ARGS="--commands N --clients N".
.PHONY: bench
bench: services-up control-plane-up ## benchmarks against the private RabbitMQ/PostgreSQL (and the control plane)
	@bench/build.sh
	@eval "$$($(CLUSTER_DIR)/services.sh env)"; eval "$$($(CLUSTER_DIR)/control-plane.sh env)"; \
	  cargo test --release -p eventflow-warehouse --test lookup_bench -- --ignored --nocapture; \
	  cargo test --release -p eventflow-operator --all-features --test broker_users -- --ignored --nocapture _versus_; \
	  cargo test --release -p eventflow-operator --all-features --test network -- --ignored --nocapture _versus_; \
	  cargo test --release -p eventflow-runtime --all-features --test tls -- --ignored --nocapture _versus_; \
	  cargo build --release -p eventflow-account --bin account --example spring-side-by-side; \
	  "$(CARGO_TARGET_DIR)/release/examples/spring-side-by-side" $(SPRING_BENCH_ARGS); \
	  cargo build --release -p eventflow-account --example hotpaths; \
	  "$(CARGO_TARGET_DIR)/release/examples/hotpaths" $(HOTPATH_BENCH_ARGS)

.PHONY: measure
measure: cluster-up images ## figures of the example system, cost per order: MEASURE_ARGS="--fresh --orders N --rate R --statements | --memory-only"
	@eval "$$($(CLUSTER_SCRIPT) env)"; \
	  cargo run -q --release -p eventflow-e2e --bin e2e-measure -- $(MEASURE_ARGS)

# A burst of 500 accounts (2,000 events) into the account worker at a fixed
# single replica, then autoscaled from zero: the figures side by side.
.PHONY: measure-burst
measure-burst: cluster-up images ## autoscaling: a burst into a fixed vs an autoscaled worker, side by side
	@eval "$$($(CLUSTER_SCRIPT) env)"; \
	  cargo run -q --release -p eventflow-e2e --bin e2e-burst

# Outside `make test`, bounded in time (--max-minutes, default 90): a load
# run while pods of every kind are deleted, then a table and the invariants
# (exit 1 when one fails); --broker-restart measures one broker restart.
.PHONY: chaos
chaos: cluster-up images ## faults under load: CHAOS_ARGS="--events N --rate R --kill-every MIN..MAX --seed S --max-minutes M --namespace NS | --broker-restart [--force]"
	@eval "$$($(CLUSTER_SCRIPT) env)"; \
	  cargo run -q --release -p eventflow-e2e --bin e2e-chaos -- $(CHAOS_ARGS)

# Tier 1: pure tests, no services.
unit:
	@e2e/run-tier.sh unit cargo test --workspace --exclude eventflow-e2e --all-features
	@e2e/run-tier.sh unit-java $(CLUSTER_DIR)/spring-apps.sh test

# Tier 2: against private RabbitMQ/PostgreSQL and the control-plane-only Kubernetes.
integration: services-up control-plane-up spring-apps
	@eval "$$($(CLUSTER_DIR)/services.sh env)"; eval "$$($(CLUSTER_DIR)/control-plane.sh env)"; \
	  e2e/run-tier.sh integration cargo test --workspace --exclude eventflow-e2e --all-features -- --include-ignored --skip _versus_

# Tier 3: the real node.
# kubectl finds the kubectl-eventflow plugin on the PATH, as a user's does.
e2e: cluster-up images
	@cargo build -q -p eventflow-cli
	@eval "$$($(CLUSTER_SCRIPT) env)"; export PATH="$(CARGO_TARGET_DIR)/debug:$$PATH"; \
	  e2e/run-tier.sh e2e bash -c 'cargo test -p eventflow-e2e -- --include-ignored --test-threads=4 --skip the_uninstall_order && \
	    cargo test -p eventflow-e2e --test uninstall -- --include-ignored' || { e2e/cluster/diagnose.sh; exit 1; }

test:
	@rm -f $(EVENTFLOW_TEST_SUMMARY)
	$(MAKE) deps tools lint unit
	$(MAKE) integration || { $(MAKE) services-down control-plane-down; exit 1; }
	$(MAKE) services-down control-plane-down
	$(MAKE) e2e || { $(MAKE) cluster-down; exit 1; }
	$(MAKE) cluster-down cluster-check-clean
	@$(MAKE) --no-print-directory test-summary

test-summary:
	@echo "== tests run =="; cat $(EVENTFLOW_TEST_SUMMARY)
	@awk '{p+=$$2; f+=$$4; i+=$$6} END {printf "total: %d passed, %d failed, %d ignored\n", p, f, i}' $(EVENTFLOW_TEST_SUMMARY)
