# Nexus — control plane: service registry, configuration store, API gateway.
GO        ?= go
BIN       := bin
NEXUS     := $(BIN)/nexus
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: all build dev cluster test test-short vet fmt bench-raft bench-go fuzz fuzz-ci clean bench-scale

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

## bench-raft: 3-node cluster on loopback: writes at 1/16/64 clients, reads, failover;
## an interleaved A/B against BASE (default the first release, built from git in
## the same run), median of BENCH_ROUNDS rounds with the nodes' CPU per op.
BASE         ?= 3cd8fea
BENCH_ROUNDS ?= 3
bench-raft: build
	$(BIN)/nexus-bench ab-raft --nexus $(NEXUS) --base $(BASE) --rounds $(BENCH_ROUNDS) \
		--duration 10s --clients 1,16,64 --failover-rounds 5

## bench-scale: 3-node cluster on loopback at catalog scale (issue 21):
## 100,000 instances, 1,000,000 config keys, 10,000 routes, 10,000 watchers.
## Long (tens of minutes) and heavy: run it on a quiet machine. Scale it down
## with SCALE_FLAGS, e.g. SCALE_FLAGS="--instances 10000 --config-keys 50000".
SCALE_FLAGS ?=
bench-scale: build
	$(BIN)/nexus-bench scale --nexus $(NEXUS) $(SCALE_FLAGS)

## bench-go: micro-benchmarks (codec, store).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./fsm/... ./registry/...

## fuzz: every fuzz target in turn, FUZZ_TIME each (hostile input: the admin
## API's write decoders, command decoding, route matching, JWT parsing, DNS
## queries).
## fuzz-ci: the same, a few seconds each (what CI runs after make test).
## A crash stops the loop; its input is saved under the package's testdata/fuzz.
FUZZ_TARGETS := ./api:FuzzRegister ./api:FuzzConfigPost ./api:FuzzConfigPut \
	./api:FuzzRoutePost ./api:FuzzRoutePut ./api:FuzzHeartbeat ./api:FuzzAuditSettings \
	./fsm/command:FuzzDecode ./gateway/router:FuzzMatch \
	./gateway/plugin/jwtauth:FuzzVerify ./gateway/plugin/jwtauth:FuzzParse \
	./api:FuzzACLWrites ./acl:FuzzVerifyJWT ./acl:FuzzVerifyJWTClaims \
	./dns:FuzzParseName ./dns:FuzzQuery
FUZZ_TIME    ?= 5m
# An execution count, not a duration: a short -fuzztime duration can end with a
# spurious "context deadline exceeded" failure while a worker is mid-input.
FUZZ_CI_TIME ?= 4000x
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== fuzz $$name ($$pkg) for $(FUZZ_TIME)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZ_TIME); \
	done

fuzz-ci:
	$(MAKE) fuzz FUZZ_TIME=$(FUZZ_CI_TIME)

clean:
	rm -rf $(BIN)

## Jepsen-style fault injection (needs root, iproute2, iptables; the audit
## workload needs PostgreSQL 15 too; docs/jepsen.md).
JEPSEN_TIME      ?= 5m
JEPSEN_RUNS      ?= 10
JEPSEN_NEMESES   ?= kill,pause,partition,net-slow,membership,all
JEPSEN_WORKLOADS ?= register,set,audit,lock
JEPSEN_FLAGS     ?=
JEPSEN_OUT       ?= jepsen-out
.PHONY: jepsen jepsen-short

## jepsen: campaign of JEPSEN_RUNS runs of JEPSEN_TIME per nemesis in JEPSEN_NEMESES
## ("all" = combined); results in $(JEPSEN_OUT)/campaign-*/campaign.md.
jepsen: build
	$(GO) build -o $(BIN)/nexus-jepsen ./cmd/nexus-jepsen
	$(BIN)/nexus-jepsen campaign --nexus $(NEXUS) --time $(JEPSEN_TIME) --runs $(JEPSEN_RUNS) \
		--workload $(JEPSEN_WORKLOADS) --nemeses $(JEPSEN_NEMESES) --out $(JEPSEN_OUT)/campaign-$$(date +%Y%m%d-%H%M%S) $(JEPSEN_FLAGS)

## jepsen-short: one combined run, every nemesis, every workload (register, set,
## audit, lock), under 3 minutes; exits non-zero on any anomaly.
jepsen-short: build
	$(GO) build -o $(BIN)/nexus-jepsen ./cmd/nexus-jepsen
	$(BIN)/nexus-jepsen run --nexus $(NEXUS) --workload $(JEPSEN_WORKLOADS) --nemesis all --time 115s --fault-for 5s --quiet-for 3s \
		--heal-timeout 40s --recovery-timeout 30s --out $(JEPSEN_OUT)/short-$$(date +%Y%m%d-%H%M%S) $(JEPSEN_FLAGS)

## bench-gateway: upstream direct vs nginx vs the Nexus gateway (plain, and with
## rate limit + JWT + metrics) with wrk, interleaved rounds; then the gateway's
## Go micro-benchmarks (hot path must be 0 allocs/op). Installs wrk and nginx
## from Debian's packages if missing. docs/gateway.md explains the figures.
.PHONY: bench-gateway
bench-gateway: build
	@command -v wrk >/dev/null 2>&1 && (command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx) || \
		(apt-get update && apt-get install -y wrk nginx)
	$(BIN)/nexus-bench gateway --nexus $(NEXUS) --duration 10s --rounds 5
	$(GO) test -run '^$$' -bench 'HotPath|Proxy|Match|Allow' -benchmem ./gateway/ ./gateway/router/ ./gateway/ratelimit/

## bench-security: the cost of security, interleaved rounds, medians: config
## writes on a plain 3-node cluster vs one with admin HTTPS (mTLS), Raft mTLS,
## gossip encryption and ACLs (a token on every request), then gateway HTTP vs
## HTTPS with wrk. Installs wrk from Debian's packages if missing.
.PHONY: bench-security
bench-security: build
	@command -v wrk >/dev/null 2>&1 || (apt-get update && apt-get install -y wrk)
	$(BIN)/nexus-bench security --nexus $(NEXUS) --duration 10s --rounds 5 --gateway-duration 10s
