package raftkv

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	"github.com/raftly/raft/raftstore"
)

// Config configures a Server. ID, DataDir, Listen and one of Cluster and
// Join are required.
type Config struct {
	ID int64
	// Cluster maps the first members to their peer addresses. A new node
	// starts with them as its peers; a restarted one only takes addresses
	// from it that it has not learned since.
	Cluster map[int64]string
	// Join is the client address of a member of a running cluster: a new
	// node asks it to add this node, as a learner, and starts from its
	// answer. Ignored once the node has state on disk.
	Join string
	// PeerListen is where to listen for peers; empty means Cluster[ID].
	PeerListen string
	// Listen is where to serve the client API.
	Listen  string
	DataDir string
	// SnapshotEvery is how many applied entries there are between
	// snapshots; 0 means 10,000.
	SnapshotEvery int64
	// Tick is the length of a Raft tick; 0 means 10ms. An election takes
	// 10 ticks, a heartbeat 1.
	Tick time.Duration
	// RequestTimeout bounds each client request; 0 means 5s.
	RequestTimeout time.Duration
	// TestFaults serves POST /debug/faults, for tests that cut the network.
	TestFaults bool
	Logger     *slog.Logger
}

const (
	electionTicks  = 10
	heartbeatTicks = 1
	// groupID is the raftstore group of the one Raft group a server runs.
	groupID = 1
)

var (
	// errRefused: the request was refused, nothing was written.
	errRefused = errors.New("refused: no leader known, or the leader takes no proposals now (a membership change or leadership transfer in progress); retry")
	// errUnknownOutcome: the deadline passed before the request completed;
	// a write may still be applied.
	errUnknownOutcome = errors.New("deadline passed before the request completed; a write may or may not be applied")
	errStopped        = errors.New("server stopping")
)

// Server is one raftkv node: its Raft node, store, state machine,
// transport and HTTP servers.
type Server struct {
	cfg       Config
	log       *slog.Logger
	initial   []int64 // the cluster's first voters: the membership before entry 1
	db        *raftstore.DB
	store     *raftstore.Store
	node      raft.Node
	transport *Transport
	// session and seq make request ids unique across processes.
	session uint64
	seq     atomic.Uint64

	mu         sync.RWMutex // guards state, applied, addrs and stateError
	state      *kvState
	applied    int64
	addrs      map[int64]string // every peer address known
	stateError error            // why the loop stopped, if it failed

	snapIndex int64 // the loop's own: the index of the last snapshot

	waitMu  sync.Mutex
	writes  map[uint64]chan applyResult // by seq
	reads   map[uint64]chan int64       // by read seq
	appWait []appliedWaiter

	clientSrv, peerSrv *http.Server
	clientLn, peerLn   net.Listener
	stop, done         chan struct{}
	promoterDone       chan struct{}

	// Linearizable reads go in rounds: reads that arrive while one round
	// asks the leader for a read index share the next round's.
	readMu    sync.Mutex
	nextRound *readRound
	readWake  chan struct{} // a read waits for nextRound
	readsDone chan struct{}
	closeOnce sync.Once
}

// applyResult is what applying a proposal gave: its index, and for a
// membership change the membership after it, or why it was refused.
type applyResult struct {
	index   int64
	refused error
	members membership
}

type appliedWaiter struct {
	index int64
	ch    chan struct{}
}

// membership is what the members routes answer: the membership after the
// change at Index, the addresses of its nodes, and the cluster's first
// voters (from which a joining node replays the log).
type membership struct {
	ID       int64            `json:"id,omitempty"`
	Index    int64            `json:"index"`
	Voters   []int64          `json:"voters"`
	Learners []int64          `json:"learners"`
	Peers    map[int64]string `json:"peers"`
	Initial  []int64          `json:"initial"`
}

// Start opens the server's store, starts or restarts its node, and serves
// peers and clients until Close.
func Start(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, addrs: map[int64]string{},
		writes: map[uint64]chan applyResult{}, reads: map[uint64]chan int64{},
		stop: make(chan struct{}), done: make(chan struct{}), promoterDone: make(chan struct{}),
		nextRound: newReadRound(), readWake: make(chan struct{}, 1), readsDone: make(chan struct{}),
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.session = binary.LittleEndian.Uint64(b[:])
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.transport = NewTransport(TransportConfig{
		ID:      cfg.ID,
		Deliver: func(ctx context.Context, m raftpb.Message) error { return s.node.Step(ctx, m) },
		Unreachable: func(id int64) {
			s.node.ReportUnreachable(id)
		},
		SnapshotDone: func(id int64, failed bool) {
			if failed {
				s.node.ReportSnapshot(id, raft.SnapshotFailure)
			} else {
				s.node.ReportSnapshot(id, raft.SnapshotFinish)
			}
		},
		Logger: s.log,
	})
	if err := s.startNode(); err != nil {
		s.closeListeners()
		s.transport.Close()
		return nil, err
	}
	s.serve()
	go s.run()
	go s.promoteLearners()
	go s.readRounds()
	s.log.Info("raftkv started", "id", cfg.ID, "listen", s.clientLn.Addr().String(), "peer-listen", s.peerLn.Addr().String())
	return s, nil
}

