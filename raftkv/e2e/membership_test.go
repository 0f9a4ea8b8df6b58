package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMembership grows a cluster from three voters to five and shrinks it
// back to three, removing a follower and then the leader, while clients
// write and read: the joining nodes become voters once caught up, every
// node left agrees on the three voters, their states converge, and the
// history is linearizable (no acknowledged write lost).
func TestMembership(t *testing.T) {
	seed := envSeed(t)
	t.Logf("seed %d (replay: RAFTKV_SEED=%d go test ./e2e -run TestMembership -v)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0x6d656d))
	c := startCluster(t, 3, "-snapshot-every", "200", "-request-timeout", "2s")
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	members := &memberSet{}
	for _, n := range c.Nodes() {
		members.add(n)
	}
	h := newHistory()
	w := &workload{client: cl, h: h, keys: []string{"k0", "k1", "k2", "k3", "k4"}, timeout: 4 * time.Second, targets: members.list}
	stop := make(chan struct{})
	waitClients := w.start(stop, 4, seed)
	stopped := false
	stopClients := func() {
		if !stopped {
			stopped = true
			close(stop)
			waitClients()
		}
	}
	defer stopClients()
	// Enough writes for a snapshot on every node (the clients write on),
	// so that a joining node may need one.
	waitWrites(t, ctx, h, 300)
	waitMembers(t, ctx, c, members.list(), func(s Status) bool { return s.Snapshot > 0 }, "a snapshot on every node")

	// Grow: each new node joins through a random member, as a learner,
	// and is promoted once caught up.
	for _, id := range []uint64{4, 5} {
		via := members.list()[r.IntN(len(members.list()))]
		start := time.Now()
		n, err := c.Join(ctx, id, via)
		require.NoError(t, err, "node %d joining through node %d", id, via.ID)
		st := waitMembers(t, ctx, c, members.list(), func(s Status) bool { return slices.Contains(s.Voters, id) },
			fmt.Sprintf("node %d a voter", id))
		t.Logf("node %d joined through node %d and is a voter after %v: voters %v, learners %v",
			id, via.ID, time.Since(start).Round(time.Millisecond), st.Voters, st.Learners)
		members.add(n)
	}
	waitWrites(t, ctx, h, h.completedWrites()+100)

	// A node that joined comes back from its store when restarted with
	// the same flags (-join included), and so does a first member whose
	// -cluster no longer names every member.
	restart(t, ctx, c, c.Node(5))
	restart(t, ctx, c, c.Node(uint64(1+r.IntN(3))))
	waitMembers(t, ctx, c, members.list(), func(s Status) bool { return len(s.Voters) == 5 && s.Leader != 0 },
		"five voters and a leader after the restarts")
	waitWrites(t, ctx, h, h.completedWrites()+100)

	// Shrink: a follower, then the leader.
	for _, leaderToo := range []bool{false, true} {
		leader, _, err := c.Leader(ctx)
		require.NoError(t, err)
		victim := leader
		if !leaderToo {
			followers := slices.DeleteFunc(members.list(), func(n *Node) bool { return n == leader })
			victim = followers[r.IntN(len(followers))]
		}
		members.remove(victim)
		ask := members.list()[r.IntN(len(members.list()))]
		if leaderToo {
			ask = victim // it hands leadership over first
		}
		start := time.Now()
		m, resp, err := removeMember(ctx, cl, ask, victim.ID)
		require.NoError(t, err, "DELETE /members/%d (the leader: %v) on node %d: %v", victim.ID, leaderToo, ask.ID, resp)
		require.NotContains(t, m.Voters, victim.ID, "DELETE /members/%d: %v", victim.ID, resp)
		require.NotContains(t, m.Learners, victim.ID, "DELETE /members/%d: %v", victim.ID, resp)
		answered := time.Since(start)
		// A removed node may stop of its own accord; the doc does not say.
		victim.ExpectExit()
		running := victim.Running()
		start = time.Now()
		require.NoError(t, victim.Stop(stopTimeout), "stopping removed node %d", victim.ID)
		stopped := time.Since(start)
		st := waitMembers(t, ctx, c, members.list(), func(s Status) bool { return !slices.Contains(s.Voters, victim.ID) },
			fmt.Sprintf("node %d removed", victim.ID))
		t.Logf("removed node %d (the leader: %v) through node %d: answered in %v (entry %d), voters %v; "+
			"the removed node was still running: %v, stopped in %v",
			victim.ID, leaderToo, ask.ID, answered.Round(time.Millisecond), m.Index, st.Voters, running, stopped.Round(time.Millisecond))
		waitWrites(t, ctx, h, h.completedWrites()+50)
	}

	// A member restarted with a -cluster that names removed nodes.
	restart(t, ctx, c, members.list()[r.IntN(len(members.list()))])
	waitWrites(t, ctx, h, h.completedWrites()+50)

	stopClients()
	var want []uint64
	for _, n := range members.list() {
		want = append(want, n.ID)
	}
	waitMembers(t, ctx, c, members.list(), func(s Status) bool { return sameIDs(s.Voters, want) && len(s.Learners) == 0 },
		fmt.Sprintf("voters %v and no learner", want))
	cctx, ccancel := context.WithTimeout(ctx, convergeTimeout)
	defer ccancel()
	if _, err := w.converge(cctx, 4); err != nil {
		t.Error(err)
	}
	for _, p := range h.problemList() {
		t.Errorf("answer against the API: %s", p)
	}
	checkLinearizable(t, h.operations(), nil, c.Dir())
	t.Logf("%s", h.summary())
}

// restart kills n with SIGKILL and starts it again with the same flags
// and data.
func restart(t *testing.T, ctx context.Context, c *Cluster, n *Node) {
	t.Helper()
	n.Kill()
	require.NoError(t, n.Start())
	require.NoError(t, n.WaitReady(ctx, c.Client()))
	t.Logf("killed and restarted node %d (%s)", n.ID, strings.Join(n.Args(), " "))
}

// removeMember asks node n to remove id, retrying while the answer is
// 503 (no leader known, or another change in progress).
func removeMember(ctx context.Context, cl *Client, n *Node, id uint64) (Membership, Response, error) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, resp, err := cl.RemoveMember(rctx, n.ClientAddr, id)
		cancel()
		if err == nil || resp.Status != 503 {
			return m, resp, err
		}
		select {
		case <-ctx.Done():
			return m, resp, err
		case <-time.After(pollEvery):
		}
	}
}

