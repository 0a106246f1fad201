package consul

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Blocking query limits, as Consul's.
const (
	DefaultWait = 5 * time.Minute
	MaxWait     = 10 * time.Minute
)

// Credential headers besides Authorization: Bearer.
const (
	HeaderConsulToken = "X-Consul-Token"
	headerNexusToken  = "X-Nexus-Token"
)

// Answer headers.
const (
	HeaderIndex       = "X-Consul-Index"
	HeaderKnownLeader = "X-Consul-KnownLeader"
	HeaderLastContact = "X-Consul-LastContact"
)

// request is one /v1/ request in progress.
type request struct {
	s     *Server
	ctx   *fasthttp.RequestCtx
	id    string // X-Request-ID
	route string // metrics label
	param string // the unescaped path parameter
	cred  string
	ident acl.Identity
	authz *acl.Authorizer
	// index is X-Consul-Index (at least 1) and X-Nexus-Index.
	index uint64
	q     query
}

// query holds the parsed common query parameters.
type query struct {
	blocking   bool
	minIndex   uint64
	wait       time.Duration
	consistent bool
	pretty     bool
}

// common are the parameters every endpoint takes. stale and cached are
// accepted and change nothing: reads come from the local replica unless
// consistent is given.
var commonParams = []string{"dc", "token", "pretty", "stale"}

// parseQuery checks that every parameter is one the route takes and
// parses the common ones.
func (s *Server) parseQuery(r *request, rt *route) *answer {
	args := r.ctx.QueryArgs()
	var bad []string
	for k := range args.All() {
		name := string(k)
		if !slices.Contains(commonParams, name) && !slices.Contains(rt.params, name) && !slices.Contains(bad, name) {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return errInvalid(bad[0], "query parameter %s is not supported on %s by Nexus (docs/consul-compat.md)",
			strings.Join(bad, ", "), rt.pattern)
	}
	if args.Has("dc") {
		if dc := string(args.Peek("dc")); dc != "" && dc != s.dc {
			return errInvalid("dc", "unknown datacenter %q: this cluster is %q and Nexus does not federate datacenters", dc, s.dc)
		}
	}
	q := &r.q
	q.pretty = args.Has("pretty")
	q.consistent = args.Has("consistent")
	if q.consistent && args.Has("stale") {
		return errInvalid("consistent", "stale and consistent are mutually exclusive")
	}
	if args.Has("index") {
		n, err := strconv.ParseUint(string(args.Peek("index")), 10, 64)
		if err != nil {
			return errInvalid("index", "%q is not a non-negative integer", args.Peek("index"))
		}
		q.minIndex = n
		// index=0 answers at once, as in Consul.
		q.blocking = n > 0
	}
	q.wait = DefaultWait
	if args.Has("wait") {
		d, e := parseWait(string(args.Peek("wait")))
		if e != nil {
			return e
		}
		q.wait = d
	}
	if q.blocking {
		// Consul adds up to wait/16 so that watchers of one change do not
		// all come back at once.
		q.wait += rand.N(q.wait/16 + 1)
	}
	return nil
}

// parseWait takes Consul's wait format: a Go duration ("120000ms", "5m",
// "10s") or bare seconds; above MaxWait is MaxWait.
func parseWait(v string) (time.Duration, *answer) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, errInvalid("wait", "%q is not a duration like 120000ms, 10s or 5m", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, errInvalid("wait", "%q must be positive", v)
	}
	return min(d, MaxWait), nil
}

// credential is the caller's token: X-Consul-Token, Authorization: Bearer,
// X-Nexus-Token or ?token=, in that order.
func credential(ctx *fasthttp.RequestCtx) string {
	h := &ctx.Request.Header
	if v := h.Peek(HeaderConsulToken); len(v) > 0 {
		return strings.TrimSpace(string(v))
	}
	if v := h.Peek("Authorization"); len(v) > 7 && strings.EqualFold(string(v[:7]), "bearer ") {
		return strings.TrimSpace(string(v[7:]))
	}
	if v := h.Peek(headerNexusToken); len(v) > 0 {
		return strings.TrimSpace(string(v))
	}
	return string(ctx.QueryArgs().Peek("token"))
}