func (cfg *Config) check() error {
	switch {
	case cfg.ID <= 0:
		return fmt.Errorf("raftkv: id must be positive, got %d", cfg.ID)
	case cfg.DataDir == "":
		return errors.New("raftkv: a data directory is required")
	case cfg.Listen == "":
		return errors.New("raftkv: a client listen address is required")
	case len(cfg.Cluster) == 0 && cfg.Join == "":
		return errors.New("raftkv: give the cluster's first members, or a member to join through")
	}
	if cfg.PeerListen == "" {
		cfg.PeerListen = cfg.Cluster[cfg.ID]
		if cfg.PeerListen == "" {
			return fmt.Errorf("raftkv: no peer listen address: node %d is not in the cluster and none was given", cfg.ID)
		}
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = 10_000
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("node", cfg.ID)
	return nil
}

func (s *Server) listen() error {
	var err error
	if s.peerLn, err = net.Listen("tcp", s.cfg.PeerListen); err != nil {
		return fmt.Errorf("raftkv: peer listener: %w", err)
	}
	if s.clientLn, err = net.Listen("tcp", s.cfg.Listen); err != nil {
		s.peerLn.Close()
		return fmt.Errorf("raftkv: client listener: %w", err)
	}
	return nil
}

func (s *Server) closeListeners() {
	s.peerLn.Close()
	s.clientLn.Close()
}

// startNode opens the store and starts the node: a new one from the
// cluster flag or from joining, a known one from what the store returns.
func (s *Server) startNode() error {
	db, err := raftstore.Open(filepath.Join(s.cfg.DataDir, "raft"), nil)
	if err != nil {
		return err
	}
	store, st, err := db.Group(groupID)
	if err != nil {
		db.Close()
		return err
	}
	s.db, s.store = db, store
	opts := []raft.Option{raft.WithStorage(store), raft.WithLogger(s.log)}
	if st.Bootstrapped {
		err = s.restart(st, opts)
	} else {
		err = s.bootstrap(opts)
	}
	if err != nil {
		db.Close()
	}
	return err
}

// bootstrap starts a new node: one of the cluster's first members, or
// one that joins through a member.
func (s *Server) bootstrap(opts []raft.Option) error {
	rec := bootRecord{Initial: slices.Sorted(maps.Keys(s.cfg.Cluster)), Peers: s.cfg.Cluster}
	voters, learners, joining := rec.Initial, []int64(nil), int64(0)
	if s.cfg.Join != "" {
		m, err := s.join()
		if err != nil {
			return err
		}
		rec = bootRecord{Initial: m.Initial, Peers: m.Peers}
		voters, learners, joining = m.Voters, m.Learners, m.Index
	} else if _, ok := s.cfg.Cluster[s.cfg.ID]; !ok {
		// All first members must start with the same voters.
		return fmt.Errorf("raftkv: node %d is not in the cluster's first members; a new node joins with -join", s.cfg.ID)
	}
	if err := writeBootRecord(s.cfg.DataDir, rec); err != nil {
		return err
	}
	if err := s.store.Bootstrap(voters, learners, joining); err != nil {
		return err
	}
	s.initial, s.state = rec.Initial, newKVState(rec.Initial)
	s.learnAddrs(rec.Peers)
	s.node = raft.StartNode(s.cfg.ID, voters, electionTicks, heartbeatTicks,
		append(opts, raft.Learners(learners...), raft.Joining(joining))...)
	return nil
}

// restart restarts a node from its store and its state machine from the
// store's snapshot.
func (s *Server) restart(st raftstore.State, opts []raft.Option) error {
	rec, err := readBootRecord(s.cfg.DataDir)
	if err != nil {
		return err
	}
	for id, a := range s.cfg.Cluster {
		if _, ok := rec.Peers[id]; !ok {
			rec.Peers[id] = a
		}
	}
	s.initial, s.state = rec.Initial, newKVState(rec.Initial)
	s.learnAddrs(rec.Peers)
	if st.Snapshot != nil {
		if err := s.restore(*st.Snapshot); err != nil {
			return err
		}
	}
	s.node = raft.RestartNode(s.cfg.ID, st.Peers, electionTicks, heartbeatTicks, st.Snapshot, st.HardState, nil,
		append(opts, raft.Learners(st.Learners...), raft.Joining(st.Joining))...)
	return nil
}

// learnAddrs gives the transport the peer addresses it lacks or that
// changed.
func (s *Server) learnAddrs(addrs map[int64]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, a := range addrs {
		if s.addrs[id] == a {
			continue
		}
		s.addrs[id] = a
		if id != s.cfg.ID {
			s.transport.SetPeer(id, a)
		}
	}
}

// restore replaces the state machine with a snapshot's.
func (s *Server) restore(snap raftpb.Snapshot) error {
	st, err := unmarshalKVState(snap.Data)
	if err != nil {
		return fmt.Errorf("raftkv: snapshot at %d: %w", snap.Index, err)
	}
	s.mu.Lock()
	s.state, s.applied = st, snap.Index
	s.mu.Unlock()
	s.snapIndex = snap.Index
	addrs := map[int64]string{}
	for id, m := range st.members {
		addrs[id] = m.addr
	}
	s.learnAddrs(addrs)
	return nil
}

func (s *Server) serve() {
	s.peerSrv = &http.Server{Handler: s.transport.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.clientSrv = &http.Server{
		Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: s.cfg.RequestTimeout + 5*time.Second, IdleTimeout: 2 * time.Minute,
	}
	go s.peerSrv.Serve(s.peerLn)
	go s.clientSrv.Serve(s.clientLn)
}

// ClientAddr and PeerAddr are the addresses the server listens on.
func (s *Server) ClientAddr() string { return s.clientLn.Addr().String() }
func (s *Server) PeerAddr() string   { return s.peerLn.Addr().String() }

// Done is closed when the server's loop has ended: after Close, or when
// the store failed (Err says why).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why the loop ended on its own, nil after Close.
func (s *Server) Err() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stateError
}

// Close stops serving, stops the node and closes the store.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.clientSrv.Shutdown(ctx)
		close(s.stop)
		<-s.done
		<-s.promoterDone
		<-s.readsDone
		s.transport.Close()
		_ = s.peerSrv.Close()
		s.node.Stop()
		err = s.db.Close()
	})
	return err
}

