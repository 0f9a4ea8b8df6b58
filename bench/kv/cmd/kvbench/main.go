package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/raftly/raft/raftkv/e2e"
)

// benchModule is the module path of bench/kv, by which main finds its own
// directory (for results.md and ../../raftkv).
const benchModule = "github.com/raftly/raft/bench/kv"

type config struct {
	duration  time.Duration
	warmup    time.Duration
	keys      int
	valueSize int
	systems   []string
	workloads []string
	target    string
	raftkvBin string
	raftkvCli string // raftkvBatch or raftkvHTTP
	out       string
	dir       string
	keep      bool
	args      []string // the flags as given, for the report
}

func (c config) argsString() string {
	if len(c.args) == 0 {
		return ""
	}
	return " " + strings.Join(c.args, " ")
}

func (c config) dirOrDefault() string {
	if c.dir != "" {
		return c.dir
	}
	return os.TempDir()
}

func (c config) placement() string {
	if c.target == targetLeader {
		return "Every client talks to the leader."
	}
	return "Client i talks to node (leader+i) mod 3: the 1-client workload talks to the leader, 16 and 64 clients are spread evenly over the three nodes (the same rule for both systems)."
}

// raftkvClients describes how raftkv's clients talk to their node.
func (c config) raftkvClients() string {
	if c.raftkvCli == raftkvHTTP {
		return "raftkv: each has its own keep-alive HTTP/1.1 connection and sends PUT and GET /kv/{key}"
	}
	return "raftkv: the clients on one node share one raftkv/client.Client, which sends what they have queued as one POST /batch, one in flight at a time, on a keep-alive HTTP/1.1 connection"
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == etcdServerArg {
		if err := etcdServerMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "etcd server:", err)
			os.Exit(1)
		}
		return
	}
	err := run()
	killAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvbench:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	var systems, wls string
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time per workload and system")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured time before each measurement")
	flag.IntVar(&cfg.keys, "keys", 10000, "size of the keyspace")
	flag.IntVar(&cfg.valueSize, "value", 128, "value size in bytes")
	flag.StringVar(&systems, "systems", "raftkv,etcd", "systems to measure, comma-separated (raftkv, etcd)")
	flag.StringVar(&wls, "workloads", "w1,w16,w64,r64", "workloads to run, comma-separated: w1, w16, w64 (writes at 1, 16, 64 clients), r64 (reads at 64)")
	flag.StringVar(&cfg.target, "target", targetSpread, "client placement: spread (client i on node (leader+i) mod 3) or leader")
	flag.StringVar(&cfg.raftkvCli, "raftkv-client", raftkvBatch, "how raftkv's clients talk to their node: batch (package raftkv/client, POST /batch) or http (PUT and GET /kv/{key})")
	flag.StringVar(&cfg.raftkvBin, "raftkv-bin", "", "raftkv binary to run (default: build ../../raftkv/cmd/raftkv)")
	flag.StringVar(&cfg.out, "out", "", `report file (default: results.md in bench/kv; "-" for none)`)
	flag.StringVar(&cfg.dir, "dir", "", "directory in which to make the temporary data directory (default: the system's)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (data and server logs)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	flag.Visit(func(f *flag.Flag) { cfg.args = append(cfg.args, "-"+f.Name+" "+f.Value.String()) })
	cfg.systems = strings.Split(systems, ",")
	for _, s := range cfg.systems {
		if s != "raftkv" && s != "etcd" {
			return fmt.Errorf("-systems: unknown system %q", s)
		}
	}
	cfg.workloads = strings.Split(wls, ",")
	for _, name := range cfg.workloads {
		if !slices.ContainsFunc(workloads, func(w workload) bool { return w.short == name }) {
			return fmt.Errorf("-workloads: unknown workload %q", name)
		}
	}
	if cfg.target != targetSpread && cfg.target != targetLeader {
		return fmt.Errorf("-target: %q is neither %s nor %s", cfg.target, targetSpread, targetLeader)
	}
	if cfg.raftkvCli != raftkvBatch && cfg.raftkvCli != raftkvHTTP {
		return fmt.Errorf("-raftkv-client: %q is neither %s nor %s", cfg.raftkvCli, raftkvBatch, raftkvHTTP)
	}
	if cfg.keys < 1 || cfg.valueSize < 1 || cfg.duration <= 0 || cfg.warmup < 0 {
		return errors.New("-keys and -value must be positive, -duration positive, -warmup not negative")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "kvbench: %v: stopping (again to exit at once)\n", s)
		cancel()
		<-sigs
		killAll()
		os.Exit(1)
	}()

	modDir := findModuleDir()
	repoRoot := ""
	if modDir != "" {
		repoRoot = filepath.Join(modDir, "..", "..")
	}
	if cfg.out == "" {
		if modDir == "" {
			return errors.New("cannot find bench/kv (run from inside it, or give -out)")
		}
		cfg.out = filepath.Join(modDir, "results.md")
	}

	tmp, err := os.MkdirTemp(cfg.dir, "kvbench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintln(os.Stderr, "kvbench: data and logs in", tmp)
	} else {
		defer func() {
			killAll() // nothing may write in tmp while it goes
			os.RemoveAll(tmp)
		}()
	}

	var sys []system
	if slices.Contains(cfg.systems, "raftkv") {
		bin := cfg.raftkvBin
		if bin == "" {
			if repoRoot == "" {
				return errors.New("cannot find the repository's raftkv (run from bench/kv, or give -raftkv-bin)")
			}
			bin = filepath.Join(tmp, "raftkv")
			fmt.Fprintln(os.Stderr, "kvbench: building raftkv")
			if err := e2e.Build(ctx, filepath.Join(repoRoot, "raftkv"), bin, false); err != nil {
				return err
			}
		}
		sys = append(sys, system{"raftkv", raftkvStarter(bin, cfg.raftkvCli)})
	}
	if slices.Contains(cfg.systems, "etcd") {
		sys = append(sys, system{"etcd", startEtcd})
	}

	keys := makeKeys(cfg.keys)
	value := make([]byte, cfg.valueSize)
	rand.Read(value)

	env := currentEnvironment(repoRoot)
	var rows []row
	for _, w := range workloads {
		if !slices.Contains(cfg.workloads, w.short) {
			continue
		}
		r := row{w: w}
		for _, s := range sys {
			res, err := measure(ctx, s, w, cfg, tmp, keys, value)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", s.name, w.name, err)
			}
			fmt.Fprintf(os.Stderr, "kvbench: %-6s %-31s %8.0f ops/s  p50 %s  p99 %s  errors %d\n",
				s.name, w.name, res.rate(), fmtDur(res.pct(0.5)), fmtDur(res.pct(0.99)), res.errs)
			if res.firstErr != nil {
				fmt.Fprintf(os.Stderr, "kvbench: %s: first error: %v\n", s.name, res.firstErr)
			}
			switch s.name {
			case "raftkv":
				r.raftkv = res
			case "etcd":
				r.etcd = res
			}
		}
		rows = append(rows, r)
	}

	var buf bytes.Buffer
	writeReport(&buf, env, cfg, rows)
	os.Stdout.Write(buf.Bytes())
	if cfg.out != "-" {
		if err := os.WriteFile(cfg.out, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "kvbench: wrote", cfg.out)
	}
	return nil
}

// measure runs workload w on a fresh cluster of s and stops it.
func measure(ctx context.Context, s system, w workload, cfg config, tmp string, keys []string, value []byte) (*result, error) {
	dir, err := os.MkdirTemp(tmp, s.name+"-")
	if err != nil {
		return nil, err
	}
	if !cfg.keep {
		defer os.RemoveAll(dir)
	}
	cl, err := s.start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	cs, err := openClients(cl, w.clients, cfg.target)
	if err != nil {
		return nil, err
	}
	defer closeClients(cs)
	if w.read {
		if err := prefill(ctx, cs, keys, value); err != nil {
			return nil, err
		}
	}
	return runLoad(ctx, cs, w.read, keys, value, cfg.warmup, cfg.duration)
}

// findModuleDir returns the directory of bench/kv's go.mod: the first
// directory from the working directory upwards whose go.mod declares
// benchModule, else the one beside this source file if it was built from
// source, else "".
func findModuleDir() string {
	isIt := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && strings.Contains(string(b), "module "+benchModule+"\n")
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isIt(dir) {
				return dir
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Join(filepath.Dir(file), "..", ".."); isIt(dir) {
			return filepath.Clean(dir)
		}
	}
	return ""
}
