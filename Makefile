# Build, test and run the Klavi Link backend. Nothing here needs the SAM CLI
# except the deploy and invoke targets, which wrap `sam`.

SHELL := /bin/bash
GO ?= go

# go.mod's toolchain line pins go1.26.11 (standard-library security fixes
# govulncheck reports for earlier 1.26 releases); let the go command fetch it
# from the module proxy even where the machine defaults to GOTOOLCHAIN=local.
# The go line stays at the oldest 1.26 release that compiles the module, so
# that plain go commands (go vet, go test -short) still run on such a
# machine; shipped binaries are held to the pinned toolchain by
# check-toolchain below.
export GOTOOLCHAIN := auto
MIN_TOOLCHAIN := go1.26.11

# govulncheck's database, built offline from this version of the
# golang.org/x/vulndb module (the build machines reach only the module proxy).
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB_DIR     := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/klavi-link-lambda/vulndb-$(VULNDB_VERSION)

# Every directory under functions/ with a main.go is one Lambda function.
FUNCTIONS := $(patsubst functions/%/main.go,%,$(wildcard functions/*/main.go))

# Lambda build: static arm64 binary named bootstrap for provided.al2023.
LAMBDA_ENV   := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags="-s -w"

# Bounded fuzzing in `make test`: each fuzz target runs for this long.
FUZZTIME ?= 10s

.PHONY: all build check-toolchain test unit fuzz lint vulndb bench run deploy clean help $(addprefix build-fn-,$(FUNCTIONS))

all: lint test build

help:
	@echo "make build   - one arm64 bootstrap per function under bin/<function>/"
	@echo "make test    - every test: unit, AWS emulator (moto), Lambda emulator, browser, bounded fuzzing"
	@echo "make lint    - gofmt, go vet, staticcheck, govulncheck, cfn-lint"
	@echo "make bench   - benchmarks (memory, call counts, binary size, cold start)"
	@echo "make run     - the whole flow on this machine"
	@echo "make deploy  - sam build && sam deploy (needs the SAM CLI and AWS credentials)"

build: $(addprefix build-fn-,$(FUNCTIONS))

# check-toolchain refuses to build Lambda binaries with a Go older than
# MIN_TOOLCHAIN (GOTOOLCHAIN=local on an older Go, say).
check-toolchain:
	@v=$$($(GO) env GOVERSION); \
	if [ "$$(printf '%s\n%s\n' "$(MIN_TOOLCHAIN)" "$$v" | sort -V | head -1)" != "$(MIN_TOOLCHAIN)" ]; then \
		echo "Go $$v builds binaries with known standard-library vulnerabilities: use $(MIN_TOOLCHAIN) or later (GOTOOLCHAIN=auto fetches it)"; exit 1; \
	fi

$(addprefix build-fn-,$(FUNCTIONS)): build-fn-%: check-toolchain
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o bin/$*/bootstrap ./functions/$*

# Targets `sam build` calls (Metadata: BuildMethod: makefile): build-<LogicalId>,
# with the logical id mapped to its directory under functions/.
FN_LinksApi      := links-api
FN_EventWebhook  := event-webhook
FN_ReportRequest := report-request
FN_ReportWebhook := report-webhook
FN_TokenRefresh  := token-refresh
FN_Reconcile     := reconcile
FN_IntegrationEvents := integration-events

build-%Function: check-toolchain
	@test -n "$(FN_$*)" || { echo "no function directory for logical id $*Function"; exit 1; }
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(FN_$*)

test: unit fuzz

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

lint: vulndb
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') ); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) tool govulncheck -db file://$(VULNDB_DIR) ./...
	cfn-lint template.yaml

vulndb: $(VULNDB_DIR)/index/db.json

$(VULNDB_DIR)/index/db.json:
	@set -e; src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$src" || { echo "could not download golang.org/x/vulndb@$(VULNDB_VERSION)"; exit 1; }; \
	$(GO) run ./scripts/vulndb -osv "$$src/data/osv" -out $(VULNDB_DIR).tmp; \
	rm -rf $(VULNDB_DIR); mv $(VULNDB_DIR).tmp $(VULNDB_DIR)

# Benchmarks: allocations per report, calls per warm request, binary sizes
# and cold starts next to the hello-world baseline (see README, Performance).
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=10x -count=1 ./...

run:
	$(GO) run ./cmd/devserver

deploy:
	sam build && sam deploy

clean:
	rm -rf bin .aws-sam
