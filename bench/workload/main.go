package workload

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

// Main is the whole program of a benchmark binary: it runs one workload
// against one of libs, as the flags say, and prints the Result as one line
// of JSON. The runner starts one such process per measurement.
func Main(libs ...Library) {
	var (
		libName  = flag.String("lib", "", "library to run: "+names(libs))
		workName = flag.String("workload", "", "workload to run")
		list     = flag.Bool("list", false, "print the libraries this binary holds, as JSON, and exit")
		warmup   = flag.Duration("warmup", time.Second, "run this long before measuring")
		duration = flag.Duration("duration", 5*time.Second, "measure this long")
		ops      = flag.Int64("ops", 0, "measure the first ops operations instead (a smoke run)")
		cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
		memProf  = flag.String("memprofile", "", "write an allocation profile of the run to this file")
	)
	flag.Parse()
	if *list {
		var infos []LibraryInfo
		for _, lib := range libs {
			infos = append(infos, LibraryInfo{Name: lib.Name, Codec: lib.NewCodec != nil})
		}
		if err := json.NewEncoder(os.Stdout).Encode(infos); err != nil {
			fatalf("%v", err)
		}
		return
	}
	w, ok := LookupWorkload(*workName)
	if !ok {
		fatalf("unknown workload %q", *workName)
	}
	for _, lib := range libs {
		if lib.Name != *libName {
			continue
		}
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			if err != nil {
				fatalf("%v", err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fatalf("%v", err)
			}
		}
		r, err := Run(lib, w, Limits{Warmup: *warmup, Duration: *duration, Ops: *ops})
		if err != nil {
			fatalf("%v", err)
		}
		if *cpuProf != "" {
			pprof.StopCPUProfile()
		}
		if *memProf != "" {
			writeHeapProfile(*memProf)
		}
		if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
			fatalf("%v", err)
		}
		return
	}
	fatalf("unknown library %q (this binary holds %s)", *libName, names(libs))
}

// LibraryInfo describes a library a benchmark binary holds (its -list).
type LibraryInfo struct {
	Name  string `json:"name"`
	Codec bool   `json:"codec"` // it runs the codec workload
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fatalf("%v", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fatalf("%v", err)
	}
}

func names(libs []Library) string {
	var s []string
	for _, lib := range libs {
		s = append(s, lib.Name)
	}
	return strings.Join(s, " ")
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
