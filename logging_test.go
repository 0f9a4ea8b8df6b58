package raft

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// logRecorder keeps every record a node logs, as decoded JSON.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecorder) records(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		out = append(out, rec)
	}
	return out
}

// Elections, leader changes, membership changes, snapshot sends and
// transfers are logged at Info with the node id and the term; proposals
// log nothing.
func TestLogging(t *testing.T) {
	var rec logRecorder
	logger := slog.New(slog.NewJSONHandler(&rec, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := newMCDriver(t, []int64{1, 2, 3}, WithLogger(logger))
	d.campaign(1)
	before := len(rec.records(t))
	for range 50 {
		require.NoError(t, d.propose(1, "x"))
	}
	require.Len(t, rec.records(t), before, "proposals logged something")

	require.NoError(t, d.configure(1, configData("learner", 4)))
	d.isolate(3)
	require.NoError(t, d.propose(1, "y"))
	require.NoError(t, d.compact(1))
	d.heal()
	d.tick(2)
	require.NoError(t, d.nodes[1].rn.TransferLeadership(2))
	d.stabilize()

	seen := map[string]bool{}
	for _, r := range rec.records(t) {
		msg := r["msg"].(string)
		seen[msg] = true
		require.Contains(t, r, "raft", "%q lacks the node id", msg)
		require.Contains(t, r, "term", "%q lacks the term", msg)
	}
	for _, msg := range []string{
		"campaigning", "became leader", "following leader", "membership changed",
		"sending snapshot", "restored snapshot", "transferring leadership", "campaigning at the leader's request",
	} {
		require.True(t, seen[msg], "nothing logged %q", msg)
	}
}
