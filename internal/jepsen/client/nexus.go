package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// Entry is a config entry as the API returns it.
type Entry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ModifyIndex uint64          `json:"modify_index"`
}

// IntValue decodes the entry's value as an integer (the register workload
// writes only integers).
func (e *Entry) IntValue() (int64, error) {
	var v int64
	err := json.Unmarshal(e.Value, &v)
	return v, err
}

// ConfigResult is the outcome of a config operation.
type ConfigResult struct {
	Result
	Present bool  // reads: the key exists
	Entry   Entry // when Present, or after an acknowledged write
}

func keyPath(key string) string { return "/config/" + url.PathEscape(key) }

// consistent is the query string of a linearizable read ("" with
// Options.StaleReads).
func (c *Client) consistent() string {
	if c.stale {
		return ""
	}
	return "?consistent"
}

// ReadConfig reads key with ?consistent (linearizable).
func (c *Client) ReadConfig(ctx context.Context, addr, key string) ConfigResult {
	r := ConfigResult{Result: c.Do(ctx, Read, http.MethodGet, addr, keyPath(key)+c.consistent(), nil)}
	if r.Type == history.OK && r.Status == http.StatusOK {
		r.Present = true
		r.decode(Read)
	}
	return r
}

// WriteConfig sets key to value unconditionally (PUT /config/{key}).
func (c *Client) WriteConfig(ctx context.Context, addr, key string, value int64) ConfigResult {
	r := ConfigResult{Result: c.Do(ctx, Write, http.MethodPut, addr, keyPath(key), []byte(strconv.FormatInt(value, 10)))}
	r.decode(Write)
	return r
}

// CASConfig sets key to value only if its modify_index is expect (0: only if
// absent), through PUT /config/{key}?cas=N or, with viaPost, POST /config.
func (c *Client) CASConfig(ctx context.Context, addr, key string, value int64, expect uint64, viaPost bool) ConfigResult {
	var res Result
	if viaPost {
		body, _ := json.Marshal(struct {
			Key   string `json:"key"`
			Value int64  `json:"value"`
			CAS   uint64 `json:"cas"`
		}{key, value, expect})
		res = c.Do(ctx, Write, http.MethodPost, addr, "/config", body)
	} else {
		res = c.Do(ctx, Write, http.MethodPut, addr, keyPath(key)+"?cas="+strconv.FormatUint(expect, 10),
			[]byte(strconv.FormatInt(value, 10)))
	}
	r := ConfigResult{Result: res}
	r.decode(Write)
	return r
}

// decode parses the entry of a 2xx answer. An unreadable body fails a
// read; a 2xx write was applied even so, and stays OK with an unknown index.
func (r *ConfigResult) decode(kind Kind) {
	if r.Type != history.OK || r.Status/100 != 2 {
		return
	}
	if err := json.Unmarshal(r.Body, &r.Entry); err != nil {
		r.Code, r.Err = CodeHTTP, fmt.Sprintf("malformed entry %q: %v", r.Body, err)
		r.Entry = Entry{}
		if kind == Read {
			r.Type, r.Present = history.Fail, false
		}
	}
}

// Instance is the part of a service instance the set workload uses.
type Instance struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Node    string `json:"node"`
}

// RegisterInstance registers instance id of service (POST /services/register).
func (c *Client) RegisterInstance(ctx context.Context, addr, service, id string, port int) Result {
	body, _ := json.Marshal(map[string]any{
		"name": service, "type": "http", "id": id, "address": "10.200.0.1", "port": port,
	})
	return c.Do(ctx, Write, http.MethodPost, addr, "/services/register", body)
}

// DeregisterInstance removes instance id of service.
func (c *Client) DeregisterInstance(ctx context.Context, addr, service, id string) Result {
	return c.Do(ctx, Write, http.MethodDelete, addr,
		"/services/"+url.PathEscape(service)+"/instances/"+url.PathEscape(id), nil)
}

