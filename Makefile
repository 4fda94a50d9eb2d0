GO       ?= go
PKGS     ?= ./...
BENCH    ?= .
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: test bench lint run build tools

## test: vet, then every test with the race detector (real PostgreSQL via pgembed or TEST_DATABASE_URL)
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 12m $(PKGS)

## bench: Go benchmarks (set BENCH=regexp, PKGS=./pgclient/...)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(PKGS)

## lint: gofmt, vet and staticcheck
lint: tools
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

## run: everything locally (omnibridge dev)
run:
	$(GO) run ./cmd/omnibridge dev

## build: the omnibridge binary in ./bin
build:
	$(GO) build -o bin/omnibridge ./cmd/omnibridge

tools:
	@test -x "$(STATICCHECK)" || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
