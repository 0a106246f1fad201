// Package client is the Nexus REST client of nexus-jepsen: one call per
// operation, never retried, every answer classified ok/fail/info
// (design/api.md: 2xx applied, 503 no_leader not applied, 504
// outcome_unknown unknown).
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Options configure a Client.
type Options struct {
	Timeout         time.Duration // bound on one request (required)
	MaxConnsPerNode int           // idle connections kept per node
	// StaleReads drops ?consistent from reads. Nexus does not promise
	// linearizable answers then: the checkers should find anomalies under
	// partitions, which is how this option proves that they can fail.
	StaleReads bool
}

// Client sends requests to the nodes. Safe for concurrent use.
type Client struct {
	hc      *http.Client
	timeout time.Duration
	stale   bool
	prefix  string       // request id prefix, unique per client
	seq     atomic.Int64 // request counter
}

// New makes a client.
func New(o Options) *Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: max(o.MaxConnsPerNode, 1),
		IdleConnTimeout:     30 * time.Second,
		// No automatic retries: http.Transport retries only requests it
		// considers replayable (GET, HEAD, ...), and reads may be retried
		// harmlessly; writes (PUT/POST/DELETE) are never replayed.
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &Client{hc: &http.Client{Transport: tr}, timeout: o.Timeout, stale: o.StaleReads, prefix: "jp-" + hex.EncodeToString(b) + "-"}
}

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends one request to http://addr+path and classifies the outcome.
func (c *Client) Do(ctx context.Context, kind Kind, method, addr, path string, body []byte) Result {
	return c.DoID(ctx, kind, method, addr, path, body, "")
}

// DoID is Do with the X-Request-ID id ("" for the next id of this
// client). The harness's own writes use ids outside the clients' prefixes,
// so that the audit checker does not take their records for a workload's.
func (c *Client) DoID(ctx context.Context, kind Kind, method, addr, path string, body []byte, id string) Result {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		return classify(kind, 0, nil, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// X-Request-ID ties the op in the history to the node logs and to its
	// audit records.
	if id == "" {
		id = c.prefix + strconv.FormatInt(c.seq.Add(1), 10)
	}
	req.Header.Set("X-Request-ID", id)
	r := c.do(kind, req)
	r.RequestID = id
	return r
}

func (c *Client) do(kind Kind, req *http.Request) Result {
	resp, err := c.hc.Do(req)
	if err != nil {
		return classify(kind, 0, nil, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return classify(kind, 0, nil, err)
	}
	return classify(kind, resp.StatusCode, b, nil)
}