// read runs fn as the request's (blocking, consistent) read; fn returns
// the index of what it read. It reports false after answering an error.
func (r *request) read(fn func(tx *registry.Tx, ws memdb.WatchSet) uint64) bool {
	if r.q.blocking {
		r.s.m.blocking.Inc()
		defer r.s.m.blocking.Dec()
	}
	var index uint64
	runs := 0
	err := r.s.native.Read(r.q.consistent, r.q.blocking, r.q.minIndex, r.q.wait, func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		if runs++; runs > 1 {
			r.s.m.wakeups.Inc()
		}
		index = fn(tx, ws)
		return index
	})
	if err != nil {
		r.fail(err)
		return false
	}
	r.index = index
	return true
}

// apply commits a command for the caller; the index is the entry's, a
// refused write included.
func (r *request) apply(t command.Type, build func(command.Meta) any) error {
	res, err := r.s.native.ApplyAs(r.ident, r.id, t, build)
	if res != nil {
		r.index = res.Index
	}
	return err
}

// check refuses an access the caller lacks; it reports false after
// answering.
func (r *request) check(resource, name string, level acl.Access) bool {
	if err := r.s.native.Check(r.ident, r.authz, resource, name, level); err != nil {
		r.fail(err)
		return false
	}
	return true
}

// checkList is check for a list filtered by canRead.
func (r *request) checkList(resource string) bool {
	if err := r.s.native.CheckList(r.ident, r.authz, resource); err != nil {
		r.fail(err)
		return false
	}
	return true
}

// canRead filters list answers.
func (r *request) canRead(resource, name string) bool {
	return r.authz == nil || r.authz.Allowed(resource, name, acl.Read)
}

// answer is an error answer in the API's shape {"error":{...}}.
type answer struct {
	status     int
	code       string
	message    string
	field      string
	retryAfter bool
	// unsupported: a Consul feature Nexus does not map (counted in
	// nexus_consul_unsupported_total{kind="field"}).
	unsupported bool
}

func errNotFound(msg string) *answer {
	return &answer{status: fasthttp.StatusNotFound, code: registry.CodeNotFound, message: msg}
}

// errInvalid is a 400 naming field.
func errInvalid(field, format string, args ...any) *answer {
	return &answer{status: fasthttp.StatusBadRequest, code: registry.CodeInvalid, field: field,
		message: field + ": " + fmt.Sprintf(format, args...)}
}

func (a *answer) Error() string        { return a.message }
func (a *answer) ErrorMessage() string { return a.message }
func (a *answer) StatusCode() int      { return a.status }
func (a *answer) ErrorCode() string    { return a.code }
func (a *answer) ErrorField() string   { return a.field }
func (a *answer) RetryAfter() bool     { return a.retryAfter }

// codeOf is the error code of a Native error ("" without one).
func codeOf(err error) string {
	if c, ok := err.(interface{ ErrorCode() string }); ok {
		return c.ErrorCode()
	}
	return ""
}

// fail answers an error (an *answer or a Native error) in the admin
// API's shape.
func (r *request) fail(err error) {
	r.s.native.WriteError(r.ctx, err)
}

// json answers v with 200.
func (r *request) json(v any) {
	r.jsonStatus(fasthttp.StatusOK, v)
}

// jsonStatus answers v with status.
func (r *request) jsonStatus(status int, v any) {
	var b []byte
	var err error
	if r.q.pretty {
		b, err = json.MarshalIndent(v, "", "    ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		r.fail(&answer{status: fasthttp.StatusInternalServerError, code: registry.CodeInternal, message: "cannot encode the answer: " + err.Error()})
		return
	}
	r.ctx.SetStatusCode(status)
	r.ctx.SetContentType("application/json")
	r.ctx.SetBody(b)
}

// finish sets the headers every answer carries, 404s and errors included.
func (s *Server) finish(r *request) {
	h := &r.ctx.Response.Header
	// Consul clients treat 0 as "no index" and would spin: at least 1.
	r.index = max(r.index, 1)
	h.Set(HeaderIndex, strconv.FormatUint(r.index, 10))
	known, last := s.cluster.Contact()
	h.Set(HeaderKnownLeader, strconv.FormatBool(known))
	h.Set(HeaderLastContact, strconv.FormatInt(last.Milliseconds(), 10))
}
