# lvslab — see README.md. Every target installs what it needs.
GO        ?= go
BIN       := bin
# Tools are pinned by module version (what the module proxy serves, not a
# release name) and installed into .tools/<module>@<version>/bin, so a fresh
# clone builds its own and never trusts whatever binary is on PATH.
STATICCHECK_MOD     := honnef.co/go/tools
STATICCHECK_VERSION := v0.8.2
TOOLS_DIR   := $(CURDIR)/.tools
STATICCHECK := $(TOOLS_DIR)/$(STATICCHECK_MOD)@$(STATICCHECK_VERSION)/bin/staticcheck
FUZZTIME  ?= 20s
export GOFLAGS := -buildvcs=false

.PHONY: all build test unit run bench fuzz lint deps tools clean soak-tests

all: build

## deps: Debian packages the integration tests and the lab drive (as root).
deps:
	@scripts/deps.sh

## tools: staticcheck from the Go module proxy, pinned by module version.
tools:
	@scripts/tool.sh $(STATICCHECK_MOD)/cmd/staticcheck $(STATICCHECK_MOD) $(STATICCHECK_VERSION) $(STATICCHECK)

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $$($(GO) list ./cmd/...)

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

## unit: the tests that need neither root nor namespaces.
unit:
	$(GO) test -count=1 -short ./...

## test: everything — lint, unit, golden, property, netns integration (as root).
## Two packages at a time: the scenario catalogue (cmd/lvslab, mostly waiting)
## runs beside the other packages; every test's namespaces are its own.
test: deps lint build
	$(GO) test -count=1 -p 2 -timeout 14m ./...

## soak-tests: the netns integration packages N times (default 10), pass/fail
## counts per test; HOG=1 keeps every core busy meanwhile; PKGS, RUN narrow it;
## P packages at once (default 2, as make test runs them). Logs of failing runs
## stay in out/soak/.
N    ?= 10
HOG  ?= 0
P    ?= 2
soak-tests: deps
	@N=$(N) HOG=$(HOG) P=$(P) PKGS="$(PKGS)" RUN="$(RUN)" GO=$(GO) scripts/soak-tests.sh

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
