# Developer shortcuts. The README's two commands work without make; these
# wrap them and the other checks. `make help` lists the targets.
GO ?= go
.DEFAULT_GOAL := help

.PHONY: help run test test-race policy lint bench fuzz build

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## run the sidecar on the embedded SQLite default
	$(GO) run ./cmd/kavach serve

test: ## the README's test command (what CI runs)
	bash .ci/run

test-race: ## the Go tests with the race detector (the test command runs them so too)
	$(GO) test -race ./...

policy: ## Rego: format, strict check, tests with coverage
	$(GO) tool opa fmt --list --fail policies examples/extensions
	$(GO) tool opa check --strict --schema schemas policies examples/extensions
	$(GO) tool opa test --coverage --threshold 100 policies >/dev/null

lint: ## go vet, gofmt, Regal on the policies (tools/go.mod, .regal/config.yaml), golangci-lint if installed
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	$(GO) tool -modfile=tools/go.mod regal lint policies
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; \
	else echo "golangci-lint not installed: go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0"; fi

bench: ## in-process decision, decoder and guard benchmarks
	$(GO) test ./engine -run X -bench Decide -benchtime 5000x
	$(GO) test ./sidecar -run X -bench 'Decode|Guard' -benchmem

# Every fuzz target, as package:name. Their seed corpora (f.Add and
# testdata/fuzz/) run in every go test; `make fuzz` explores each in turn for
# FUZZTIME: `make fuzz FUZZTIME=10s FUZZ_TARGETS=./sidecar:FuzzAuthorize`.
FUZZTIME ?= 1m
FUZZ_TARGETS ?= ./sidecar:FuzzAuthorize ./sidecar:FuzzCreateAgent ./sidecar:FuzzUpdateAgent \
	./sidecar:FuzzDelegate ./sidecar:FuzzCreateKey ./sidecar:FuzzResolveApproval ./sidecar:FuzzAPI \
	./config:FuzzConfig ./engine:FuzzResourceError ./engine:FuzzResourceMatch \
	./oauth:FuzzRegistration ./oauth:FuzzRedirectMatch ./oauth:FuzzVerify ./domain:FuzzMaxCallsPerHour

fuzz: ## run each fuzz target (FUZZ_TARGETS) for FUZZTIME (1m), one after another
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t##*:} ($${t%%:*}, $(FUZZTIME))"; \
		$(GO) test "$${t%%:*}" -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME); \
	done

build: ## the kavach binary
	$(GO) build -o kavach ./cmd/kavach
