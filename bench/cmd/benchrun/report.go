package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/raftly/raft/bench/workload"
)

// summary is the median, min and max of one metric over the rounds.
type summary struct{ median, min, max float64 }

func summarize(values []float64) summary {
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	median := s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return summary{median: median, min: s[0], max: s[n-1]}
}

// metric is one measured quantity of a Result.
type metric struct {
	name        string
	value       func(workload.Result) float64
	higherWins  bool
	format      func(float64) string
	codecMetric bool // reported for the codec workload, not the others
	runMetric   bool // reported for the cluster workloads
}

var metrics = []metric{
	{name: "ops/s", value: func(r workload.Result) float64 { return r.OpsPerSec }, higherWins: true, format: thousands, runMetric: true},
	{name: "p50 µs", value: func(r workload.Result) float64 { return r.P50Micros }, format: decimal(0), runMetric: true},
	{name: "p99 µs", value: func(r workload.Result) float64 { return r.P99Micros }, format: decimal(0), runMetric: true},
	{name: "ns/op", value: func(r workload.Result) float64 { return r.NsPerOp }, format: decimal(0), codecMetric: true},
	{name: "allocs/op", value: func(r workload.Result) float64 { return r.AllocsPerOp }, format: decimal(2), runMetric: true, codecMetric: true},
	{name: "B/op", value: func(r workload.Result) float64 { return r.BytesPerOp }, format: decimal(0), runMetric: true, codecMetric: true},
}

func (m metric) appliesTo(workloadName string) bool {
	if workloadName == "codec" {
		return m.codecMetric
	}
	return m.runMetric
}

type key struct{ library, workload string }

type report struct {
	results   map[key][]workload.Result
	libraries []string
	workloads []string
	machine   string
	took      time.Duration
}

func newReport(results []workload.Result, machine string, took time.Duration) *report {
	r := &report{results: make(map[key][]workload.Result), machine: machine, took: took}
	for _, res := range results {
		k := key{res.Library, res.Workload}
		r.results[k] = append(r.results[k], res)
		if !slices.Contains(r.libraries, res.Library) {
			r.libraries = append(r.libraries, res.Library)
		}
		if !slices.Contains(r.workloads, res.Workload) {
			r.workloads = append(r.workloads, res.Workload)
		}
	}
	return r
}

// stat summarizes metric m of library lib on workload w; ok is false when
// that pair was not run.
func (r *report) stat(lib, w string, m metric) (summary, bool) {
	rs := r.results[key{lib, w}]
	if len(rs) == 0 {
		return summary{}, false
	}
	values := make([]float64, len(rs))
	for i, res := range rs {
		values[i] = m.value(res)
	}
	return summarize(values), true
}

// ratio is ours' median over other's median for metric m on workload w.
func (r *report) ratio(w, other string, m metric) (float64, bool) {
	a, ok1 := r.stat("ours", w, m)
	b, ok2 := r.stat(other, w, m)
	if !ok1 || !ok2 || b.median == 0 {
		return 0, false
	}
	return a.median / b.median, true
}

func metricNamed(name string) metric {
	for _, m := range metrics {
		if m.name == name {
			return m
		}
	}
	panic("no metric " + name)
}

// target is one goal of issue 3/7, a bound on a median ratio.
type target struct {
	workload, metric, other string
	atLeast                 bool
	bound                   float64
}

var targets = []target{
	{"cluster3", "ops/s", "etcd-v3.6", true, 2.0},
	{"cluster3", "ops/s", "hashicorp", true, 1.3},
	{"cluster3", "p99 µs", "etcd-v3.6", false, 1.0},
	{"single", "ops/s", "etcd-v3.6", true, 1.5},
	{"cluster3-seq", "ops/s", "etcd-v3.6", true, 1.3},
	{"single", "allocs/op", "etcd-v3.6", false, 0.5},
	{"cluster3", "allocs/op", "etcd-v3.6", false, 0.5},
	{"cluster3-seq", "allocs/op", "etcd-v3.6", false, 0.5},
}

