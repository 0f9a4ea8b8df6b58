package raftkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/raftly/raft"
)

// routes is the client API (see the package documentation).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key...}", s.put)
	mux.HandleFunc("DELETE /kv/{key...}", s.delete)
	mux.HandleFunc("GET /kv/{key...}", s.get)
	mux.HandleFunc("POST /batch", s.batch)
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("POST /members/{id}", s.addMember)
	mux.HandleFunc("DELETE /members/{id}", s.removeMember)
	if s.cfg.TestFaults {
		mux.HandleFunc("POST /debug/faults", s.faults)
	}
	return mux
}

// fail answers with status and a one-line message.
func fail(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, format+"\n", args...)
}

// failRequest answers a request that went through Raft and failed.
func failRequest(w http.ResponseWriter, err error) { fail(w, requestStatus(err), "%v", err) }

// requestStatus is the status of a request that went through Raft and
// failed with err: 503 when nothing was written, 504 when the outcome is
// unknown.
func requestStatus(err error) int {
	if errors.Is(err, errRefused) || errors.Is(err, errStopped) {
		return http.StatusServiceUnavailable
	}
	return http.StatusGatewayTimeout
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

// key returns the request's key, or answers why it is not one.
func key(w http.ResponseWriter, r *http.Request) (string, bool) {
	k := r.PathValue("key")
	switch {
	case k == "":
		fail(w, http.StatusBadRequest, "the key is empty: use /kv/{key}")
		return "", false
	case len(k) > MaxKeyBytes:
		fail(w, http.StatusRequestEntityTooLarge, "the key is %d bytes; at most %d", len(k), MaxKeyBytes)
		return "", false
	}
	return k, true
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	k, ok := key(w, r)
	if !ok {
		return
	}
	if value, ok := readBody(w, r, MaxValueBytes, "value"); ok {
		s.write(w, r, command{op: opPut, key: k, value: value})
	}
}

// readBody reads a request body of at most limit bytes, named what in the
// answer it gives when it cannot (413 when too large, 400 otherwise).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, bool) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	var body []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= limit {
		body = make([]byte, n)
		_, err = io.ReadFull(rd, body)
	} else {
		body, err = io.ReadAll(rd)
	}
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			fail(w, http.StatusRequestEntityTooLarge, "the %s is larger than %d bytes", what, limit)
		} else {
			fail(w, http.StatusBadRequest, "reading the %s: %v", what, err)
		}
		return nil, false
	}
	return body, true
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	if k, ok := key(w, r); ok {
		s.write(w, r, command{op: opDelete, key: k})
	}
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, c command) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	if _, err := s.propose(ctx, c); err != nil {
		failRequest(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	k, ok := key(w, r)
	if !ok {
		return
	}
	stale := false
	if v := r.URL.Query().Get("stale"); v != "" {
		var err error
		if stale, err = strconv.ParseBool(v); err != nil {
			fail(w, http.StatusBadRequest, "stale=%q: want true or false", v)
			return
		}
	}
	if !stale {
		ctx, cancel := s.requestContext(r)
		defer cancel()
		if err := s.awaitLinearizable(ctx); err != nil {
			failRequest(w, err)
			return
		}
	}
	s.mu.RLock()
	value, found := s.state.data[k]
	s.mu.RUnlock()
	if !found {
		fail(w, http.StatusNotFound, "no key %q", k)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(value)
}

// Status is what GET /status answers.
type Status struct {
	ID       int64            `json:"id"`
	Term     int64            `json:"term"`
	Leader   int64            `json:"leader"`
	Role     string           `json:"role"`
	Commit   int64            `json:"commit"`
	Applied  int64            `json:"applied"`
	Snapshot int64            `json:"snapshot"` // the index of the store's latest snapshot
	Voters   []int64          `json:"voters"`
	Learners []int64          `json:"learners"`
	Peers    map[int64]string `json:"peers"`
}

var roles = map[raft.StateType]string{
	raft.StateFollower: "follower", raft.StatePreCandidate: "pre-candidate",
	raft.StateCandidate: "candidate", raft.StateLeader: "leader",
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.node.Status()
	s.mu.RLock()
	m := s.describe(st.Applied, st.Voters, st.Learners)
	applied := s.applied
	s.mu.RUnlock()
	writeJSON(w, Status{
		ID: st.ID, Term: st.Term, Leader: st.Lead, Role: roles[st.RaftState],
		Commit: st.Commit, Applied: applied, Snapshot: s.store.Snapshot().Index, Voters: m.Voters, Learners: m.Learners, Peers: m.Peers,
	})
}

func memberID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		fail(w, http.StatusBadRequest, "member id %q: want a positive integer", r.PathValue("id"))
		return 0, false
	}
	return id, true
}

// joinRequest is the body of POST /members/{id}.
type joinRequest struct {
	Peer string `json:"peer"`
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	id, ok := memberID(w, r)
	if !ok {
		return
	}
	var req joinRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, `the body must be JSON {"peer": "host:port"}: %v`, err)
		return
	}
	if _, port, err := net.SplitHostPort(req.Peer); err != nil || port == "" {
		fail(w, http.StatusBadRequest, "peer %q: want host:port", req.Peer)
		return
	}
	// Asked again by a node still learning (it restarted before it got
	// the answer): the same answer, the membership it joins with.
	s.mu.RLock()
	known, isKnown := s.state.members[id]
	stillLearner := slices.Contains(s.state.learners, id)
	var again membership
	if isKnown && known.addr == req.Peer && stillLearner {
		again = s.describe(known.added, known.voters, known.learners)
	}
	s.mu.RUnlock()
	if again.Index != 0 {
		again.ID = id
		writeJSON(w, again)
		return
	}
	s.changeMembers(w, r, command{op: opAddLearner, node: id, value: []byte(req.Peer)})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	id, ok := memberID(w, r)
	if !ok {
		return
	}
	if st := s.node.Status(); id == s.cfg.ID && st.RaftState == raft.StateLeader {
		// Leadership goes first to the most up-to-date other voter, so
		// that the cluster is not without a leader while this one steps
		// down; the removal then goes to the new leader.
		to := successor(st)
		if to == 0 {
			fail(w, http.StatusConflict, "node %d is the only voter", id)
			return
		}
		ctx, cancel := s.requestContext(r)
		defer cancel()
		if err := s.node.TransferLeadership(ctx, to); err != nil {
			fail(w, http.StatusServiceUnavailable, "handing leadership over before removing this node: %v; retry", err)
			return
		}
	}
	s.changeMembers(w, r, command{op: opRemove, node: id})
}

// successor is the voter other than the leader whose log goes furthest.
func successor(st raft.Status) int64 {
	var best int64
	for _, id := range st.Voters {
		if id != st.ID && (best == 0 || st.Progress[id].Match > st.Progress[best].Match) {
			best = id
		}
	}
	return best
}

func (s *Server) changeMembers(w http.ResponseWriter, r *http.Request, c command) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	res, err := s.propose(ctx, c)
	if err != nil {
		failRequest(w, err)
		return
	}
	if res.refused != nil {
		fail(w, http.StatusConflict, "%v", res.refused)
		return
	}
	res.members.ID = c.node
	writeJSON(w, res.members)
}

// faultRequest is the body of POST /debug/faults.
type faultRequest struct {
	Block []int64 `json:"block"`
}

func (s *Server) faults(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, `the body must be JSON {"block": [ids]}: %v`, err)
		return
	}
	s.transport.Block(req.Block)
	w.WriteHeader(http.StatusNoContent)
}
