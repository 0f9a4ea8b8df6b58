package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// A row is one workload's results, nil for a system that was not run.
type row struct {
	w      workload
	raftkv *result
	etcd   *result
}

// A target is one of the goals, checked against the rows.
type target struct {
	text  string
	check func(rows []row) (ratio float64, met, known bool)
}

// The targets: at 64 clients at least twice etcd's writes/s and
// reads/s; at 1 client a p50 write latency at most 0.6 of etcd's.
var targets = []target{
	{"writes/s at 64 clients ≥ 2× etcd's", rateTarget(workloads[2], 2)},
	{"linearizable reads/s at 64 clients ≥ 2× etcd's", rateTarget(workloads[3], 2)},
	{"write p50 at 1 client ≤ 0.6× etcd's", p50Target(workloads[0], 0.6)},
}

func rateTarget(w workload, min float64) func([]row) (float64, bool, bool) {
	return func(rows []row) (float64, bool, bool) {
		r := findRow(rows, w)
		if r == nil || r.raftkv == nil || r.etcd == nil || r.etcd.rate() == 0 {
			return 0, false, false
		}
		ratio := r.raftkv.rate() / r.etcd.rate()
		return ratio, ratio >= min, true
	}
}

func p50Target(w workload, max float64) func([]row) (float64, bool, bool) {
	return func(rows []row) (float64, bool, bool) {
		r := findRow(rows, w)
		if r == nil || r.raftkv == nil || r.etcd == nil || len(r.raftkv.lat) == 0 || len(r.etcd.lat) == 0 {
			return 0, false, false
		}
		ratio := float64(r.raftkv.pct(0.5)) / float64(r.etcd.pct(0.5))
		return ratio, ratio <= max, true
	}
}

func findRow(rows []row, w workload) *row {
	for i := range rows {
		if rows[i].w == w {
			return &rows[i]
		}
	}
	return nil
}

// writeTable writes the results table in markdown.
func writeTable(out io.Writer, rows []row) {
	fmt.Fprintln(out, "| workload | raftkv ops/s | etcd ops/s | ratio | raftkv p50 | etcd p50 | raftkv p99 | etcd p99 | p50 ratio | errors (raftkv/etcd) |")
	fmt.Fprintln(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |\n",
			r.w.name,
			fmtRate(r.raftkv), fmtRate(r.etcd), rateRatio(r),
			fmtPct(r.raftkv, 0.5), fmtPct(r.etcd, 0.5),
			fmtPct(r.raftkv, 0.99), fmtPct(r.etcd, 0.99),
			p50Ratio(r),
			fmtErrs(r.raftkv), fmtErrs(r.etcd))
	}
}

// writeTargets writes one line per target with its ratio and met/missed.
func writeTargets(out io.Writer, rows []row) {
	for _, t := range targets {
		ratio, met, known := t.check(rows)
		switch {
		case !known:
			fmt.Fprintf(out, "- %s: not measured\n", t.text)
		case met:
			fmt.Fprintf(out, "- %s: %.2f× — **met**\n", t.text, ratio)
		default:
			fmt.Fprintf(out, "- %s: %.2f× — **missed**\n", t.text, ratio)
		}
	}
}

const dash = "–"

func fmtRate(r *result) string {
	if r == nil {
		return dash
	}
	return fmt.Sprintf("%.0f", r.rate())
}

