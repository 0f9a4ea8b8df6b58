package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests run real raftkv processes. Environment:
//
//	RAFTKV_BIN=path      test this binary instead of building cmd/raftkv
//	RAFTKV_E2E_RACE=1    build cmd/raftkv with the race detector
//	RAFTKV_SEED=n        replay seed n (TestLinearizable, TestMembership)
//	RAFTKV_SOAK_TIME=1m  how long each TestLinearizable run lasts
//	RAFTKV_SOAK_RUNS=20  how many runs TestLinearizable makes, seeds n, n+1, ...
//
// A failing test keeps its cluster's directory (data, logs, and
// history.html for a history that is not linearizable) and prints its
// path and the tail of every node's log.

// binDir holds the binary the tests build.
var binDir string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "raftkv-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

var (
	buildOnce sync.Once
	bin       string // the raftkv binary under test, once built
	buildErr  error
)

// binary returns the raftkv binary under test, building it the first
// time (RAFTKV_BIN, if set, is used as it is).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv("RAFTKV_BIN"); b != "" {
			bin = b
			return
		}
		mod, err := FindModule()
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		out := filepath.Join(binDir, "raftkv")
		if buildErr = Build(ctx, mod, out, os.Getenv("RAFTKV_E2E_RACE") != ""); buildErr == nil {
			bin = out
			fmt.Fprintf(os.Stderr, "e2e: built cmd/raftkv in %v\n", time.Since(start).Round(100*time.Millisecond))
		}
	})
	if buildErr != nil {
		t.Fatalf("building raftkv: %v", buildErr)
	}
	return bin
}

// startTimeout bounds the start of a cluster, and stopTimeout the wait
// for a node to exit after SIGTERM.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 5 * time.Second
)

// startCluster starts size nodes with flags, in a directory of their own.
// When the test ends it stops them, fails the test for any node that
// exited without being asked or did not stop within stopTimeout of
// SIGTERM, and then removes the directory, or keeps it and prints its
// path and the tail of each node's log if the test failed.
func startCluster(t *testing.T, size int, flags ...string) *Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "raftkv-e2e-"+safeName.ReplaceAllString(t.Name(), "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Bin: binary(t), Dir: dir, Size: size, Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCluster(t, c) })
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("starting %d nodes: %v", size, err)
	}
	return c
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func closeCluster(t *testing.T, c *Cluster) {
	for _, u := range c.Unexpected() {
		t.Errorf("unexpected exit: %s", u)
	}
	for _, n := range c.Nodes() {
		if err := n.Stop(stopTimeout); err != nil {
			// A node must stop on SIGTERM; its exit status is not promised.
			if errors.Is(err, ErrStopTimeout) {
				t.Error(err)
			} else {
				t.Logf("node %d: %v", n.ID, err)
			}
		}
	}
	c.Client().CloseIdle()
	for _, n := range c.Nodes() {
		for _, line := range alarms(t, n) {
			t.Errorf("node %d's log %s: %s", n.ID, n.LogPath, line)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", c.Logs(40))
		t.Logf("the cluster's data and logs are kept in %s", c.Dir())
		return
	}
	os.RemoveAll(c.Dir())
}

// envSeed returns RAFTKV_SEED, or a seed from the clock.
func envSeed(t *testing.T) uint64 {
	if s := os.Getenv("RAFTKV_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RAFTKV_SEED=%q: %v", s, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano()) % 1_000_000_000
}

// alarmMarks start the lines of a log that fail a test: a data race
// (in a binary built with RAFTKV_E2E_RACE=1), a panic, a fatal error of
// the runtime.
var alarmMarks = []string{"WARNING: DATA RACE", "panic:", "fatal error:"}

// alarms returns the lines of n's log that start with an alarm mark.
func alarms(t *testing.T, n *Node) []string {
	f, err := os.Open(n.LogPath)
	if err != nil {
		t.Errorf("node %d: %v", n.ID, err)
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := s.Text()
		for _, m := range alarmMarks {
			if strings.HasPrefix(line, m) {
				out = append(out, line)
			}
		}
	}
	return out
}
