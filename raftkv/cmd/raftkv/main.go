// Command raftkv runs one node of a replicated key-value store: see the
// documentation of package raftkv for the flags, the client API and how
// to run a cluster.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/raftly/raft/raftkv"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "raftkv: %v\n", err)
		os.Exit(2)
	}
	s, err := raftkv.Start(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "raftkv: %v\n", err)
		os.Exit(1)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-signals:
	case <-s.Done():
	}
	failed := s.Err()
	if err := s.Close(); err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		fmt.Fprintf(os.Stderr, "raftkv: %v\n", failed)
		os.Exit(1)
	}
}

func parseFlags(args []string) (raftkv.Config, error) {
	fs := flag.NewFlagSet("raftkv", flag.ContinueOnError)
	var cfg raftkv.Config
	var cluster, logLevel string
	fs.Int64Var(&cfg.ID, "id", 0, "this node's id, a positive integer (required)")
	fs.StringVar(&cluster, "cluster", "", "the first members and their peer addresses: 1=host:port,2=host:port,...")
	fs.StringVar(&cfg.Join, "join", "", "client address (host:port) of a member of a running cluster to join through, instead of -cluster")
	fs.StringVar(&cfg.PeerListen, "peer-listen", "", "address to listen on for peers (default: this node's entry in -cluster)")
	fs.StringVar(&cfg.Listen, "listen", "", "address to serve the client API on (required)")
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (required)")
	fs.Int64Var(&cfg.SnapshotEvery, "snapshot-every", 10_000, "applied entries between snapshots")
	fs.DurationVar(&cfg.Tick, "tick", 10*time.Millisecond, "Raft tick; an election timeout is 10 ticks")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", 5*time.Second, "deadline of each client request")
	fs.BoolVar(&cfg.TestFaults, "test-faults", false, "serve POST /debug/faults to cut peers off (tests only)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.ID <= 0 {
		return cfg, errors.New("-id: a positive node id is required")
	}
	if cfg.Listen == "" {
		return cfg, errors.New("-listen: a client address (host:port) is required")
	}
	if err := checkAddr("-listen", cfg.Listen); err != nil {
		return cfg, err
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("-data: a data directory is required")
	}
	var err error
	if cfg.Cluster, err = parseCluster(cluster); err != nil {
		return cfg, err
	}
	switch {
	case cluster == "" && cfg.Join == "":
		return cfg, errors.New("-cluster or -join is required")
	case cluster != "" && cfg.Join != "":
		return cfg, errors.New("-cluster and -join: give one, not both")
	case cfg.Join != "" && cfg.PeerListen == "":
		return cfg, errors.New("-peer-listen is required with -join")
	case cluster != "" && cfg.Cluster[cfg.ID] == "":
		return cfg, fmt.Errorf("-cluster does not name node %d: a node that is not a first member joins with -join", cfg.ID)
	}
	if cfg.Join != "" {
		if err := checkAddr("-join", cfg.Join); err != nil {
			return cfg, err
		}
	}
	if cfg.PeerListen != "" {
		if err := checkAddr("-peer-listen", cfg.PeerListen); err != nil {
			return cfg, err
		}
	}
	if cfg.SnapshotEvery <= 0 {
		return cfg, fmt.Errorf("-snapshot-every %d: want a positive number of entries", cfg.SnapshotEvery)
	}
	if cfg.Tick <= 0 {
		return cfg, fmt.Errorf("-tick %v: want a positive duration", cfg.Tick)
	}
	if cfg.RequestTimeout <= 0 {
		return cfg, fmt.Errorf("-request-timeout %v: want a positive duration", cfg.RequestTimeout)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, fmt.Errorf("-log-level %q: want debug, info, warn or error", logLevel)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return cfg, nil
}

// parseCluster parses 1=host:port,2=host:port.
func parseCluster(s string) (map[int64]string, error) {
	if s == "" {
		return nil, nil
	}
	cluster := map[int64]string{}
	for _, part := range strings.Split(s, ",") {
		idText, addr, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("-cluster: %q is not id=host:port", part)
		}
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("-cluster: %q: the id must be a positive integer", part)
		}
		if err := checkAddr("-cluster", addr); err != nil {
			return nil, err
		}
		if _, dup := cluster[id]; dup {
			return nil, fmt.Errorf("-cluster: node %d is named twice", id)
		}
		cluster[id] = addr
	}
	return cluster, nil
}

func checkAddr(flagName, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("%s: %q is not host:port", flagName, addr)
	}
	return nil
}
