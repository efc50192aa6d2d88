# peapod: `make run` sets up this machine and runs a single-node cluster;
# `make test` sets up and runs every test, as root, against the real kernel.

GO       ?= go
DATA_DIR ?= /var/lib/peapod
# SERVER_ARGS: extra `peapod server` flags for `make run`.
SERVER_ARGS ?=
BIN      := bin/peapod
PAUSE    := internal/runtime/pause/pause.bin
BUSYBOX  := bin/images/busybox.tar
GOFILES  := $(shell find cmd internal hack -name '*.go' 2>/dev/null)

export PATH := /usr/local/go/bin:$(PATH)

# kubectl's kustomize can load Go plugins (.so files built with the very
# same toolchain and modules, which nobody has for an embedded kubectl);
# linking package plugin makes Go's linker keep every method of every
# reachable type and export every symbol, so the binary grows by 37 MB
# (168 -> 131 MB); kustomize added the tag for that (kubernetes-sigs/
# kustomize#5524). Every go command of make (build, test, vet, bench)
# gets it.
export GOFLAGS := -tags=kustomize_disable_go_plugin_support

.PHONY: all build setup images pause test unit fuzz bench run vet lint clean

all: build

setup:
	@./hack/setup.sh

pause: $(PAUSE)

$(PAUSE): internal/runtime/pause/pause.c
	musl-gcc -static -Os -Wall -Wextra -Werror -o $@ $<
	strip $@

build: $(BIN)

$(BIN): $(PAUSE) $(GOFILES) go.mod go.sum
	$(GO) build -o $@ ./cmd/peapod

# The busybox image docker.io/library/busybox:latest, built offline from
# Debian's busybox-static; byte-identical on every run.
images: $(BUSYBOX)

$(BUSYBOX): $(wildcard hack/mkbusybox/*.go) /bin/busybox
	@mkdir -p $(dir $@)
	$(GO) run ./hack/mkbusybox -o $@

vet: $(PAUSE)
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal hack test)" || { gofmt -l cmd internal hack test; exit 1; }

# staticcheck is pinned in go.mod's tool block (`go tool staticcheck`), so
# its version is reviewed and checksummed with the other dependencies.
lint: $(PAUSE)
	$(GO) tool staticcheck ./...

# Packages run one at a time (-p 1): kernel tests' leak checks compare the
# whole machine before and after, so two packages must not interleave.
test: setup build images vet lint
	PEAPOD_REQUIRE_ROOT=1 PEAPOD_BUSYBOX_TAR=$(abspath $(BUSYBOX)) \
		$(GO) test -p 1 -count=1 -timeout 25m ./...
	PEAPOD_REQUIRE_ROOT=1 PEAPOD_BUSYBOX_TAR=$(abspath $(BUSYBOX)) GO=$(GO) ./hack/fuzz.sh

# Every fuzz target for FUZZTIME (default 10s) each; `make test` runs it.
fuzz: $(PAUSE)
	GO=$(GO) ./hack/fuzz.sh

unit: $(PAUSE)
	$(GO) test -count=1 -short ./...

# Measures peapod next to podman and the kernel's own paths in one run
# (hack/bench) and rewrites docs/benchmarks.md; podman, iperf3 and perf are
# installed for it. About 10 minutes; it leaves nothing running.
bench: setup build images
	@./hack/setup.sh --bench
	$(GO) run ./hack/bench -peapod $(abspath $(BIN)) -busybox $(abspath $(BUSYBOX)) -out docs/benchmarks.md

run: setup build images
	@mkdir -p $(DATA_DIR)/images
	cp $(BUSYBOX) $(DATA_DIR)/images/busybox.tar
	./$(BIN) server --data-dir $(DATA_DIR) $(SERVER_ARGS)

clean:
	rm -rf bin $(PAUSE)