// run is the application's loop: tick, and for each Ready persist it,
// send its messages, apply its committed entries, answer reads, compact.
func (s *Server) run() {
	defer close(s.done)
	ticker := time.NewTicker(s.cfg.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			s.node.Tick()
		case rd := <-s.node.Ready():
			if err := s.handle(rd); err != nil {
				s.log.Error("raftkv: stopping", "err", err)
				s.mu.Lock()
				s.stateError = err
				s.mu.Unlock()
				return
			}
		case <-s.stop:
			return
		}
	}
}

func (s *Server) handle(rd raft.Ready) error {
	// A leader's appends leave first: its followers write them while it
	// does. The other messages wait until the Ready is persisted.
	early, afterPersist := rd.SplitMessages()
	s.transport.Send(early)
	applied := false
	if applyWhilePersisting(rd) {
		// Committed entries are on a quorum's disks already: they are
		// applied, and their writers answered, while the Ready is written.
		saved := make(chan error, 1)
		go func() { saved <- s.store.Save(rd) }()
		s.applyEntries(rd.CommittedEntries)
		applied = true
		if err := <-saved; err != nil {
			return err
		}
	} else if err := s.store.Save(rd); err != nil {
		return err
	}
	s.transport.Send(afterPersist)
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := s.restore(rd.Snapshot); err != nil {
			return err
		}
		s.wakeApplied(rd.Snapshot.Index)
	}
	if !applied {
		s.applyEntries(rd.CommittedEntries)
	}
	if n := len(rd.CommittedEntries); n > 0 {
		if last := rd.CommittedEntries[n-1].Index; last-s.snapIndex >= s.cfg.SnapshotEvery {
			s.compact(last)
		}
	}
	for _, rs := range rd.ReadStates {
		s.answerRead(rs)
	}
	return nil
}

// applyWhilePersisting reports whether rd's committed entries may be
// applied while rd is persisted: there is neither a snapshot to restore
// first nor a config entry, whose membership call the library takes only
// from a persisted Ready.
func applyWhilePersisting(rd raft.Ready) bool {
	n := len(rd.CommittedEntries)
	return n > 0 && raft.IsEmptySnap(rd.Snapshot) && rd.CommittedEntries[n-1].Type != raftpb.EntryConfig
}

