# Everything needed on a fresh machine is installed by these targets
# themselves (Go modules through the module proxy; protoc from Debian's
# protobuf-compiler and protoc-gen-gogo with go install, when missing).
#
#   make test         vet and test every module, and again under -race,
#                     the raftpb staleness check, a short fuzz of each target
#   make demo         three raftkv processes: writes, SIGKILL of the leader,
#                     a new leader, every write still there, the node back
#   make demo-inprocess  the 3-node demo of the library alone, in one process
#   make proto        regenerate raftpb/raft.pb.go from raftpb/raft.proto
#   make proto-check  fail if the committed raftpb/raft.pb.go is stale
#   make fuzz         fuzz each fuzz target for FUZZTIME
#   make soak         sweep rafttest seeds for SOAK_TIME, then check the client
#                     histories of rafttest/lincheck's seeds for linearizability
#                     for SOAK_TIME more (each shard SHARD, from seed FIRST);
#                     then KV_SOAK_RUNS runs of KV_SOAK_TIME of raftkv processes
#                     under kills and partitions, checked with porcupine
#   make bench        measure the library beside etcd raft v3.6 and v3.7 and
#                     hashicorp raft; writes bench/results.md and bench/results.png
#   make bench-memory heap in use at 100k and 1M proposals, compacting every 10k
#   make bench-store  raftstore's durable Readys/s (batches of 1, 16, 256
#                     entries; 1 to 64 groups sharing syncs) beside the disk's
#                     raw sync rate and bbolt; prints tables with the ratios
#   make bench-kv     raftkv (3 processes) beside 3 embedded etcd v3.6 servers:
#                     writes at 1, 16, 64 clients, linearizable reads at 64;
#                     writes bench/kv/results.md

GO ?= go
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 30s
# How long `make test` fuzzes each fuzz target (0 skips it).
TEST_FUZZTIME ?= 20s

# Every Go module in the repository: the library at the root, and any
# module added beside it later (bench/, raftstore/, raftkv/, ...).
MODULES := $(shell find . -name go.mod -not -path './.git/*' -not -path '*/testdata/*' -exec dirname {} \; | sort)

.PHONY: all test vet unit race proto proto-check fuzz fuzz-short demo

all: test

test: vet unit race proto-check fuzz-short

vet:
	@set -e; for m in $(MODULES); do \
		echo "== go vet ($$m)"; \
		(cd $$m && $(GO) vet ./...); \
	done

unit:
	@set -e; for m in $(MODULES); do \
		echo "== go test ($$m)"; \
		(cd $$m && $(GO) test ./...); \
	done

# Every module is fast enough to run whole under the race detector;
# bench/kv has no tests (it is a command), and building etcd for the race
# detector would only cost time. raftkv's end-to-end tests then run
# servers built with the race detector too (RAFTKV_E2E_RACE), whose logs
# they check for races.
RACE_MODULES := $(filter-out ./bench/kv,$(MODULES))
race:
	@set -e; for m in $(RACE_MODULES); do \
		echo "== go test -race ($$m)"; \
		(cd $$m && RAFTKV_E2E_RACE=1 $(GO) test -race ./...); \
	done

proto:
	raftpb/gen.sh

proto-check:
	@echo "== raftpb staleness check"
	@raftpb/gen.sh --check

# fuzz-targets runs each Fuzz* target of the library for $(1); a package
# with no fuzz target is skipped.
define fuzz-targets
	@set -e; found=0; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			found=1; \
			echo "== fuzz $$f ($$pkg) for $(1)"; \
			$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(1) $$pkg; \
		done; \
	done; \
	if [ $$found = 0 ]; then echo "== fuzz: no fuzz target yet"; fi
endef

fuzz:
	$(call fuzz-targets,$(FUZZTIME))

fuzz-short:
ifneq ($(TEST_FUZZTIME),0)
	$(call fuzz-targets,$(TEST_FUZZTIME))
endif

demo:
	cd raftkv && $(GO) run ./cmd/raftkv-demo

.PHONY: demo-inprocess
demo-inprocess:
	$(GO) run ./cmd/raftdemo

# How long each of `make soak`'s two sweeps runs (the rafttest checkers,
# then linearizability, so twice SOAK_TIME in all; the second covers about
# 130 seeds a second on 2 cores: 20,000 seeds in 3 minutes), which shard
# i/n of the seeds they run (0 <= i < n), and the first seed of the sweeps
# (each report gives the -first that resumes it).
SOAK_TIME ?= 10m
# Runs of raftkv's linearizability test in `make soak`, and the length of each.
KV_SOAK_RUNS ?= 20
KV_SOAK_TIME ?= 1m
SHARD ?= 0/1
FIRST ?= 0

.PHONY: soak
soak:
	$(GO) test ./rafttest -run TestSoak -soak $(SOAK_TIME) -shard $(SHARD) -first $(FIRST) -count=1 -timeout 0 -v
	cd rafttest/lincheck && $(GO) test . -run TestSoak -soak $(SOAK_TIME) -shard $(SHARD) -first $(FIRST) -count=1 -timeout 0 -v
	cd raftkv && RAFTKV_SOAK_RUNS=$(KV_SOAK_RUNS) RAFTKV_SOAK_TIME=$(KV_SOAK_TIME) $(GO) test ./e2e -run 'TestLinearizable$$' -count=1 -timeout 0 -v

# Rounds of `make bench` and the measured time of each run (after a warm-up
# of BENCH_WARMUP); every run is a fresh process.
BENCH_ROUNDS ?= 3
BENCH_TIME ?= 5s
BENCH_WARMUP ?= 1s

.PHONY: bench
bench:
	cd bench && $(GO) run ./cmd/benchrun -rounds $(BENCH_ROUNDS) -duration $(BENCH_TIME) -warmup $(BENCH_WARMUP)

.PHONY: bench-memory
bench-memory:
	cd bench && $(GO) test -run '^$$' -bench MemoryWithCompaction -benchtime 1x ./adapters/ours

# How long `make bench-store` measures each case.
BENCH_STORE_TIME ?= 2s

.PHONY: bench-store
bench-store:
	cd raftstore && $(GO) test -run '^$$' -bench . -benchtime $(BENCH_STORE_TIME) -timeout 0 .

# How long `make bench-kv` measures each workload.
BENCH_KV_TIME ?= 10s

.PHONY: bench-kv
bench-kv:
	cd bench/kv && $(GO) run ./cmd/kvbench -duration $(BENCH_KV_TIME)
