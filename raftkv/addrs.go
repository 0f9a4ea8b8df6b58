package raftkv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// addrsFile holds, in the data directory, the peer addresses a node
// started with (from -cluster, or from the member it joined through): the
// log names only the nodes added through it.
const addrsFile = "peers.json"

func writeAddrs(dir string, addrs map[int64]string) error {
	b, err := json.Marshal(addrs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, addrsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, addrsFile))
}

func readAddrs(dir string) (map[int64]string, error) {
	addrs := map[int64]string{}
	b, err := os.ReadFile(filepath.Join(dir, addrsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return addrs, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &addrs); err != nil {
		return nil, fmt.Errorf("raftkv: %s: %w", filepath.Join(dir, addrsFile), err)
	}
	return addrs, nil
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
