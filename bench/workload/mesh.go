package workload

import (
	"context"
	"sync"
)

// Mesh passes messages between the nodes of one process: each node has an
// unbounded inbox drained by its own goroutine, so a sender never blocks
// (the libraries' flow control bounds what is queued). Every adapter whose
// library leaves transport to the application uses it, so they all pay the
// same for it.
type Mesh[M any] struct {
	inboxes map[uint64]*inbox[M]
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

type inbox[M any] struct {
	mu      sync.Mutex
	queue   []M
	spare   []M
	pending chan struct{} // holds a token while queue is not empty
}

// NewMesh starts a mesh between ids; deliver is called for each message
// sent to a node, from that node's inbox goroutine, in the order sent.
func NewMesh[M any](ids []uint64, deliver func(ctx context.Context, to uint64, m M)) *Mesh[M] {
	ctx, cancel := context.WithCancel(context.Background())
	mesh := &Mesh[M]{inboxes: make(map[uint64]*inbox[M], len(ids)), cancel: cancel}
	for _, id := range ids {
		in := &inbox[M]{pending: make(chan struct{}, 1)}
		mesh.inboxes[id] = in
		mesh.wg.Add(1)
		go func() {
			defer mesh.wg.Done()
			in.drain(ctx, func(m M) { deliver(ctx, id, m) })
		}()
	}
	return mesh
}

// Send queues m for node to; a message to an unknown node is dropped.
func (mesh *Mesh[M]) Send(to uint64, m M) {
	in := mesh.inboxes[to]
	if in == nil {
		return
	}
	in.mu.Lock()
	in.queue = append(in.queue, m)
	in.mu.Unlock()
	select {
	case in.pending <- struct{}{}:
	default:
	}
}

// Close stops delivering and waits for the inbox goroutines.
func (mesh *Mesh[M]) Close() {
	mesh.cancel()
	mesh.wg.Wait()
}

func (in *inbox[M]) drain(ctx context.Context, deliver func(M)) {
	for {
		select {
		case <-in.pending:
		case <-ctx.Done():
			return
		}
		in.mu.Lock()
		batch := in.queue
		in.queue = in.spare[:0]
		in.mu.Unlock()
		for i := range batch {
			deliver(batch[i])
		}
		clear(batch) // drop references before the array is reused
		in.spare = batch
	}
}

// Waiters lets proposers wait until the entry carrying their proposal id
// is applied.
type Waiters struct {
	mu      sync.Mutex
	waiting map[uint64]chan struct{}
}

// NewWaiters returns an empty set of waiters.
func NewWaiters() *Waiters {
	return &Waiters{waiting: make(map[uint64]chan struct{})}
}

// Register returns a channel closed when the proposal data is applied.
// Register before proposing: the entry may be applied before Propose
// returns.
func (w *Waiters) Register(data []byte) <-chan struct{} {
	id, _ := ProposalID(data)
	ch := make(chan struct{})
	w.mu.Lock()
	w.waiting[id] = ch
	w.mu.Unlock()
	return ch
}

// Cancel forgets a registration whose proposal failed.
func (w *Waiters) Cancel(data []byte) {
	id, _ := ProposalID(data)
	w.mu.Lock()
	delete(w.waiting, id)
	w.mu.Unlock()
}

// Applied wakes whoever waits for the proposal data, if anyone does.
func (w *Waiters) Applied(data []byte) {
	id, ok := ProposalID(data)
	if !ok {
		return
	}
	w.mu.Lock()
	ch := w.waiting[id]
	delete(w.waiting, id)
	w.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// ProposeAndWait registers data, proposes it with propose and waits until
// it is applied or ctx ends.
func (w *Waiters) ProposeAndWait(ctx context.Context, data []byte, propose func(context.Context, []byte) error) error {
	applied := w.Register(data)
	if err := propose(ctx, data); err != nil {
		w.Cancel(data)
		return err
	}
	select {
	case <-applied:
		return nil
	case <-ctx.Done():
		w.Cancel(data)
		return ctx.Err()
	}
}