func (r *report) markdown(chartFile string) string {
	var b strings.Builder
	rounds := 0
	for _, rs := range r.results {
		rounds = max(rounds, len(rs))
	}
	fmt.Fprintf(&b, "# Benchmarks: ours beside etcd raft and hashicorp raft\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (bench/cmd/benchrun) on %s, in %v.\n\n", time.Now().UTC().Format("2006-01-02"), r.took.Round(time.Second))
	fmt.Fprintf(&b, "Machine: %s.\n\n", r.machine)
	fmt.Fprintf(&b, "Method: %d rounds; in each round every library runs every workload in a fresh process, "+
		"libraries interleaved; each run warms up for %v and is measured for %v. Figures are medians over the rounds, "+
		"with [min–max]. Latency is proposal → applied on the leader; allocations and bytes are the whole process's, "+
		"per operation. No library compacts its log during a run. See bench/README.md for the workloads.\n\n",
		rounds, *warmup, *duration)
	fmt.Fprintf(&b, "![ops/s by workload and library](%s)\n\n", chartFile)

	fmt.Fprintf(&b, "## Targets (issue 3/7), from the medians of this run\n\n")
	for _, t := range targets {
		got, ok := r.ratio(t.workload, t.other, metricNamed(t.metric))
		if !ok {
			fmt.Fprintf(&b, "- [ ] %s %s ours/%s: not measured\n", t.workload, t.metric, t.other)
			continue
		}
		met := got >= t.bound
		cmp := "≥"
		if !t.atLeast {
			met = got <= t.bound
			cmp = "≤"
		}
		mark := " "
		if met {
			mark = "x"
		}
		fmt.Fprintf(&b, "- [%s] %s %s: ours/%s = %.2f× (target %s %.1f×)\n", mark, t.workload, t.metric, t.other, got, cmp, t.bound)
	}

	fmt.Fprintf(&b, "\n## Ratios of medians, ours ÷ other\n\n")
	others := slices.DeleteFunc(slices.Clone(r.libraries), func(l string) bool { return l == "ours" })
	fmt.Fprintf(&b, "| workload | metric |")
	for _, o := range others {
		fmt.Fprintf(&b, " ours/%s |", o)
	}
	fmt.Fprintf(&b, "\n|---|---|%s\n", strings.Repeat("---|", len(others)))
	for _, w := range r.workloads {
		for _, m := range metrics {
			if !m.appliesTo(w) {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s |", w, m.name)
			for _, o := range others {
				if v, ok := r.ratio(w, o, m); ok {
					fmt.Fprintf(&b, " %.2f× |", v)
				} else {
					fmt.Fprintf(&b, " – |")
				}
			}
			fmt.Fprintf(&b, "\n")
		}
	}

	for _, w := range r.workloads {
		fmt.Fprintf(&b, "\n## %s\n\n| library |", w)
		var ms []metric
		for _, m := range metrics {
			if m.appliesTo(w) {
				ms = append(ms, m)
				fmt.Fprintf(&b, " %s |", m.name)
			}
		}
		fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", len(ms)))
		for _, lib := range r.libraries {
			if _, ok := r.stat(lib, w, ms[0]); !ok {
				continue
			}
			fmt.Fprintf(&b, "| %s |", lib)
			for _, m := range ms {
				s, _ := r.stat(lib, w, m)
				fmt.Fprintf(&b, " %s [%s–%s] |", m.format(s.median), m.format(s.min), m.format(s.max))
			}
			fmt.Fprintf(&b, "\n")
		}
	}
	return b.String()
}

func thousands(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }

func decimal(places int) func(float64) string {
	return func(v float64) string { return fmt.Sprintf("%.*f", places, v) }
}

// machine describes the CPU, its cores and the Go toolchain.
func machine() string {
	cpu := "unknown CPU"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	goVersion := runtime.Version()
	if v, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		goVersion = strings.TrimSpace(string(v))
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", cpu, runtime.NumCPU(), goVersion, runtime.GOOS, runtime.GOARCH)
}
