// Command raftkv-demo runs a three-node raftkv cluster as real processes
// on 127.0.0.1 and walks it through a leader failure: it writes keys,
// kills the leader with SIGKILL, shows the new leader and every
// acknowledged write still readable, writes more, restarts the killed
// node from its data directory and shows it catching up, and stops
// everything it started.
//
//	raftkv-demo [-bin path/to/raftkv] [-keys 100] [-timeout 20s]
//
// Without -bin it builds cmd/raftkv with the go command. Data and logs
// go to a temporary directory, removed at the end. It exits 0 when every
// step happened, and 1 when one did not, saying which, with the
// directory of the logs kept; it always stops the processes it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/raftly/raft/raftkv/e2e"
)

var (
	flagBin     = flag.String("bin", "", "the raftkv binary (default: build cmd/raftkv into the temporary directory)")
	flagKeys    = flag.Int("keys", 100, "keys written before the leader is killed (and half as many after)")
	flagTimeout = flag.Duration("timeout", 20*time.Second, "how long each step may take")
)

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "raftkv-demo: %v\n", err)
		os.Exit(1)
	}
}

// demo is the state of one run.
type demo struct {
	c      *e2e.Cluster
	client *e2e.Client
	start  time.Time
}

// say prints one line of the story, with the time since the start.
func (d *demo) say(format string, args ...any) {
	fmt.Printf("%5.1fs  %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context) (err error) {
	d := &demo{start: time.Now()}
	dir, err := os.MkdirTemp("", "raftkv-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\nthe logs (n1.log, n2.log, n3.log) and data are kept in %s", err, dir)
			return
		}
		os.RemoveAll(dir)
	}()

	bin := *flagBin
	if bin == "" {
		mod, err := e2e.FindModule()
		if err != nil {
			return err
		}
		bin = filepath.Join(dir, "raftkv")
		if err := e2e.Build(ctx, mod, bin, false); err != nil {
			return err
		}
		d.say("built cmd/raftkv from %s", mod)
	}

	d.c, err = e2e.New(e2e.Config{Bin: bin, Dir: dir, Size: 3})
	if err != nil {
		return err
	}
	d.client = d.c.Client()
	defer func() {
		if cerr := d.c.Close(5 * time.Second); cerr != nil && err == nil {
			err = fmt.Errorf("stopping the nodes: %w", cerr)
		}
		if err == nil {
			d.say("stopped the 3 nodes and removed %s", dir)
		}
	}()
	if err := d.step(ctx, func(ctx context.Context) error { return d.c.Start(ctx) }); err != nil {
		return fmt.Errorf("starting 3 nodes: %w", err)
	}
	var addrs []string
	for _, n := range d.c.Nodes() {
		addrs = append(addrs, n.ClientAddr)
	}
	d.say("started 3 raftkv processes, clients on %v; data and logs in %s", addrs, dir)

	leader, st, err := d.leader(ctx)
	if err != nil {
		return err
	}
	d.say("node %d is the leader (term %d)", leader.ID, st.Term)

	written := map[string]string{}
	if err := d.write(ctx, leader, "before", *flagKeys, written); err != nil {
		return err
	}
	commit := d.commit(ctx, leader)
	d.say("wrote %d keys through node %d (commit index %d)", *flagKeys, leader.ID, commit)

	killed := leader
	killed.Kill()
	d.say("killed node %d, the leader, with SIGKILL", killed.ID)
	killedAt := time.Now()
	leader, st, err = d.leader(ctx)
	if err != nil {
		return err
	}
	d.say("node %d is the new leader (term %d), %v after the kill", leader.ID, st.Term, time.Since(killedAt).Round(time.Millisecond))

	if err := d.readAll(ctx, leader, written); err != nil {
		return err
	}
	d.say("read back all %d acknowledged keys from node %d (linearizable reads): every value is there", len(written), leader.ID)

	if err := d.write(ctx, leader, "after", *flagKeys/2, written); err != nil {
		return err
	}
	commit = d.commit(ctx, leader)
	d.say("wrote %d more keys while node %d was down (commit index %d)", *flagKeys/2, killed.ID, commit)

	restartedAt := time.Now()
	if err := killed.Start(); err != nil {
		return err
	}
	var applied uint64
	err = d.step(ctx, func(ctx context.Context) error {
		return poll(ctx, func() error {
			if !killed.Running() {
				return errors.Join(errStop, fmt.Errorf("node %d exited: %v", killed.ID, killed.Unexpected()))
			}
			s, err := d.client.Status(ctx, killed.ClientAddr)
			if err != nil {
				return err
			}
			applied = s.Applied
			if s.Applied < commit {
				return fmt.Errorf("node %d has applied %d of %d", killed.ID, s.Applied, commit)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("restarted node %d catching up: %w", killed.ID, err)
	}
	if err := d.readStale(ctx, killed, written); err != nil {
		return err
	}
	if u := d.c.Unexpected(); len(u) > 0 {
		return fmt.Errorf("a node exited unexpectedly: %v", u)
	}
	d.say("restarted node %d from its data: it applied up to index %d in %v, and its local state has all %d keys",
		killed.ID, applied, time.Since(restartedAt).Round(time.Millisecond), len(written))
	return nil
}

// step runs f with the step timeout.
func (d *demo) step(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, *flagTimeout)
	defer cancel()
	return f(ctx)
}

// poll calls f until it succeeds, fails with errStop, or ctx is done,
// and then returns f's last error.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || errors.Is(err, errStop) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *demo) leader(ctx context.Context) (n *e2e.Node, st e2e.Status, err error) {
	err = d.step(ctx, func(ctx context.Context) error {
		n, st, err = d.c.Leader(ctx)
		return err
	})
	return n, st, err
}

// commit returns n's commit index, 0 if it does not answer.
func (d *demo) commit(ctx context.Context, n *e2e.Node) uint64 {
	ctx, cancel := context.WithTimeout(ctx, *flagTimeout)
	defer cancel()
	s, err := d.client.Status(ctx, n.ClientAddr)
	if err != nil {
		return 0
	}
	return s.Commit
}

// write puts count keys prefix-i through n, retrying a 503 (no leader
// known yet), and records each acknowledged one in written.
func (d *demo) write(ctx context.Context, n *e2e.Node, prefix string, count int, written map[string]string) error {
	for i := range count {
		key := prefix + "-" + strconv.Itoa(i)
		value := fmt.Sprintf("value %d written %s the kill", i, prefix)
		err := d.step(ctx, func(ctx context.Context) error {
			return poll(ctx, func() error {
				resp, err := d.client.Put(ctx, n.ClientAddr, key, value)
				switch {
				case err != nil:
					return err
				case resp.Status == http.StatusServiceUnavailable:
					return fmt.Errorf("PUT %s: %v", key, resp)
				case resp.Status != http.StatusNoContent:
					return errors.Join(errStop, fmt.Errorf("PUT %s: %v", key, resp))
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("writing %s through node %d: %w", key, n.ID, err)
		}
		written[key] = value
	}
	return nil
}

// errStop, in an error, stops poll: retrying will not change the answer.
var errStop = errors.New("not retried")

// readAll reads every key of written from n, linearizably, and checks
// its value.
func (d *demo) readAll(ctx context.Context, n *e2e.Node, written map[string]string) error {
	for key, want := range written {
		var got e2e.Response
		err := d.step(ctx, func(ctx context.Context) error {
			return poll(ctx, func() error {
				resp, err := d.client.Get(ctx, n.ClientAddr, key, false)
				if err != nil {
					return err
				}
				if resp.Status == http.StatusServiceUnavailable {
					return fmt.Errorf("GET %s: %v", key, resp)
				}
				got = resp
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("reading %s from node %d: %w", key, n.ID, err)
		}
		if got.Status != http.StatusOK || got.Body != want {
			return fmt.Errorf("acknowledged write lost: GET %s on node %d answered %v, want 200 %q", key, n.ID, got, want)
		}
	}
	return nil
}

// readStale reads every key of written from n's local state.
func (d *demo) readStale(ctx context.Context, n *e2e.Node, written map[string]string) error {
	for key, want := range written {
		rctx, cancel := context.WithTimeout(ctx, *flagTimeout)
		resp, err := d.client.Get(rctx, n.ClientAddr, key, true)
		cancel()
		if err != nil {
			return fmt.Errorf("stale read of %s on node %d: %w", key, n.ID, err)
		}
		if resp.Status != http.StatusOK || resp.Body != want {
			return fmt.Errorf("node %d caught up but its local state has %s: %v, want 200 %q", n.ID, key, resp, want)
		}
	}
	return nil
}
