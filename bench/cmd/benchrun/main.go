// Command benchrun measures every library on every workload, each run in a
// fresh process, libraries interleaved within each round (A B C A B C ...),
// and writes the medians, with min and max, and the ratios of ours to the
// others as a Markdown report and a chart. Run it from the bench directory
// (make bench does).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/raftly/raft/bench/workload"
)

var (
	rounds    = flag.Int("rounds", 3, "measurements of each library on each workload")
	warmup    = flag.Duration("warmup", time.Second, "warm-up of each run, before measuring")
	duration  = flag.Duration("duration", 5*time.Second, "measured time of each run")
	workloads = flag.String("workloads", "single,cluster3,cluster3-seq,codec", "workloads to run, comma-separated")
	out       = flag.String("out", "results.md", "report to write")
	chart     = flag.String("chart", "results.png", "chart to write (the report links it by its base name)")
)

// binaries are the benchmark commands, each built from its own module
// directory (relative to bench/), since one build cannot hold two versions
// of etcd raft.
var binaries = []struct{ moduleDir, pkg string }{
	{".", "./cmd/raftbench"},
	{"etcd37", "./cmd/raftbench-etcd37"},
}

// library is one library and the binary that runs it.
type library struct {
	workload.LibraryInfo
	binary string
}

func main() {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "benchrun")
	check(err)
	defer os.RemoveAll(tmp)

	var libs []library
	for _, b := range binaries {
		bin := filepath.Join(tmp, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-o", bin, b.pkg)
		cmd.Dir = b.moduleDir
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		check(cmd.Run())
		var infos []workload.LibraryInfo
		check(json.Unmarshal(output(bin, "-list"), &infos))
		for _, info := range infos {
			libs = append(libs, library{LibraryInfo: info, binary: bin})
		}
	}
	slices.SortStableFunc(libs, func(a, b library) int { return libraryOrder(a.Name) - libraryOrder(b.Name) })

	var results []workload.Result
	started := time.Now()
	for round := 1; round <= *rounds; round++ {
		for _, w := range strings.Split(*workloads, ",") {
			for _, lib := range libs {
				if w == "codec" && !lib.Codec {
					continue
				}
				var r workload.Result
				check(json.Unmarshal(output(lib.binary, "-lib", lib.Name, "-workload", w,
					"-warmup", warmup.String(), "-duration", duration.String()), &r))
				fmt.Fprintf(os.Stderr, "round %d/%d %-12s %-10s %10.0f ops/s  p50 %7.0f µs  p99 %7.0f µs  %6.2f allocs/op  %7.0f B/op\n",
					round, *rounds, w, lib.Name, r.OpsPerSec, r.P50Micros, r.P99Micros, r.AllocsPerOp, r.BytesPerOp)
				results = append(results, r)
			}
		}
	}
	rep := newReport(results, machine(), time.Since(started))
	check(os.WriteFile(*out, []byte(rep.markdown(filepath.Base(*chart))), 0o644))
	check(rep.chart(*chart))
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", *out, *chart)
}

// libraryOrder puts ours first, then the others in a fixed order.
func libraryOrder(name string) int {
	i := slices.Index([]string{"ours", "etcd-v3.6", "etcd-v3.7", "hashicorp"}, name)
	if i < 0 {
		return 100
	}
	return i
}

// output runs bin with args and returns its standard output.
func output(bin string, args ...string) []byte {
	cmd := exec.Command(bin, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %s %s: %v\n", filepath.Base(bin), strings.Join(args, " "), err)
		os.Exit(1)
	}
	return stdout.Bytes()
}

func check(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
		os.Exit(1)
	}
}
