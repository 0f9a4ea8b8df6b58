package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client speaks raftkv's client API (package raftkv's documentation) to
// any node, by its client address. The zero value is not usable; use
// NewClient. A Client may be used by several goroutines at once.
type Client struct {
	http *http.Client
}

// NewClient returns a Client with its own connection pool. Every call
// takes a context: its deadline is the client-side timeout.
func NewClient() *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	// Redirects are answers to see, not to follow.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{http: &http.Client{Transport: tr, CheckRedirect: noRedirect}}
}

// CloseIdle closes the connections the client keeps open.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// Response is a node's answer: its status and its body (for an error
// status, the one-line message).
type Response struct {
	Status int
	Body   string
	// ContentType is the response's Content-Type header.
	ContentType string
}

func (r Response) String() string {
	body := r.Body
	if len(body) > 200 {
		body = body[:200] + fmt.Sprintf("... (%d bytes)", len(r.Body))
	}
	return fmt.Sprintf("%d %q", r.Status, body)
}

// Do sends method path (path may hold a query) with body (nil: none) to
// the node at addr. An error means no response was read: the request may
// or may not have reached the node, unless NotSent says it did not.
func (c *Client) Do(ctx context.Context, method, addr, path string, body []byte) (Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		return Response{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("e2e: %s %s: reading the body: %w", method, path, err)
	}
	return Response{Status: resp.StatusCode, Body: string(b), ContentType: resp.Header.Get("Content-Type")}, nil
}

// NotSent reports whether err, from Do, says that the request never
// reached a node: the connection was refused or could not be made.
func NotSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// KeyPath returns the path of key under /kv/.
func KeyPath(key string) string { return "/kv/" + url.PathEscape(key) }

// Put writes value under key: 204 once committed and applied.
func (c *Client) Put(ctx context.Context, addr, key, value string) (Response, error) {
	return c.Do(ctx, http.MethodPut, addr, KeyPath(key), []byte(value))
}

// Get reads key: 200 with the value, 404 when absent. It is linearizable
// unless stale, which reads the node's local state.
func (c *Client) Get(ctx context.Context, addr, key string, stale bool) (Response, error) {
	p := KeyPath(key)
	if stale {
		p += "?stale=true"
	}
	return c.Do(ctx, http.MethodGet, addr, p, nil)
}

// Delete removes key: 204 once committed and applied.
func (c *Client) Delete(ctx context.Context, addr, key string) (Response, error) {
	return c.Do(ctx, http.MethodDelete, addr, KeyPath(key), nil)
}

// Status is a node's GET /status.
type Status struct {
	ID       uint64            `json:"id"`
	Term     uint64            `json:"term"`
	Leader   uint64            `json:"leader"` // 0: none known
	Role     string            `json:"role"`
	Commit   uint64            `json:"commit"`
	Applied  uint64            `json:"applied"`
	Snapshot uint64            `json:"snapshot"`
	Voters   []uint64          `json:"voters"`
	Learners []uint64          `json:"learners"`
	Peers    map[uint64]string `json:"peers"`
}

// IsLeader reports whether the node says it is the leader.
func (s Status) IsLeader() bool { return s.ID != 0 && s.Leader == s.ID }

// Status returns the node's /status.
func (c *Client) Status(ctx context.Context, addr string) (Status, error) {
	var s Status
	resp, err := c.Do(ctx, http.MethodGet, addr, "/status", nil)
	if err != nil {
		return s, err
	}
	if resp.Status != http.StatusOK {
		return s, fmt.Errorf("e2e: GET /status on %s: %v", addr, resp)
	}
	if err := json.Unmarshal([]byte(resp.Body), &s); err != nil {
		return s, fmt.Errorf("e2e: GET /status on %s: %w in %q", addr, err, resp.Body)
	}
	return s, nil
}

// Membership is the answer to POST and DELETE /members/{id}.
type Membership struct {
	ID       uint64            `json:"id"`
	Index    uint64            `json:"index"` // the entry of the change
	Voters   []uint64          `json:"voters"`
	Learners []uint64          `json:"learners"`
	Peers    map[uint64]string `json:"peers"`
}

// AddMember asks the node at addr to add node id, reachable by its peers
// at peer, as a learner. The error is set for any answer but a 200 with a
// Membership; the Response is the answer, if any.
func (c *Client) AddMember(ctx context.Context, addr string, id uint64, peer string) (Membership, Response, error) {
	body, _ := json.Marshal(struct {
		Peer string `json:"peer"`
	}{peer})
	return c.membership(ctx, http.MethodPost, addr, id, body)
}

// RemoveMember asks the node at addr to remove node id, as AddMember.
func (c *Client) RemoveMember(ctx context.Context, addr string, id uint64) (Membership, Response, error) {
	return c.membership(ctx, http.MethodDelete, addr, id, nil)
}

func (c *Client) membership(ctx context.Context, method, addr string, id uint64, body []byte) (Membership, Response, error) {
	var m Membership
	path := "/members/" + strconv.FormatUint(id, 10)
	resp, err := c.Do(ctx, method, addr, path, body)
	if err != nil {
		return m, resp, err
	}
	if resp.Status != http.StatusOK {
		return m, resp, fmt.Errorf("e2e: %s %s on %s: %v", method, path, addr, resp)
	}
	if err := json.Unmarshal([]byte(resp.Body), &m); err != nil {
		return m, resp, fmt.Errorf("e2e: %s %s on %s: %w in %q", method, path, addr, err, resp.Body)
	}
	return m, resp, nil
}

// Block has the node at addr drop every message to and from the peers
// ids, and only those (none: heal), through POST /debug/faults, which a
// node serves only with -test-faults.
func (c *Client) Block(ctx context.Context, addr string, ids []uint64) error {
	if ids == nil {
		ids = []uint64{}
	}
	body, _ := json.Marshal(struct {
		Block []uint64 `json:"block"`
	}{ids})
	resp, err := c.Do(ctx, http.MethodPost, addr, "/debug/faults", body)
	if err != nil {
		return err
	}
	if resp.Status/100 != 2 {
		return fmt.Errorf("e2e: POST /debug/faults %s on %s: %v", body, addr, resp)
	}
	return nil
}

// IDs formats ids as "1,2,3".
func IDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ",")
}
