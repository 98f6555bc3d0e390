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

fuzz: ## fuzz the HTTP API for a minute
	$(GO) test ./sidecar -run X -fuzz '^FuzzAPI$$' -fuzztime 60s

build: ## the kavach binary
	$(GO) build -o kavach ./cmd/kavach