func fmtPct(r *result, p float64) string {
	if r == nil || len(r.lat) == 0 {
		return dash
	}
	return fmtDur(r.pct(p))
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtErrs(r *result) string {
	if r == nil {
		return dash
	}
	return fmt.Sprint(r.errs)
}

func rateRatio(r row) string {
	if r.raftkv == nil || r.etcd == nil || r.etcd.rate() == 0 {
		return dash
	}
	return fmt.Sprintf("%.2f×", r.raftkv.rate()/r.etcd.rate())
}

func p50Ratio(r row) string {
	if r.raftkv == nil || r.etcd == nil || len(r.raftkv.lat) == 0 || len(r.etcd.lat) == 0 {
		return dash
	}
	return fmt.Sprintf("%.2f×", float64(r.raftkv.pct(0.5))/float64(r.etcd.pct(0.5)))
}

// environment describes the machine and the versions measured.
type environment struct {
	date      time.Time
	cpus      int
	cpuModel  string
	goVersion string
	etcd      string // version of go.etcd.io/etcd/server/v3 in this build
	raftkvRev string // the repository's commit, "+dirty" when raftkv/ has changes
	loadStart string // /proc/loadavg's 1-minute figure before the run, "" if unknown
}

func currentEnvironment(repoRoot string) environment {
	env := environment{
		date:      time.Now().UTC(),
		cpus:      runtime.NumCPU(),
		cpuModel:  cpuModel(),
		goVersion: runtime.Version(),
		etcd:      "unknown",
		raftkvRev: "unknown",
		loadStart: loadAverage(),
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "go.etcd.io/etcd/server/v3" {
				env.etcd = m.Version
			}
		}
	}
	if repoRoot != "" {
		if out, err := exec.Command("git", "-C", repoRoot, "rev-parse", "--short", "HEAD").Output(); err == nil {
			env.raftkvRev = strings.TrimSpace(string(out))
			st, err := exec.Command("git", "-C", repoRoot, "status", "--porcelain", "--", "raftkv").Output()
			if err == nil && len(st) > 0 {
				env.raftkvRev += "+dirty"
			}
		}
	}
	return env
}

// loadAverage returns the 1-minute load average of /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// writeReport writes results.md: what was run, on what, the table and the
// targets.
func writeReport(out io.Writer, env environment, cfg config, rows []row) {
	fmt.Fprintln(out, "# raftkv beside etcd: replicated writes and linearizable reads")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Measured %s by `go run ./cmd/kvbench%s` in bench/kv.\n\n", env.date.Format("2006-01-02 15:04 MST"), cfg.argsString())
	machine := fmt.Sprintf("%d CPUs", env.cpus)
	if env.cpuModel != "" {
		machine += " (" + env.cpuModel + ")"
	}
	fmt.Fprintf(out, "- Machine: %s, %s/%s, %s.", machine, runtime.GOOS, runtime.GOARCH, env.goVersion)
	if env.loadStart != "" {
		fmt.Fprintf(out, " 1-minute load average before the run: %s (anything else running shares the two cores with the servers).", env.loadStart)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "- raftkv: built from the repository at %s; etcd: go.etcd.io/etcd/server/v3 %s, embedded.\n", env.raftkvRev, env.etcd)
	fmt.Fprintf(out, "- Three server processes per system on 127.0.0.1, data in one temporary directory (under %s), each system's default durability (fsync on). A fresh cluster for every workload and system, one cluster at a time, raftkv first.\n", cfg.dirOrDefault())
	fmt.Fprintf(out, "- Clients: each has one operation at a time outstanding. %s (-raftkv-client %s); etcd: the clients on one node share one clientv3 (one gRPC connection, multiplexed). %s\n", cfg.raftkvClients(), cfg.raftkvCli, cfg.placement())
	fmt.Fprintf(out, "- Values of %d bytes, keys drawn uniformly from %d; every key written before the read workload. Reads are linearizable: raftkv's get without stale (read index), etcd's default Get.\n", cfg.valueSize, cfg.keys)
	fmt.Fprintf(out, "- %v warm-up, then %v measured per workload. ops/s counts operations completed without error in the measured window; p50 and p99 are nearest-rank percentiles of their latencies. Ratios are raftkv over etcd.\n\n", cfg.warmup, cfg.duration)
	writeTable(out, rows)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Targets:")
	fmt.Fprintln(out)
	writeTargets(out, rows)
}
