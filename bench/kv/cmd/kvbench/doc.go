// Command kvbench measures raftkv, the repository's replicated key-value
// server, beside etcd in one run: writes per second and their p50 and p99
// latency at 1, 16 and 64 concurrent clients, and linearizable reads at 64
// clients. It is a benchmark, not a test: it asserts nothing, it prints a
// markdown table and writes it, with the date, the machine and the issue's
// targets marked met or missed, to results.md.
//
// Usage, from bench/kv:
//
//	go run ./cmd/kvbench                  # both systems, 2s warm-up, 10s measured
//	go run ./cmd/kvbench -duration 5s     # shorter
//	go run ./cmd/kvbench -systems etcd    # etcd only (raftkv column left empty)
//	go run ./cmd/kvbench -raftkv-client http  # raftkv on its single-key routes
//
// # What runs
//
// Each system is three server processes on 127.0.0.1, their data in one
// temporary directory (on the disk of -dir, by default the system's
// temporary directory), each with its default durability (fsync on):
//
//   - raftkv: the binary of ../../raftkv/cmd/raftkv, built at the start of
//     the run with the go command on PATH (or -raftkv-bin), started with
//     -id, -cluster, -listen and -data as raftkv's doc.go describes, and
//     driven through its HTTP API: POST /batch through package
//     raftkv/client, or PUT and GET /kv/{key} with -raftkv-client http.
//   - etcd: go.etcd.io/etcd/server/v3/embed, the version in go.mod, in three
//     child processes that are this binary run again with a hidden first
//     argument (etcdServerArg), driven through clientv3 Put and Get (a Get
//     is linearizable by default).
//
// Every (workload, system) pair gets a fresh cluster, and only one cluster
// runs at a time; for each workload raftkv is measured first, then etcd.
//
// # Clients
//
// A client is a goroutine that sends one request at a time to one node,
// placed by the same rule in both systems: client i talks to node
// (leader+i) mod 3, where leader is the node that led when the cluster
// became ready. The single client of the 1-client workload talks to the
// leader in both systems, and 16 or 64 clients are spread evenly over the
// three nodes, so both systems forward the same share of requests from
// followers to the leader. With -target leader every client talks to the
// leader instead.
//
// Each system's clients connect the way that system is meant to be used:
// the raftkv clients on one node share one raftkv/client.Client, which
// sends the operations queued by its callers as one POST /batch, one
// such request in flight at a time (its default), on a keep-alive HTTP/1.1
// connection (a caller alone goes out at once); the etcd clients on one node share one
// clientv3.Client, whose single gRPC connection multiplexes their
// requests. With -raftkv-client http each raftkv client has its own
// keep-alive HTTP/1.1 connection instead and sends PUT and GET /kv/{key},
// one request at a time. A clientv3.Client per etcd client was tried too: it gave etcd
// fewer writes/s and reads/s at 64 clients in each of three paired runs, so
// it is not used. A clientv3 with all three endpoints balances each request over the
// nodes, which would break the placement rule above.
//
// Keys are drawn uniformly from -keys keys ("key-00042"); values are -value
// random bytes (128 by default). Before the read workload every key is
// written once, unmeasured.
//
// # What is measured
//
// Each workload runs for -warmup, then for -duration. An operation counts
// if it completed without error inside the measured window; ops/s is that
// count over -duration, and p50 and p99 are nearest-rank percentiles of
// those operations' latencies (each kept, then sorted). Failed operations
// are counted and shown; a client backs off 10 ms after one.
//
// The load generator runs on the same two cores as the six servers'
// processes, so the figures include its cost, the same for both systems
// except for the client libraries themselves (raftkv/client over net/http
// against clientv3 over gRPC).
//
// # Cleanup
//
// Every child process is killed when kvbench returns, on an error, and on
// SIGINT or SIGTERM (a second signal exits at once after killing them); the
// children also get SIGKILL from the kernel if kvbench dies (Linux
// Pdeathsig). The temporary directory is removed at the end unless -keep.
package main