// ServiceResult is a consistent read of a service's instances.
type ServiceResult struct {
	Result
	IDs []string // instance ids, sorted; empty when the service is unknown (404)
}

// ReadService reads the instances of service with ?consistent.
func (c *Client) ReadService(ctx context.Context, addr, service string) ServiceResult {
	r := ServiceResult{Result: c.Do(ctx, Read, http.MethodGet, addr, "/services/"+url.PathEscape(service)+c.consistent(), nil)}
	if r.Type != history.OK || r.Status != http.StatusOK {
		return r
	}
	var svc struct {
		Instances []Instance `json:"instances"`
	}
	if err := json.Unmarshal(r.Body, &svc); err != nil {
		r.Type, r.Code, r.Err = history.Fail, CodeHTTP, "malformed service: "+err.Error()
		return r
	}
	for _, in := range svc.Instances {
		r.IDs = append(r.IDs, in.ID)
	}
	sort.Strings(r.IDs)
	return r
}

// Leader returns the node name of the leader as node addr sees it.
func (c *Client) Leader(ctx context.Context, addr string) (string, error) {
	r := c.Do(ctx, Read, http.MethodGet, addr, "/cluster/leader", nil)
	if r.Type != history.OK || r.Status != http.StatusOK {
		return "", fmt.Errorf("%s /cluster/leader: %d %s %s", addr, r.Status, r.Code, r.Err)
	}
	var l struct {
		Node string `json:"node"`
	}
	if err := json.Unmarshal(r.Body, &l); err != nil || l.Node == "" {
		return "", fmt.Errorf("%s /cluster/leader: bad body %q", addr, r.Body)
	}
	return l.Node, nil
}

// RaftServer is one server of GET /cluster/raft.
type RaftServer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// RaftInfo is GET /cluster/raft.
type RaftInfo struct {
	Term        uint64       `json:"term"`
	CommitIndex uint64       `json:"commit_index"`
	AppliedIdx  uint64       `json:"applied_index"`
	Servers     []RaftServer `json:"servers"`
}

// Raft returns node addr's view of the Raft configuration.
func (c *Client) Raft(ctx context.Context, addr string) (RaftInfo, error) {
	var ri RaftInfo
	r := c.Do(ctx, Read, http.MethodGet, addr, "/cluster/raft", nil)
	if r.Type != history.OK || r.Status != http.StatusOK {
		return ri, fmt.Errorf("%s /cluster/raft: %d %s %s", addr, r.Status, r.Code, r.Err)
	}
	if err := json.Unmarshal(r.Body, &ri); err != nil {
		return ri, fmt.Errorf("%s /cluster/raft: %v", addr, err)
	}
	return ri, nil
}

// Status is the part of GET /status the harness uses.
type Status struct {
	Node string `json:"node"`
	Raft struct {
		State       string `json:"state"`
		Term        uint64 `json:"term"`
		Leader      string `json:"leader"`
		CommitIndex uint64 `json:"commit_index"`
		AppliedIdx  uint64 `json:"applied_index"`
	} `json:"raft"`
}

// Status returns node addr's GET /status.
func (c *Client) Status(ctx context.Context, addr string) (Status, error) {
	var st Status
	r := c.Do(ctx, Read, http.MethodGet, addr, "/status", nil)
	if r.Type != history.OK || r.Status != http.StatusOK {
		return st, fmt.Errorf("%s /status: %d %s %s", addr, r.Status, r.Code, r.Err)
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return st, fmt.Errorf("%s /status: %v", addr, err)
	}
	return st, nil
}

// IsLeaderState reports whether a /status raft state names the leader.
func IsLeaderState(s string) bool { return strings.EqualFold(s, "leader") }

// Post sends a body-less POST (e.g. /cluster/leave) as a Write.
func (c *Client) Post(ctx context.Context, addr, path string) Result {
	return c.Do(ctx, Write, http.MethodPost, addr, path, nil)
}

