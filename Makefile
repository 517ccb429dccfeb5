# Build, test and run the Klavi Link backend. Nothing here needs the SAM CLI
# except the deploy and invoke targets, which wrap `sam`.

SHELL := /bin/bash
GO ?= go

# Every directory under functions/ with a main.go is one Lambda function.
FUNCTIONS := $(patsubst functions/%/main.go,%,$(wildcard functions/*/main.go))

# Lambda build: static arm64 binary named bootstrap for provided.al2023.
LAMBDA_ENV   := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags="-s -w"

# Bounded fuzzing in `make test`: each fuzz target runs for this long.
FUZZTIME ?= 10s

.PHONY: all build test unit fuzz lint bench run deploy clean help $(addprefix build-fn-,$(FUNCTIONS))

all: lint test build

help:
	@echo "make build   - one arm64 bootstrap per function under bin/<function>/"
	@echo "make test    - every test: unit, AWS emulator (moto), Lambda emulator, bounded fuzzing"
	@echo "make lint    - gofmt, go vet, staticcheck, cfn-lint"
	@echo "make bench   - benchmarks (memory, call counts, binary size, cold start)"
	@echo "make run     - the whole flow on this machine"
	@echo "make deploy  - sam build && sam deploy (needs the SAM CLI and AWS credentials)"

build: $(addprefix build-fn-,$(FUNCTIONS))

$(addprefix build-fn-,$(FUNCTIONS)): build-fn-%:
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o bin/$*/bootstrap ./functions/$*

# Targets `sam build` calls (Metadata: BuildMethod: makefile): build-<LogicalId>,
# with the logical id mapped to its directory under functions/.
FN_CreateLink    := create-link
FN_EventWebhook  := event-webhook
FN_ReportRequest := report-request
FN_ReportWebhook := report-webhook
FN_TokenRefresh  := token-refresh
FN_Reconcile     := reconcile

build-%Function:
	@test -n "$(FN_$*)" || { echo "no function directory for logical id $*Function"; exit 1; }
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(FN_$*)

test: unit fuzz

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') ); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@if [ -f template.yaml ]; then cfn-lint template.yaml; fi

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...

run:
	@echo "make run: not yet (the local development server arrives with the local-development work)"

deploy:
	sam build && sam deploy

clean:
	rm -rf bin .aws-sam
