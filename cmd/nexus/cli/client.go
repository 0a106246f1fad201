package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// client talks to the admin REST API of one node and writes the output of
// one subcommand.
type client struct {
	base    string // scheme://host:port, no trailing slash
	addr    string // --http-addr as given, for error messages
	token   string
	json    bool   // --format json
	read    string // "consistent", "stale" or "" for the local default
	timeout time.Duration
	hc      *http.Client
	stdin   io.Reader
	out     io.Writer
	errOut  io.Writer // the command's own messages (nexus lock)
}

// reply is a successful (2xx) API answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// apiError is an API answer outside 2xx.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.message, e.status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", e.message, e.code, e.status)
}

// baseURL turns HOST:PORT, with or without an http:// or https:// scheme,
// into the base URL of the API.
func baseURL(addr string) (string, error) {
	a := addr
	if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
		a = "http://" + a
	}
	u, err := url.Parse(a)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("--http-addr: %q is not HOST:PORT", addr)
	}
	return strings.TrimRight(a, "/"), nil
}

// pathOf builds a request path from segments, each escaped on its own.
func pathOf(segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString("/")
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// configPath is the path of a config key; the key's slashes stay slashes.
func configPath(key string) string {
	return pathOf(append([]string{"config"}, strings.Split(key, "/")...)...)
}

// encodeQuery encodes q in key order; an empty value is written as a bare
// key, as the API's flags expect (?consistent).
func encodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		for _, v := range q[k] {
			if v == "" {
				parts = append(parts, url.QueryEscape(k))
			} else {
				parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
			}
		}
	}
	return strings.Join(parts, "&")
}

// send makes one request and returns the response when it is a 2xx; the
// caller closes its body. Other statuses become an *apiError.
func (c *client) send(method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	return c.sendWith(context.Background(), c.hc, method, path, q, body, contentType)
}

// sendWith is send bounded by ctx through hc (a blocking query needs a
// longer timeout than --timeout).
func (c *client) sendWith(ctx context.Context, hc *http.Client, method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := c.base + path
	if s := encodeQuery(q); s != "" {
		u += "?" + s
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("X-Nexus-Token", c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.transportError(method, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, decodeAPIError(resp.StatusCode, b)
	}
	return resp, nil
}

func (c *client) transportError(method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			msg := fmt.Sprintf("no answer from nexus at %s within %s", c.addr, c.timeout)
			if method != http.MethodGet {
				msg += "; the change may or may not have been applied"
			}
			return errors.New(msg)
		}
		err = ue.Err
	}
	return fmt.Errorf("cannot reach nexus at %s: %v", c.addr, err)
}

func decodeAPIError(status int, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Error.Code != "" || e.Error.Message != "") {
		msg := e.Error.Message
		if msg == "" {
			msg = http.StatusText(status)
		}
		return &apiError{status: status, code: e.Error.Code, message: msg}
	}
	msg := truncate(strings.TrimSpace(string(body)), 200)
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &apiError{status: status, message: msg}
}

// call makes one request and reads the whole answer. A non-nil body is sent
// as JSON; a json.RawMessage body is sent as it is and must be valid JSON.
func (c *client) call(method, path string, q url.Values, body any) (*reply, error) {
	return c.callWith(context.Background(), c.hc, method, path, q, body)
}

// callWith is call bounded by ctx through hc.
func (c *client) callWith(ctx context.Context, hc *http.Client, method, path string, q url.Values, body any) (*reply, error) {
	var rd io.Reader
	switch raw := body.(type) {
	case nil:
	case json.RawMessage:
		rd = bytes.NewReader(raw) // as the user wrote it
	default:
		b, err := encodeJSON(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.sendWith(ctx, hc, method, path, q, rd, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.transportError(method, err)
	}
	return &reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// encodeJSON is json.Marshal without escaping <, > and &, which the API
// does not need.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// get is a read: it carries the --consistent or --stale choice.
func (c *client) get(path string, q url.Values) (*reply, error) {
	return c.call(http.MethodGet, path, c.readQuery(q), nil)
}

// readQuery returns a copy of q with the --consistent or --stale choice.
func (c *client) readQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	if c.read != "" {
		out.Set(c.read, "")
	}
	return out
}

// list reads every page of a list endpoint, following X-Nexus-Next with
// ?after=CURSOR. limit > 0 stops once that many items were read.
func (c *client) list(path string, q url.Values, limit int) ([]json.RawMessage, error) {
	q = c.readQuery(q)
	all := []json.RawMessage{}
	seen := map[string]bool{}
	for {
		r, err := c.call(http.MethodGet, path, q, nil)
		if err != nil {
			return nil, err
		}
		var page []json.RawMessage
		if err := json.Unmarshal(r.body, &page); err != nil {
			return nil, fmt.Errorf("unexpected answer from %s: %v", path, err)
		}
		all = append(all, page...)
		if limit > 0 && len(all) >= limit {
			return all[:limit], nil
		}
		next := r.header.Get("X-Nexus-Next")
		if next == "" {
			return all, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("paging %s: the API repeated cursor %q", path, next)
		}
		seen[next] = true
		q.Set("after", next)
	}
}

// readInput reads a file named on the command line; "-" is stdin.
func (c *client) readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(c.stdin)
	}
	return os.ReadFile(name)
}

// readJSONFile reads a JSON request body from a file ("-" = stdin).
func (c *client) readJSONFile(name string) (json.RawMessage, error) {
	b, err := c.readInput(name)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		if name == "-" {
			name = "stdin"
		}
		return nil, fmt.Errorf("%s: not valid JSON", name)
	}
	return json.RawMessage(b), nil
}
