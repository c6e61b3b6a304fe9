# Ponte's build. `make help` lists the targets; `make run` starts everything
# locally, `make test` runs every test against real servers it starts itself.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
BIN := $(CURDIR)/bin
# Pinned tools, built from their Go modules into bin/ once.
TEMPORAL_MODULE := github.com/temporalio/cli
TEMPORAL_VERSION := v1.5.1
STRIPE_MOCK_MODULE := github.com/stripe/stripe-mock
STRIPE_MOCK_VERSION := v0.180.0
STATICCHECK_VERSION := v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
PLUGINS := $(wildcard connectors/*/cmd/*)
# 2 cores: two test binaries at a time; each starts its own servers.
TEST_P ?= 2
TEST_TIMEOUT ?= 18m

# built_from(binary,module,version) succeeds when the binary's Go build
# information names that main module version (the tools print a placeholder
# when asked for their version, so their build information is what tells).
built_from = $(GO) version -m $(1) 2>/dev/null | awk -v m=$(2) -v v=$(3) '$$1 == "mod" && $$2 == m && $$3 == v { ok = 1 } END { exit !ok }'

.PHONY: help build run test tools postgres lint bench generate clean

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/ponte and every connector plugin (connectors/*/cmd/*) into bin/plugins/
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ponte ./cmd/ponte
	@mkdir -p bin/plugins
ifneq ($(PLUGINS),)
	$(GO) build -o bin/plugins/ $(addprefix ./,$(PLUGINS))
endif

run: build ## Build, then run Ponte locally with `bin/ponte dev` (Postgres and Temporal in ./var)
	bin/ponte dev

tools: ## Build the pinned temporal CLI and stripe-mock into bin/ when missing or another version
	@mkdir -p bin
	@if ! $(call built_from,bin/temporal,$(TEMPORAL_MODULE),$(TEMPORAL_VERSION)); then \
	  echo "building temporal $(TEMPORAL_VERSION) into bin/ (about 4 minutes on 2 cores, once)"; \
	  GOBIN=$(BIN) GOFLAGS= $(GO) install $(TEMPORAL_MODULE)/cmd/temporal@$(TEMPORAL_VERSION); \
	fi
	@if ! $(call built_from,bin/stripe-mock,$(STRIPE_MOCK_MODULE),$(STRIPE_MOCK_VERSION)); then \
	  echo "building stripe-mock $(STRIPE_MOCK_VERSION) into bin/"; \
	  GOBIN=$(BIN) GOFLAGS= $(GO) install $(STRIPE_MOCK_MODULE)@$(STRIPE_MOCK_VERSION); \
	fi

postgres: ## Install Debian's postgresql package when the Postgres server binaries are missing (as root)
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -x "$$(pg_config --bindir 2>/dev/null)/initdb" ] \
	    || { [ -n "$${PONTE_PG_BINDIR:-}" ] && [ -x "$$PONTE_PG_BINDIR/initdb" ]; }; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "The Postgres server binaries are missing: install Debian's postgresql package (sudo apt-get install postgresql)."; exit 1; \
	fi; \
	echo "installing Debian's postgresql package"; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql

test: tools postgres ## Run every test, unit and integration (starts Postgres, Temporal and stripe-mock itself)
	$(GO) test -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) ./...

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench: tools postgres ## Run the benchmarks behind the figures in the issues and print the machine they ran on
	@echo "machine: $$(uname -a)"
	@echo "cores:   $$(nproc)"
	@echo "cpu:     $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	@echo "memory:  $$(awk '/MemTotal/ {printf "%.1f GB", $$2/1048576}' /proc/meminfo)"
	@echo "go:      $$($(GO) version)"
	@echo
	@echo "== plugin action round trip (host -> plugin -> host, no I/O in the plugin; target p50 < 200 µs)"
	$(GO) test -run '^$$' -bench 'BenchmarkActionRoundTrip$$' -benchtime 20000x ./core/pluginhost
	@echo
	@echo "== webhook ingress through ponte serve + the Stripe plugin + Postgres (target >= 3000/s, p99 < 50 ms)"
	@echo "== and idle memory of ponte serve + the Stripe plugin (target < 120 MB)"
	$(GO) test -run '^$$' -bench 'BenchmarkIngressStripe$$|BenchmarkIdleMemory$$' -benchtime 1x -timeout 20m ./core/server
	@echo
	@echo "== sending through the Cloud API plugin to the fake Graph API at the 1,000 msg/s tier, 20,000 recipients,"
	@echo "== consent checks and ledger writes included (target >= 950 msg/s, zero 130429 and zero 131056)"
	$(GO) test -run '^$$' -bench 'BenchmarkSendThroughput$$' -benchtime 1x -timeout 20m ./core/messaging
	@echo
	@echo "== inbound WhatsApp messages through ponte serve + the Cloud API plugin + Postgres, contacts and"
	@echo "== conversations updated (target 2000 signed webhooks/s stored, p99 < 100 ms)"
	$(GO) test -run '^$$' -bench 'BenchmarkInboundMessages$$' -benchtime 1x -timeout 20m ./core/server
	@echo
	@echo "== cart recovery: 10,000 Shopify checkouts, each a cart workflow waiting on its timer on the Temporal"
	@echo "== dev server (target: ponte serve under 300 MB RSS)"
	$(GO) test -run '^$$' -bench 'BenchmarkOpenCarts$$' -benchtime 1x -timeout 40m ./core/server
	@echo
	@echo "== order notifications: Shopify orders/create webhook -> confirmation template at the fake Graph API,"
	@echo "== 100 orders/s for 60 s, open loop (targets p50 < 300 ms, p99 < 1 s)"
	$(GO) test -run '^$$' -bench 'BenchmarkOrderConfirmation$$' -benchtime 1x -timeout 30m ./core/server
	@echo
	@echo "== the same at 30 orders/s, a rate the 2-core reference machine sustains (the dev server's CPU is the limit)"
	PONTE_BENCH_RATE=30 $(GO) test -run '^$$' -bench 'BenchmarkOrderConfirmation$$' -benchtime 1x -timeout 30m ./core/server
	@echo
	@echo "== linked devices: RSS of the plugin per idle whatsmeow client, 1,000 paired devices loaded from"
	@echo "== Postgres and not connected (this machine has no route to WhatsApp) (target < 2 MB each)"
	PONTE_BENCH_LINKEDDEVICE=1 $(GO) test -run 'TestIntegrationIdleClientMemory$$' -count=1 -v -timeout 20m ./connectors/linkeddevice | grep -v '^{'
	@echo
	@echo "== linked devices: takeover of a session after kill -9 of the node holding it, 3 ponte serve nodes,"
	@echo "== default lease timings (target < 30 s)"
	$(GO) test -run 'TestIntegrationLinkedDeviceTakeoverAfterKill$$' -count=1 -v -timeout 20m ./core/server | grep -E 'takeover|^(---|ok|FAIL)'

generate: ## Regenerate generated code (go generate ./...)
	$(GO) generate ./...

clean: ## Remove built binaries (keeps bin/temporal, bin/stripe-mock and the data in var/)
	rm -rf bin/ponte bin/plugins
	$(GO) clean -testcache