// waitWrites waits until the history holds n completed writes.
func waitWrites(t *testing.T, ctx context.Context, h *history, n int) {
	t.Helper()
	for h.completedWrites() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%d writes completed, waiting for %d: %v; %s", h.completedWrites(), n, ctx.Err(), h.summary())
		case <-time.After(pollEvery):
		}
	}
}

// waitMembers waits until every node of nodes reports a status for which
// ok holds, and returns the last node's.
func waitMembers(t *testing.T, ctx context.Context, c *Cluster, nodes []*Node, ok func(Status) bool, what string) Status {
	t.Helper()
	var last Status
	var why string
	for {
		done := true
		for _, n := range nodes {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := c.Client().Status(rctx, n.ClientAddr)
			cancel()
			switch {
			case err != nil:
				done, why = false, err.Error()
			case !ok(s):
				done, why = false, fmt.Sprintf("node %d: term %d, leader %d, voters %v, learners %v", n.ID, s.Term, s.Leader, s.Voters, s.Learners)
			}
			last = s
		}
		if done {
			return last
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; last: %s", what, ctx.Err(), why)
		case <-time.After(pollEvery):
		}
	}
}

func sameIDs(a, b []uint64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// memberSet is the nodes the clients may call.
type memberSet struct {
	mu    sync.Mutex
	nodes []*Node
}

func (s *memberSet) add(n *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = append(s.nodes, n)
}

func (s *memberSet) remove(n *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = slices.DeleteFunc(slices.Clone(s.nodes), func(m *Node) bool { return m == n })
}

func (s *memberSet) list() []*Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.nodes)
}

// TestRestartAfterMembershipChange restarts a node whose log, since its
// last snapshot, holds a membership change followed by more entries it
// had applied: it must come back from its store and catch up.
func TestRestartAfterMembershipChange(t *testing.T) {
	c := startCluster(t, 3) // the default -snapshot-every: no snapshot here
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, _, err := c.Leader(ctx)
	require.NoError(t, err)
	put := func(key string) {
		t.Helper()
		resp, err := cl.Put(ctx, leader.ClientAddr, key, "v-"+key)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, resp.Status, "PUT %s: %v", key, resp)
	}
	for i := range 20 {
		put(fmt.Sprintf("before-%d", i))
	}
	var removed, restarted *Node
	for _, n := range c.Nodes() {
		switch {
		case n == leader:
		case removed == nil:
			removed = n
		default:
			restarted = n
		}
	}
	m, resp, err := removeMember(ctx, cl, leader, removed.ID)
	require.NoError(t, err, "%v", resp)
	removed.ExpectExit()
	require.NoError(t, removed.Stop(stopTimeout))
	for i := range 20 {
		put(fmt.Sprintf("after-%d", i))
	}
	waitMembers(t, ctx, c, []*Node{restarted}, func(s Status) bool { return s.Applied > m.Index }, "the follower past the change")

	restart(t, ctx, c, restarted)
	put("last")
	for {
		resp, err := cl.Get(ctx, restarted.ClientAddr, "last", true)
		if err == nil && resp.Status == http.StatusOK {
			break
		}
		select {
		case <-restarted.Exited():
			t.Fatalf("node %d, restarted after the removal of node %d (entry %d), exited: %v\n%s",
				restarted.ID, removed.ID, m.Index, restarted.Unexpected(), restarted.LogTail(5))
		case <-ctx.Done():
			t.Fatalf("node %d did not catch up after its restart: %v (last: %v, %v)", restarted.ID, ctx.Err(), resp, err)
		case <-time.After(pollEvery):
		}
	}
}
