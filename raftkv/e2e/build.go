package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// ModulePath is the module path of raftkv, which FindModule looks for.
const ModulePath = "github.com/raftly/raft/raftkv"

// FindModule returns the directory of the raftkv module: the one this
// source file was compiled from, when it still exists (go run, go test),
// else the first directory, from the working directory up to the root,
// that is the module or holds it as raftkv/.
func FindModule() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Dir(filepath.Dir(file))
		if isModule(dir) {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		for _, d := range []string{dir, filepath.Join(dir, "raftkv")} {
			if isModule(d) {
				return d, nil
			}
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("e2e: no module %s in %s or above it", ModulePath, wd)
		}
	}
}

// isModule reports whether dir holds the go.mod of ModulePath.
func isModule(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == ModulePath
		}
	}
	return false
}

// Build compiles cmd/raftkv of the module in dir into the file out, with
// the go command found in PATH; race builds it with the race detector.
// The error carries the compiler's output.
func Build(ctx context.Context, dir, out string, race bool) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/raftkv")...)
	cmd.Dir = dir
	output, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("e2e: go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, output)
		}
		return fmt.Errorf("e2e: go %s in %s: %w", strings.Join(args, " "), dir, err)
	}
	return nil
}
