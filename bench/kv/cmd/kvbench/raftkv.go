package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/raftly/raft/raftkv/client"
	"github.com/raftly/raft/raftkv/e2e"
)

// How kvbench's raftkv clients talk to their node (-raftkv-client).
const (
	raftkvBatch = "batch" // package client: a node's clients share it, their operations batched
	raftkvHTTP  = "http"  // the single-key routes, a keep-alive connection per client
)

type raftkvCluster struct {
	procs []*proc
	addrs []string // client addresses, host:port
	lead  int
	mode  string           // raftkvBatch or raftkvHTTP
	batch []*client.Client // batch[i]: node i's, shared by its benchmark clients; nil until asked for
}

// raftkvStarter returns the start function of the raftkv system, running
// the binary bin, its clients of the given mode.
func raftkvStarter(bin, mode string) func(context.Context, string) (cluster, error) {
	return func(ctx context.Context, dir string) (cluster, error) {
		return startRaftkv(ctx, bin, mode, dir)
	}
}

// startRaftkv starts nodes 1 to 3 with the flags of raftkv's doc.go.
func startRaftkv(ctx context.Context, bin, mode, dir string) (cluster, error) {
	ports, err := e2e.FreePorts(2 * nodes)
	if err != nil {
		return nil, err
	}
	c := &raftkvCluster{mode: mode, batch: make([]*client.Client, nodes)}
	var members []string
	for i := range nodes {
		members = append(members, fmt.Sprintf("%d=127.0.0.1:%d", i+1, ports[i]))
		c.addrs = append(c.addrs, fmt.Sprintf("127.0.0.1:%d", ports[nodes+i]))
	}
	for i := range nodes {
		id := fmt.Sprint(i + 1)
		p, err := startProc("raftkv "+id, filepath.Join(dir, "raftkv-"+id+".log"), bin,
			"-id", id,
			"-cluster", strings.Join(members, ","),
			"-listen", c.addrs[i],
			"-data", filepath.Join(dir, "raftkv-"+id))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
	}

	probe := e2e.NewClient()
	defer probe.CloseIdle()
	c.lead, err = waitReady(ctx, c.procs, func(ctx context.Context) (int, error) {
		var lead uint64
		for i, addr := range c.addrs {
			st, err := probe.Status(ctx, addr)
			if err != nil {
				return -1, err
			}
			switch {
			case st.Leader == 0:
				return -1, fmt.Errorf("%s knows no leader", addr)
			case i > 0 && st.Leader != lead:
				return -1, fmt.Errorf("leaders differ: %d and %d", lead, st.Leader)
			}
			lead = st.Leader
		}
		if lead < 1 || lead > nodes {
			return -1, fmt.Errorf("leader %d is not one of nodes 1 to %d", lead, nodes)
		}
		return int(lead) - 1, nil
	})
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("raftkv: %w", err)
	}
	return c, nil
}

func (c *raftkvCluster) leader() int { return c.lead }

func (c *raftkvCluster) stop() {
	for _, b := range c.batch {
		if b != nil {
			b.Close()
		}
	}
	killProcs(c.procs)
}

// client returns, in batch mode, a client that shares node i's
// client.Client with the node's other benchmark clients, as the etcd
// clients of a node share its clientv3; in http mode, a client with a
// transport of its own, so that it keeps one keep-alive connection to its
// node.
func (c *raftkvCluster) client(i int) (kvClient, error) {
	if c.mode == raftkvBatch {
		if c.batch[i] == nil {
			c.batch[i] = client.New(c.addrs[i])
		}
		return raftkvBatchClient{c.batch[i]}, nil
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &raftkvClient{hc: &http.Client{Transport: tr}, base: "http://" + c.addrs[i] + "/kv/"}, nil
}

type raftkvClient struct {
	hc   *http.Client
	base string // http://host:port/kv/
}

func (r *raftkvClient) put(ctx context.Context, key string, value []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.base+key, bytes.NewReader(value))
	if err != nil {
		return err
	}
	return r.do(req, http.StatusNoContent)
}

// get reads without ?stale=true: a linearizable (read index) read.
func (r *raftkvClient) get(ctx context.Context, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+key, nil)
	if err != nil {
		return err
	}
	return r.do(req, http.StatusOK)
}

// do sends req and drains the reply, so that the connection is kept, and
// fails unless the reply has status want.
func (r *raftkvClient) do(req *http.Request, want int) error {
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return statusError(resp)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func (r *raftkvClient) close() { r.hc.CloseIdleConnections() }

type raftkvBatchClient struct{ c *client.Client }

func (r raftkvBatchClient) put(ctx context.Context, key string, value []byte) error {
	return r.c.Put(ctx, key, value)
}

// get is a linearizable read; a missing key is client.ErrNotFound.
func (r raftkvBatchClient) get(ctx context.Context, key string) error {
	_, err := r.c.Get(ctx, key)
	return err
}

// close does nothing: the client.Client is the cluster's, closed by stop.
func (r raftkvBatchClient) close() {}

// statusError describes an unexpected reply by its status and the first
// line of its body (raftkv's errors are one line of text).
func statusError(resp *http.Response) error {
	line, _ := bufio.NewReader(io.LimitReader(resp.Body, 512)).ReadString('\n')
	_, _ = io.Copy(io.Discard, resp.Body)
	msg := strings.TrimSpace(line)
	if msg == "" {
		return errors.New(resp.Status)
	}
	return fmt.Errorf("%s %s: %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status, msg)
}
