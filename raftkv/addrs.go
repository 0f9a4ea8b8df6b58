package raftkv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// bootFile holds, in the data directory, how a node started: the
// cluster's first voters (the membership before entry 1, from which the
// state machine replays the log) and the peer addresses it started with
// (the log names only the nodes added through it).
const bootFile = "boot.json"

type bootRecord struct {
	Initial []int64          `json:"initial"`
	Peers   map[int64]string `json:"peers"`
}

func writeBootRecord(dir string, rec bootRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, bootFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := syncPath(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, bootFile)); err != nil {
		return err
	}
	return syncPath(dir) // the rename
}

// syncPath flushes the file or directory name to disk.
func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readBootRecord(dir string) (bootRecord, error) {
	name := filepath.Join(dir, bootFile)
	b, err := os.ReadFile(name)
	if err != nil {
		return bootRecord{}, fmt.Errorf("raftkv: the store was started but %w", err)
	}
	var rec bootRecord
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Initial) == 0 {
		return bootRecord{}, fmt.Errorf("raftkv: %s is damaged: %q", name, b)
	}
	if rec.Peers == nil {
		rec.Peers = map[int64]string{}
	}
	return rec, nil
}

// join asks the member at cfg.Join to add this node as a learner and
// returns its answer: the membership once the change is applied.
func (s *Server) join() (membership, error) {
	body, _ := json.Marshal(joinRequest{Peer: s.cfg.PeerListen})
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.cfg.RequestTimeout)
	defer cancel()
	url := fmt.Sprintf("http://%s/members/%d", s.cfg.Join, s.cfg.ID)
	var last error
	for ctx.Err() == nil {
		m, err := postJoin(ctx, url, body)
		if err == nil {
			if err := checkJoinAnswer(m, s.cfg.ID); err != nil {
				return membership{}, fmt.Errorf("raftkv: joining through %s: %w", s.cfg.Join, err)
			}
			return m, nil
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return membership{}, fmt.Errorf("raftkv: joining through %s: %w", s.cfg.Join, last)
}

func postJoin(ctx context.Context, url string, body []byte) (membership, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return membership{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return membership{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return membership{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return membership{}, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var m membership
	if err := json.Unmarshal(b, &m); err != nil {
		return membership{}, fmt.Errorf("answer %q: %w", b, err)
	}
	return m, nil
}

// checkJoinAnswer checks that m adds node id as a learner.
func checkJoinAnswer(m membership, id int64) error {
	switch {
	case m.ID != id:
		return fmt.Errorf("the answer is about node %d", m.ID)
	case m.Index <= 0:
		return fmt.Errorf("the answer names no index (%d)", m.Index)
	case !slices.Contains(m.Learners, id) || slices.Contains(m.Voters, id):
		return fmt.Errorf("the answer does not make node %d a learner: voters %v, learners %v", id, m.Voters, m.Learners)
	case len(m.Initial) == 0:
		return errors.New("the answer names no first voters")
	}
	return nil
}