// applyEntries applies committed entries, in order, and wakes the
// requests waiting for them.
func (s *Server) applyEntries(ents []raftpb.Entry) {
	n := len(ents)
	if n == 0 {
		return
	}
	for _, e := range ents {
		s.apply(e)
	}
	last := ents[n-1].Index
	// The state machine lives in memory and is rebuilt from the snapshot
	// at restart: the applied index is not persisted.
	s.mu.Lock()
	s.applied = last
	s.mu.Unlock()
	s.wakeApplied(last)
}

// apply applies one committed entry; a proposal of this process is
// answered. A malformed entry (no server writes one) is skipped on every
// node alike.
func (s *Server) apply(e raftpb.Entry) {
	if len(e.Data) == 0 {
		return // a new leader's empty entry
	}
	c, err := unmarshalCommand(e.Data)
	if err != nil {
		s.log.Error("raftkv: skipping entry", "index", e.Index, "err", err)
		return
	}
	s.mu.Lock()
	first := s.state.firstTime(c.id)
	if first && e.Type == raft.EntryNormal {
		if c.op == opWrites {
			// Every node stops at the same malformed write.
			err = eachWrite(c.value, s.state.write)
		} else {
			s.state.write(c)
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Error("raftkv: skipping the rest of an entry", "index", e.Index, "err", err)
	}
	res := applyResult{index: e.Index}
	if e.Type == raft.EntryConfig {
		res.refused = s.changeMembership(c, e.Index, first)
		res.members = s.membershipAt(e.Index)
	}
	if c.id.session == s.session {
		s.waitMu.Lock()
		ch := s.writes[c.id.seq]
		delete(s.writes, c.id.seq)
		s.waitMu.Unlock()
		if ch != nil {
			ch <- res
		}
	}
}

// changeMembership decides a membership change from the entry and the
// state applied before it, as every node does, and makes it. (On a node
// that joined, the library ignores the changes up to the one that added
// it: its membership is already past them.)
func (s *Server) changeMembership(c command, index int64, first bool) error {
	if !first {
		return errors.New("a duplicate of a change already applied")
	}
	s.mu.Lock()
	err := s.state.changeMembers(c, index)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	switch c.op {
	case opAddLearner:
		s.node.AddLearner(c.node)
		s.learnAddrs(map[int64]string{c.node: string(c.value)})
	case opPromote:
		s.node.PromoteLearner(c.node)
	case opRemove:
		// The transport keeps the removed node's address: a removed
		// leader leads until the others acknowledge its removal.
		s.node.RemoveNode(c.node)
	}
	return nil
}

// membershipAt is the membership of the state machine, which has applied
// the log up to index.
func (s *Server) membershipAt(index int64) membership {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.describe(index, s.state.voters, s.state.learners)
}

// describe makes a membership answer; s.mu must be held.
func (s *Server) describe(index int64, voters, learners []int64) membership {
	m := membership{
		Index: index, Voters: slices.Clone(nonNil(voters)), Learners: slices.Clone(nonNil(learners)),
		Peers: map[int64]string{}, Initial: s.initial,
	}
	for _, id := range slices.Concat(voters, learners) {
		if a, ok := s.addrs[id]; ok {
			m.Peers[id] = a
		}
	}
	return m
}

// compact snapshots the state machine at index, all entries up to it being
// applied; the node hands the snapshot to the store.
func (s *Server) compact(index int64) {
	s.mu.RLock()
	data := s.state.marshal()
	voters := slices.Clone(s.state.voters)
	s.mu.RUnlock()
	// Refused or not, the next attempt is SnapshotEvery entries later.
	s.snapIndex = index
	if err := s.node.Compact(index, voters, data); err != nil {
		s.log.Warn("raftkv: compaction refused", "index", index, "err", err)
	}
}

// promoteLearners runs on every node; the leader promotes each learner
// whose log has caught up with its commit index.
func (s *Server) promoteLearners() {
	defer close(s.promoterDone)
	ticker := time.NewTicker(electionTicks * s.cfg.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
		case <-s.stop:
			return
		}
		st := s.node.Status()
		if st.RaftState != raft.StateLeader {
			continue
		}
		for _, id := range st.Learners {
			if pr, ok := st.Progress[id]; ok && pr.Match >= st.Commit {
				ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
				res, err := s.propose(ctx, command{op: opPromote, node: id})
				cancel()
				if err == nil && res.refused == nil {
					s.log.Info("raftkv: promoted learner", "learner", id, "index", res.index)
				}
				break
			}
		}
	}
}

// nonNil makes an empty list read [] in JSON, not null.
func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}
