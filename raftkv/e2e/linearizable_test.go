package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/raftly/raft/raftkv/client"
)

// TestLinearizable runs clients against three nodes while a nemesis kills,
// restarts and partitions them (half the clients through the single-key
// routes, half through package client, which batches their operations
// on a node into one POST /batch), then heals everything, reads every key,
// waits for the nodes' states to agree, and checks the whole history with
// porcupine: it must be linearizable, which also means that no
// acknowledged write was lost (the final reads would miss it).
//
// Each run lasts RAFTKV_SOAK_TIME (default 12s, 6s with -short), and
// RAFTKV_SOAK_RUNS runs are made (default 1), with seeds RAFTKV_SEED (by
// default from the clock), +1, +2, ... The seed picks the clients' and
// the nemesis's choices; the timing of real processes is not replayed.
//
//	RAFTKV_SOAK_RUNS=20 RAFTKV_SOAK_TIME=1m go test ./e2e -run TestLinearizable -count=1 -timeout 0 -v
func TestLinearizable(t *testing.T) {
	d := 12 * time.Second
	if testing.Short() {
		d = 6 * time.Second
	}
	d = envDuration(t, "RAFTKV_SOAK_TIME", d)
	runs := envInt(t, "RAFTKV_SOAK_RUNS", 1)
	seed := envSeed(t)
	for i := range runs {
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { runLinearizable(t, s, d) })
	}
}

const (
	linClients = 8
	// requestTimeout is the clients' timeout for one request, longer
	// than the nodes' -request-timeout so that they answer first.
	requestTimeout = 4 * time.Second
	// convergeTimeout bounds the final reads and the wait for the nodes'
	// states to agree.
	convergeTimeout = 30 * time.Second
)

func runLinearizable(t *testing.T, seed uint64, d time.Duration) {
	t.Logf("seed %d (replay: RAFTKV_SEED=%d go test ./e2e -run 'TestLinearizable$' -v), %v", seed, seed, d)
	c := startCluster(t, 3, "-test-faults", "-snapshot-every", "200", "-request-timeout", "2s")
	h := newHistory()
	w := &workload{
		client:  c.Client(),
		h:       h,
		keys:    []string{"k0", "k1", "k2", "k3", "k4"},
		timeout: requestTimeout,
		targets: c.Nodes,
		batch:   map[uint64]*client.Client{},
	}
	// One request in flight per node, so that the batched clients'
	// operations on a node wait for it together and share the next.
	tr := &http.Transport{DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, MaxIdleConnsPerHost: 4}
	for _, n := range c.Nodes() {
		bc := client.New(n.ClientAddr, client.WithMaxInFlight(1), client.WithTransport(tr))
		defer bc.Close()
		w.batch[n.ID] = bc
	}
	nm := newNemesis(c, h, seed)
	stop := make(chan struct{})
	waitClients := w.start(stop, linClients, seed)
	nemErr := make(chan error, 1)
	go func() { nemErr <- nm.run(stop) }()

	timer := time.NewTimer(d)
	defer timer.Stop()
	err := error(nil)
	select {
	case <-timer.C:
		close(stop)
		err = <-nemErr
	case err = <-nemErr:
		close(stop)
	}
	waitClients()
	ran := time.Since(h.start)
	if err != nil {
		t.Errorf("nemesis: %v", err)
	}

	// Every node is running, and no message is blocked: the cluster must
	// elect a leader, answer, and converge.
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	for _, n := range c.Nodes() {
		if !n.Running() {
			t.Errorf("node %d is not running at the end", n.ID)
		}
	}
	if _, _, err := c.Leader(ctx); err != nil {
		t.Errorf("after healing: %v", err)
	}
	if _, err := w.converge(ctx, linClients); err != nil {
		t.Errorf("after healing: %v", err)
	}
	for _, p := range h.problemList() {
		t.Errorf("answer against the API: %s", p)
	}
	var batchRequests int64
	for _, bc := range w.batch {
		batchRequests += bc.Requests()
	}
	if ops := w.batchOps.Load(); batchRequests >= ops {
		t.Errorf("the batched clients' %d operations went in %d requests: none shared one", ops, batchRequests)
	}
	start := time.Now()
	checkLinearizable(t, h.operations(), nm.notes(), c.Dir())
	t.Logf("ran %v; %s; batched clients: %d operations in %d requests; %s; checked in %v",
		ran.Round(time.Millisecond), h.summary(), w.batchOps.Load(), batchRequests, nm.summary(),
		time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("seed %d; the nemesis's faults:\n%s", seed, nm.log())
	}
}

// envDuration returns the duration in the environment variable name, or
// def when it is unset.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return d
}

// envInt returns the integer in the environment variable name, or def
// when it is unset.
func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}