// Delete sends a DELETE (e.g. /cluster/peers/{node}) as a Write.
func (c *Client) Delete(ctx context.Context, addr, path string) Result {
	return c.Do(ctx, Write, http.MethodDelete, addr, path, nil)
}

// BatchResult is the outcome of an atomic multi-key config write.
type BatchResult struct {
	Result
	Entries []Entry // after an acknowledged write, in request order
}

// WriteConfigBatch sets keys[i] to values[i] in one atomic write (POST
// /config with entries: one Raft entry, one audit record per key in
// request order).
func (c *Client) WriteConfigBatch(ctx context.Context, addr string, keys []string, values []int64) BatchResult {
	type entry struct {
		Key   string `json:"key"`
		Value int64  `json:"value"`
	}
	req := struct {
		Entries []entry `json:"entries"`
	}{}
	for i := range keys {
		req.Entries = append(req.Entries, entry{keys[i], values[i]})
	}
	body, _ := json.Marshal(req)
	r := BatchResult{Result: c.Do(ctx, Write, http.MethodPost, addr, "/config", body)}
	if r.Type == history.OK && r.Status/100 == 2 {
		var out struct {
			Entries []Entry `json:"entries"`
		}
		if err := json.Unmarshal(r.Body, &out); err != nil {
			// Applied even so (2xx): the entries stay unknown.
			r.Code, r.Err = CodeHTTP, fmt.Sprintf("malformed entries %q: %v", r.Body, err)
		}
		r.Entries = out.Entries
	}
	return r
}

// AuditKey is a position in the audit stream.
type AuditKey struct {
	RaftIndex uint64 `json:"raft_index"`
	Position  uint32 `json:"position"`
}

// Less reports whether k sorts before o.
func (k AuditKey) Less(o AuditKey) bool {
	return k.RaftIndex < o.RaftIndex || (k.RaftIndex == o.RaftIndex && k.Position < o.Position)
}

// AuditSettings is the part of GET /audit/settings the audit workload uses.
type AuditSettings struct {
	OnFull    string `json:"on_full"`
	Archive   string `json:"archive"`
	Archiving bool   `json:"archiving"`
	Attached  bool   `json:"attached"`
	Backlog   struct {
		Records int64    `json:"records"`
		Newest  AuditKey `json:"newest"`
		Dropped uint64   `json:"dropped"`
		Evicted uint64   `json:"evicted"`
	} `json:"backlog"`
	Watermark AuditKey `json:"watermark"`
}

// AuditSettings reads GET /audit/settings?consistent (linearizable, even
// with Options.StaleReads: this is the harness's bookkeeping, not a read
// under test), so an empty backlog means that every write acknowledged
// before the call is archived.
func (c *Client) AuditSettings(ctx context.Context, addr string) (AuditSettings, error) {
	var st AuditSettings
	r := c.Do(ctx, Read, http.MethodGet, addr, "/audit/settings?consistent", nil)
	if r.Type != history.OK || r.Status != http.StatusOK {
		return st, fmt.Errorf("%s /audit/settings: %d %s %s", addr, r.Status, r.Code, r.Err)
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return st, fmt.Errorf("%s /audit/settings: %v", addr, err)
	}
	return st, nil
}

// RequestIDHarness is the X-Request-ID of the harness's own writes
// (not a workload's: the audit checker ignores their records).
const RequestIDHarness = "jepsen-harness"

// SetAuditSettings changes the cluster's audit settings (PUT
// /audit/settings with body, e.g. {"max_records":1,"on_full":"drop_oldest"}),
// with the request id RequestIDHarness.
func (c *Client) SetAuditSettings(ctx context.Context, addr string, body []byte) error {
	r := c.DoID(ctx, Write, http.MethodPut, addr, "/audit/settings", body, RequestIDHarness)
	if r.Type != history.OK {
		return fmt.Errorf("%s PUT /audit/settings: %s %d %s %s", addr, r.Type, r.Status, r.Code, r.Err)
	}
	return nil
}
