package raftkv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftkv/client"
	"github.com/raftly/raft/raftkv/client/wire"
	"github.com/stretchr/testify/require"
)

// startOne starts a one-node cluster in the test's directory and returns
// once it leads.
func startOne(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Config{
		ID: 1, Cluster: map[int64]string{1: "127.0.0.1:0"}, Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		Tick: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	// Polls the node: its election is its own business.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for s.node.Status().RaftState != raft.StateLeader {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("no leader after 10s")
		}
	}
	return s
}

// postBatch sends body to POST /batch and returns the answer.
func postBatch(t *testing.T, addr string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/batch", "application/octet-stream", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func TestBatchOperations(t *testing.T) {
	s := startOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New(s.ClientAddr())
	defer c.Close()

	require.NoError(t, c.Put(ctx, "a", []byte("1")))
	v, err := c.Get(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "1", string(v))
	v, err = c.GetStale(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "1", string(v))
	require.NoError(t, c.Delete(ctx, "a"))
	_, err = c.Get(ctx, "a")
	require.ErrorIs(t, err, client.ErrNotFound)
	require.NoError(t, c.Put(ctx, "a", nil))
	v, err = c.Get(ctx, "a")
	require.NoError(t, err)
	require.Empty(t, v)

	// One request: each operation answered on its own, in order.
	ops := []wire.Op{
		{Kind: wire.Put, Key: "x", Value: []byte("1")},
		{Kind: wire.Get, Key: "a"},
		{Kind: wire.Put, Key: ""},
		{Kind: wire.Get, Key: strings.Repeat("k", MaxKeyBytes+1)},
		{Kind: wire.Put, Key: "big", Value: make([]byte, MaxValueBytes+1)},
		{Kind: wire.Delete, Key: strings.Repeat("k", MaxKeyBytes)},
		{Kind: wire.GetStale, Key: "absent"},
		{Kind: wire.Get, Key: "absent"},
	}
	status, body := postBatch(t, s.ClientAddr(), wire.AppendRequest(nil, ops))
	require.Equal(t, http.StatusOK, status, "%s", body)
	rs, err := wire.DecodeResponse(body, len(ops))
	require.NoError(t, err)
	want := []struct {
		status int
		body   string
	}{
		{204, ""}, {200, ""}, {400, "operation 2 (put): the key is empty\n"},
		{413, "operation 3 (get): the key is 1025 bytes; at most 1024\n"},
		{413, "operation 4 (put): the value is 1048577 bytes; at most 1048576\n"},
		{204, ""}, {404, "no key \"absent\"\n"}, {404, "no key \"absent\"\n"},
	}
	for i, w := range want {
		require.Equal(t, w.status, rs[i].Status, "operation %d: %q", i, rs[i].Body)
		require.Equal(t, w.body, string(rs[i].Body), "operation %d", i)
	}
	_, err = c.Get(ctx, "big")
	require.ErrorIs(t, err, client.ErrNotFound)
}

// Many callers of one Client: every write is acknowledged once applied,
// every read sees the caller's own last write, and the operations share
// requests.
func TestBatchConcurrentCallers(t *testing.T) {
	s := startOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New(s.ClientAddr())
	defer c.Close()
	const callers, rounds = 32, 20
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			key := fmt.Sprint("key", i)
			for n := range rounds {
				value := fmt.Sprint(n)
				if err := c.Put(ctx, key, []byte(value)); err != nil {
					t.Errorf("put %s: %v", key, err)
					return
				}
				got, err := c.Get(ctx, key)
				if err != nil || string(got) != value {
					t.Errorf("get %s: %q, %v; want %q", key, got, err, value)
					return
				}
			}
			if err := c.Delete(ctx, key); err != nil {
				t.Errorf("delete %s: %v", key, err)
			}
		})
	}
	wg.Wait()
	ops := int64(callers * (2*rounds + 1))
	t.Logf("%d operations in %d requests", ops, c.Requests())
	require.Less(t, c.Requests(), ops/2, "the operations did not share requests")
}

func TestBatchMalformed(t *testing.T) {
	s := startOne(t)
	tooMany := wire.AppendRequest(nil, make([]wire.Op, wire.MaxOps+1))
	for _, tc := range []struct {
		name string
		body []byte
		want int
		msg  string
	}{
		{"empty", nil, 400, "the body is empty"},
		{"not the version", []byte("{}"), 400, "version 123"},
		{"truncated", []byte{wire.Version, 2, byte(wire.Get), 1, 'k'}, 400, "operation 1"},
		{"unknown kind", []byte{wire.Version, 1, 7, 1, 'k'}, 400, "unknown kind 7"},
		{"trailing bytes", append(wire.AppendRequest(nil, []wire.Op{{Kind: wire.Get, Key: "k"}}), 0), 400, "1 bytes after"},
		{"too many operations", tooMany, 413, "more than 1024 operations"},
		{"too large", make([]byte, wire.MaxRequestBytes+1), 413, "larger than"},
	} {
		status, body := postBatch(t, s.ClientAddr(), tc.body)
		require.Equal(t, tc.want, status, "%s: %s", tc.name, body)
		require.Contains(t, string(body), tc.msg, tc.name)
		require.Equal(t, 1, strings.Count(string(body), "\n"), tc.name)
	}
	c := client.New(s.ClientAddr())
	defer c.Close()
	require.NoError(t, c.Put(context.Background(), "still", []byte("serving")))
}
