# lvslab — see README.md. Every target installs what it needs.
GO        ?= go
BIN       := bin
STATICCHECK_VERSION := 2026.2.2
FUZZTIME  ?= 20s
export GOFLAGS := -buildvcs=false
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin

.PHONY: all build test unit run bench fuzz lint deps tools clean

all: build

## deps: Debian packages the integration tests and the lab drive (as root).
deps:
	@scripts/deps.sh

## tools: staticcheck from the Go module proxy, pinned.
tools:
	@test -x $(GOBIN_DIR)/staticcheck && $(GOBIN_DIR)/staticcheck -version | grep -q '$(STATICCHECK_VERSION)' || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $$($(GO) list ./cmd/...)

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN_DIR)/staticcheck ./...

## unit: the tests that need neither root nor namespaces.
unit:
	$(GO) test -count=1 -short ./...

## test: everything — lint, unit, golden, property, netns integration (as root).
test: deps lint build
	$(GO) test -count=1 -p 1 -timeout 14m ./...

## fuzz: every fuzz target for FUZZTIME each.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: the benchmark table (ns/op, allocs/op, bytes per connection, ratios).
bench: deps build
	@scripts/bench.sh

## run: the default lab tour.
run: deps build
	@scripts/run.sh

clean:
	rm -rf $(BIN)
