package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftly/raft/raftkv/client"
	"github.com/raftly/raft/raftkv/client/wire"
	"github.com/stretchr/testify/require"
)

// TestBadInput sends malformed requests, unknown routes and oversized
// keys and values to a cluster started without -test-faults: each gets
// the 4xx of raftkv's documentation with a one-line text/plain message,
// and the cluster keeps serving.
func TestBadInput(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, _, err := c.Leader(ctx)
	require.NoError(t, err)
	var follower *Node
	for _, n := range c.Nodes() {
		if n != leader {
			follower = n
			break
		}
	}

	long := strings.Repeat("k", 1025)
	big := strings.Repeat("v", 1<<20+1)
	getK := string(wire.AppendRequest(nil, []wire.Op{{Kind: wire.Get, Key: "k"}}))
	tooMany := string(wire.AppendRequest(nil, make([]wire.Op, wire.MaxOps+1)))
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown route", "GET", "/nope", "", 404},
		{"root", "GET", "/", "", 404},
		{"faults without -test-faults", "POST", "/debug/faults", `{"block":[2]}`, 404},
		{"POST on a key", "POST", "/kv/a", "x", 405},
		{"PATCH on a key", "PATCH", "/kv/a", "x", 405},
		{"PUT on /status", "PUT", "/status", "{}", 405},
		{"DELETE on /status", "DELETE", "/status", "", 405},
		{"GET on a member", "GET", "/members/2", "", 405},
		{"PUT on a member", "PUT", "/members/2", `{"peer":"127.0.0.1:1"}`, 405},
		{"empty key, put", "PUT", "/kv/", "x", 400},
		{"empty key, get", "GET", "/kv/", "", 400},
		{"empty key, delete", "DELETE", "/kv/", "", 400},
		{"key too long, put", "PUT", "/kv/" + long, "x", 413},
		{"key too long, get", "GET", "/kv/" + long, "", 413},
		{"key too long, delete", "DELETE", "/kv/" + long, "", 413},
		{"value too large", "PUT", "/kv/big", big, 413},
		{"stale is not a boolean", "GET", "/kv/a?stale=maybe", "", 400},
		{"member id not a number, add", "POST", "/members/abc", `{"peer":"127.0.0.1:1"}`, 400},
		{"member id not a number, remove", "DELETE", "/members/abc", "", 400},
		{"member id zero", "POST", "/members/0", `{"peer":"127.0.0.1:1"}`, 400},
		{"member id negative", "DELETE", "/members/-3", "", 400},
		{"member id overflows", "DELETE", "/members/99999999999999999999", "", 400},
		{"add member, body not JSON", "POST", "/members/9", `{"peer":`, 400},
		{"add member, empty body", "POST", "/members/9", "", 400},
		{"add member, wrong JSON type", "POST", "/members/9", `["127.0.0.1:1"]`, 400},
		{"add member, peer missing", "POST", "/members/9", `{}`, 400},
		{"add member, peer not host:port", "POST", "/members/9", `{"peer":"nowhere"}`, 400},
		// Refused membership changes: the doc names no status for them
		// (503 is "refused, retry"); the server answers 409.
		{"GET on /batch", "GET", "/batch", "", 405},
		{"batch, empty body", "POST", "/batch", "", 400},
		{"batch, JSON", "POST", "/batch", `[{"op":"get","key":"k"}]`, 400},
		{"batch, other version", "POST", "/batch", "\x02" + getK[1:], 400},
		{"batch, no operations", "POST", "/batch", "\x01\x00", 400},
		{"batch, count not a uvarint", "POST", "/batch", "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 400},
		{"batch, count past the body", "POST", "/batch", "\x01\x05" + getK[2:], 400},
		{"batch, truncated", "POST", "/batch", getK[:len(getK)-1], 400},
		{"batch, unknown kind", "POST", "/batch", "\x01\x01\x09\x01k", 400},
		{"batch, key length past the body", "POST", "/batch", "\x01\x01\x03\x7fk", 400},
		{"batch, value length past the body", "POST", "/batch", "\x01\x01\x01\x01k\x05v", 400},
		{"batch, trailing bytes", "POST", "/batch", getK + "zz", 400},
		{"batch, too many operations", "POST", "/batch", tooMany, 413},
		{"batch, body too large", "POST", "/batch", strings.Repeat("\x01", wire.MaxRequestBytes+1), 413},
		{"remove a node that is not a member", "DELETE", "/members/99", "", 409},
		{"add a member again at another address", "POST", "/members/1", `{"peer":"127.0.0.1:1"}`, 409},
	} {
		for _, n := range []*Node{leader, follower} {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			resp, err := doRetrying(ctx, cl, tc.method, n.ClientAddr, tc.path, body)
			if !assertNoErrorf(t, err, "%s: %s %s on node %d", tc.name, tc.method, shorten(tc.path), n.ID) {
				continue
			}
			if resp.Status != tc.want {
				t.Errorf("%s: %s %s on node %d: got %v, want %d", tc.name, tc.method, shorten(tc.path), n.ID, resp, tc.want)
				continue
			}
			msg := strings.TrimSuffix(resp.Body, "\n")
			if msg == "" || strings.Contains(msg, "\n") || !strings.HasPrefix(resp.ContentType, "text/plain") {
				t.Errorf("%s: %s %s on node %d: %d with %q (%s): want a one-line text/plain message",
					tc.name, tc.method, shorten(tc.path), n.ID, resp.Status, resp.Body, resp.ContentType)
			}
		}
	}

	// A batch's operations that break a limit get their own 4xx and
	// message; the others are done.
	bad := []wire.Op{
		{Kind: wire.Put, Key: "", Value: []byte("x")},
		{Kind: wire.Get, Key: long},
		{Kind: wire.Put, Key: "big", Value: []byte(big)},
		{Kind: wire.Delete, Key: ""},
		{Kind: wire.GetStale, Key: long},
		{Kind: wire.Put, Key: "batch-ok", Value: []byte("1")},
	}
	wantStatus := []int{400, 413, 413, 400, 413, 204}
	for _, n := range []*Node{leader, follower} {
		resp, err := doRetrying(ctx, cl, "POST", n.ClientAddr, "/batch", wire.AppendRequest(nil, bad))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.Status, "batch on node %d: %v", n.ID, resp)
		rs, err := wire.DecodeResponse([]byte(resp.Body), len(bad))
		require.NoError(t, err, "batch on node %d", n.ID)
		for i, r := range rs {
			require.Equal(t, wantStatus[i], r.Status, "batch on node %d, operation %d: %q", n.ID, i, r.Body)
			if msg := strings.TrimSuffix(string(r.Body), "\n"); r.Status != 204 && (msg == "" || strings.Contains(msg, "\n")) {
				t.Errorf("batch on node %d, operation %d: %d with %q: want a one-line message", n.ID, i, r.Status, r.Body)
			}
		}
	}

	// The limits themselves are allowed, and the cluster still serves.
	maxKey := strings.Repeat("k", 1024)
	maxValue := strings.Repeat("v", 1<<20)
	for _, kv := range [][2]string{{"a", "1"}, {maxKey, "2"}, {"max-value", maxValue}, {"with/slash", "3"}} {
		for _, n := range []*Node{leader, follower} {
			resp, err := cl.Put(ctx, n.ClientAddr, kv[0], kv[1])
			require.NoError(t, err)
			require.Equal(t, http.StatusNoContent, resp.Status, "PUT %s on node %d: %v", shorten(kv[0]), n.ID, resp)
			for _, m := range []*Node{leader, follower} {
				resp, err = cl.Get(ctx, m.ClientAddr, kv[0], false)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.Status, "GET %s on node %d: %v", shorten(kv[0]), m.ID, resp)
				require.True(t, resp.Body == kv[1], "GET %s on node %d: %v, want %s", shorten(kv[0]), m.ID, resp, shorten(kv[1]))
			}
		}
	}
	// And through package client, which batches.
	for _, n := range []*Node{leader, follower} {
		bc := client.New(n.ClientAddr)
		for _, kv := range [][2]string{{"batch-ok", "1"}, {maxKey, "4"}, {"max-value", maxValue}} {
			if kv[0] != "batch-ok" {
				require.NoError(t, bc.Put(ctx, kv[0], []byte(kv[1])), "put %s on node %d", shorten(kv[0]), n.ID)
			}
			v, err := bc.Get(ctx, kv[0])
			require.NoError(t, err, "get %s on node %d", shorten(kv[0]), n.ID)
			require.True(t, string(v) == kv[1], "get %s on node %d: %s, want %s", shorten(kv[0]), n.ID, shorten(string(v)), shorten(kv[1]))
		}
		bc.Close()
	}
	resp, err := cl.Delete(ctx, follower.ClientAddr, "a")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Status)
	resp, err = cl.Get(ctx, leader.ClientAddr, "a", false)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.Status)
	st, err := cl.Status(ctx, follower.ClientAddr)
	require.NoError(t, err)
	require.ElementsMatch(t, []uint64{1, 2, 3}, st.Voters)
}

// doRetrying sends a request until the answer is not a 503 (no leader
// known yet, or a membership change still in progress: nothing was done,
// retry) or ctx is done.
func doRetrying(ctx context.Context, cl *Client, method, addr, path string, body []byte) (Response, error) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := cl.Do(rctx, method, addr, path, body)
		cancel()
		if err != nil || resp.Status != http.StatusServiceUnavailable {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, nil
		case <-time.After(pollEvery):
		}
	}
}

func assertNoErrorf(t *testing.T, err error, format string, args ...any) bool {
	t.Helper()
	if err != nil {
		t.Errorf(format+": %v", append(args, err)...)
		return false
	}
	return true
}

// shorten keeps a long key or path readable in a message.
func shorten(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:20] + "..." + s[len(s)-10:] + fmt.Sprintf(" (%d bytes)", len(s))
}
