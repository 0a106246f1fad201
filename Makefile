# Nexus — control plane: service registry, configuration store, API gateway.
GO        ?= go
BIN       := bin
NEXUS     := $(BIN)/nexus
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: all build dev cluster test test-short vet fmt bench-raft bench-go fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(NEXUS) ./cmd/nexus
	$(GO) build -o $(BIN)/nexus-bench ./cmd/nexus-bench

## dev: one node, embedded defaults, data in a temp dir, API on 127.0.0.1:8500.
dev: build
	$(NEXUS) agent --dev --log-format text

## cluster: three nodes on 127.0.0.11-13 in the foreground; Ctrl-C stops all three.
cluster: build
	deploy/local-cluster.sh $(NEXUS)

## test: the whole suite, race detector on (what CI runs).
test:
	$(GO) test -race -count=1 -timeout 25m ./...

test-short:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt needed" && exit 1)

fmt:
	gofmt -w .

## bench-raft: 3-node cluster on loopback: writes at 1/16/64 clients, reads, failover.
bench-raft: build
	$(BIN)/nexus-bench raft --nexus $(NEXUS) --duration 10s --clients 1,16,64 --failover-rounds 5

## bench-go: micro-benchmarks (codec, store).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./fsm/... ./registry/...

## fuzz: longer fuzzing of the command decoder.
fuzz:
	$(GO) test ./fsm/command -run '^$$' -fuzz FuzzDecode -fuzztime 5m

clean:
	rm -rf $(BIN)
