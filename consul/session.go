package consul

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Consul sessions are Nexus sessions (docs/sessions.md): created, renewed
// and destroyed by the native commands, timed by the leader's session duty,
// ended when their node fails or leaves. A Nexus session is always tied to
// its node, which is what Consul's default node check serfHealth does.

// serfHealth is the node check every Consul session has unless told
// otherwise; Nexus sessions always behave as if they had it.
const serfHealth = "serfHealth"

// lockDelaySeconds: a LockDelay number below it is seconds, else
// nanoseconds, as Consul reads it (hashicorp/consul#9388).
const lockDelaySeconds = 1000

// sessionCreate is the body of PUT /v1/session/create.
type sessionCreate struct {
	Name          string
	Node          string
	TTL           string
	Behavior      string
	LockDelay     json.RawMessage
	Checks        *[]string
	NodeChecks    *[]string
	ServiceChecks []serviceCheck
}

type serviceCheck struct {
	ID        string
	Namespace string `json:",omitempty"`
}

// sessionFields are the create body's fields; any other must be absent or
// zero (a SessionEntry marshalled whole has ID, CreateIndex, ...).
var sessionFields = []string{"name", "node", "ttl", "behavior", "lockdelay", "checks", "nodechecks", "servicechecks",
	"namespace", "partition"}

// sessionFieldNames maps the native session's field names to Consul's.
var sessionFieldNames = map[string]string{"name": "Name", "node": "Node", "ttl": "TTL", "behavior": "Behavior",
	"lock_delay": "LockDelay", "id": "ID"}

// sessionEntry is Consul's SessionEntry. Checks is left out, as Consul
// 1.7+ does when serfHealth is the only check.
type sessionEntry struct {
	ID            string
	Name          string
	Node          string
	LockDelay     time.Duration
	Behavior      string
	TTL           string
	NodeChecks    []string
	ServiceChecks []serviceCheck
	CreateIndex   uint64
	ModifyIndex   uint64
}

func toSessionEntry(s *registry.Session) sessionEntry {
	return sessionEntry{ID: s.ID, Name: s.Name, Node: s.Node, LockDelay: s.LockDelayDuration(), Behavior: s.Behavior,
		TTL: s.TTL, NodeChecks: []string{serfHealth}, CreateIndex: s.CreateIndex, ModifyIndex: s.ModifyIndex}
}

// parseLockDelay reads Consul's LockDelay: a duration string ("15s", the
// Go client's "1500ms"), or a number, of seconds below 1000 and of
// nanoseconds from 1000 on. Absent is Nexus's default (15s, as Consul's).
func parseLockDelay(raw json.RawMessage) (string, *answer) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || string(v) == "null" {
		return "", nil
	}
	var str string
	if json.Unmarshal(v, &str) == nil {
		d, err := time.ParseDuration(str)
		if err != nil {
			return "", errInvalid("LockDelay", "%q is not a duration like 15s", str)
		}
		return d.String(), nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return "", errInvalid("LockDelay", "%s is neither a duration string nor a whole number", v)
	}
	d := time.Duration(n)
	if n >= 0 && n < lockDelaySeconds {
		d = time.Duration(n) * time.Second
	}
	return d.String(), nil
}

// unsupportedSession refuses a create body's fields Nexus does not map.
func unsupportedSession(body []byte) *answer {
	if a := fieldsOK("", body, sessionFields); a != nil {
		return a
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(body, &m)
	for k, v := range m {
		if l := strings.ToLower(k); l == "namespace" || l == "partition" {
			if a := onlyDefault(k, v); a != nil {
				return a
			}
		}
	}
	return nil
}

// sessionChecks accepts the check lists that mean what a Nexus session
// does (its node's health, serfHealth) and refuses any other, naming it.
func sessionChecks(b *sessionCreate) *answer {
	for _, l := range []struct {
		field string
		list  *[]string
	}{{"Checks", b.Checks}, {"NodeChecks", b.NodeChecks}} {
		if l.list == nil {
			continue
		}
		if len(*l.list) == 0 {
			return errInvalid(l.field, "a session without the node check %s is not supported: a Nexus session always ends when its node fails or leaves (omit %s, or give [%q]; docs/consul-compat.md)",
				serfHealth, l.field, serfHealth)
		}
		for i, c := range *l.list {
			if c != serfHealth {
				return errInvalid(l.field+"["+strconv.Itoa(i)+"]", "%q: Nexus ties a session to its node's health (%s) only, not to other checks (docs/consul-compat.md)", c, serfHealth)
			}
		}
	}
	if len(b.ServiceChecks) > 0 {
		return errInvalid("ServiceChecks", "Nexus ties a session to its node's health (%s) only, not to service checks (docs/consul-compat.md)", serfHealth)
	}
	return nil
}

// PUT /v1/session/create → {"ID":"..."}.
func (s *Server) sessionCreate(r *request) {
	body := r.ctx.PostBody()
	var b sessionCreate
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &b); err != nil {
			r.fail(&answer{status: fasthttp.StatusBadRequest, code: "invalid_json", message: "request body: " + err.Error()})
			return
		}
		if a := unsupportedSession(body); a != nil {
			s.m.unsupported.WithLabelValues("field").Inc()
			r.fail(a)
			return
		}
	}
	if a := sessionChecks(&b); a != nil {
		s.m.unsupported.WithLabelValues("field").Inc()
		r.fail(a)
		return
	}
	delay, a := parseLockDelay(b.LockDelay)
	if a != nil {
		r.fail(a)
		return
	}
	if b.Node == "" {
		b.Node = s.cluster.NodeName()
	}
	id, err := acl.NewSecret()
	if err != nil {
		r.fail(&answer{status: fasthttp.StatusInternalServerError, code: registry.CodeInternal, message: "cannot generate a session id: " + err.Error()})
		return
	}
	sess, e := registry.NormalizeSession(registry.Session{ID: id, Name: b.Name, Node: b.Node, TTL: b.TTL,
		Behavior: b.Behavior, LockDelay: delay})
	if e != nil {
		r.fail(renamed(e, sessionFieldNames))
		return
	}
	if !r.check(registry.ACLResourceSession, sess.Name, acl.Write) {
		return
	}
	if err := s.native.SessionNode(sess.Node); err != nil {
		r.fail(withField(err, "Node"))
		return
	}
	if err := r.apply(command.TypeSessionCreate, func(m command.Meta) any {
		return &command.SessionCreate{Meta: m, Session: sess}
	}); err != nil {
		r.fail(err)
		return
	}
	r.json(struct{ ID string }{sess.ID})
}

// sessionID checks the session id of the path.
func sessionID(r *request) (string, bool) {
	if !registry.ValidSessionID(r.param) {
		r.fail(errInvalid("uuid", "%q is not a session id", r.param))
		return "", false
	}
	return r.param, true
}

// checkSessionWrite checks the caller's write right on a stored session's
// name (Apply checks again); a session this replica does not know passes
// on to the command, which answers for it.
func (s *Server) checkSessionWrite(r *request, id string) bool {
	if r.authz == nil {
		return true
	}
	var name string
	found := false
	_ = s.native.Read(false, false, 0, 0, func(tx *registry.Tx, _ memdb.WatchSet) uint64 {
		if sess := tx.Session(nil, id); sess != nil {
			name, found = sess.Name, true
		}
		return 0
	})
	return !found || r.check(registry.ACLResourceSession, name, acl.Write)
}

// PUT /v1/session/destroy/:uuid → true, also when the session is gone.
func (s *Server) sessionDestroy(r *request) {
	id, ok := sessionID(r)
	if !ok || !s.checkSessionWrite(r, id) {
		return
	}
	if err := r.apply(command.TypeSessionInvalidate, func(m command.Meta) any {
		return &command.SessionInvalidate{Meta: m, ID: id, Reason: registry.ReasonDestroy}
	}); err != nil {
		r.fail(err)
		return
	}
	r.json(true)
}

// PUT /v1/session/renew/:uuid → [session]; 404 once it is gone.
func (s *Server) sessionRenew(r *request) {
	id, ok := sessionID(r)
	if !ok || !s.checkSessionWrite(r, id) {
		return
	}
	res, err := r.s.native.ApplyAs(r.ident, r.id, command.TypeSessionRenew, func(m command.Meta) any {
		return &command.SessionRenew{Meta: m, ID: id}
	})
	if res != nil {
		r.index = res.Index
	}
	if err != nil {
		r.fail(err)
		return
	}
	var sess registry.Session
	if !decodeValue(res, &sess) {
		r.fail(&answer{status: fasthttp.StatusInternalServerError, code: registry.CodeInternal, message: "undecodable renew answer"})
		return
	}
	r.json([]sessionEntry{toSessionEntry(&sess)})
}

// GET /v1/session/info/:uuid → [session], [] when it is gone. A blocking
// query returns when the session ends.
func (s *Server) sessionInfo(r *request) {
	id, ok := sessionID(r)
	if !ok {
		return
	}
	var found *registry.Session
	if !r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		found = tx.Session(ws, id)
		if found == nil {
			return tx.TableIndex(ws, registry.TableSessions)
		}
		return found.ModifyIndex
	}) {
		return
	}
	if found == nil {
		r.json([]sessionEntry{})
		return
	}
	if !r.check(registry.ACLResourceSession, found.Name, acl.Read) {
		return
	}
	r.json([]sessionEntry{toSessionEntry(found)})
}

// GET /v1/session/list and /v1/session/node/:node: the sessions the
// caller may read.
func (s *Server) sessionList(r *request) {
	s.listSessions(r, "")
}

func (s *Server) sessionNodeList(r *request) {
	if r.param == "" {
		r.fail(errInvalid("node", "is required"))
		return
	}
	s.listSessions(r, r.param)
}

func (s *Server) listSessions(r *request, node string) {
	if !r.checkList(registry.ACLResourceSession) {
		return
	}
	var out []sessionEntry
	if r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		idx := tx.TableIndex(ws, registry.TableSessions)
		all := tx.Sessions(ws)
		if node != "" {
			all = tx.NodeSessions(ws, node)
		}
		out = make([]sessionEntry, 0, len(all))
		for i := range all {
			if r.canRead(registry.ACLResourceSession, all[i].Name) {
				out = append(out, toSessionEntry(&all[i]))
			}
		}
		return idx
	}) {
		r.json(out)
	}
}

// renamed is a registry error whose field is named as Consul names it.
func renamed(e *registry.Error, names map[string]string) *answer {
	field := e.Field
	if n, ok := names[field]; ok {
		field = n
	}
	msg := e.Message
	if rest, ok := strings.CutPrefix(msg, e.Field+":"); ok {
		msg = field + ":" + rest
	}
	return &answer{status: fasthttp.StatusBadRequest, code: e.Code, field: field, message: msg}
}

// decodeValue reads a command result's value into v: through its JSON,
// which is how it arrives after forwarding, so the leader's own answers
// take the same path.
func decodeValue[T any](res *command.Result, v *T) bool {
	raw, err := res.RawValue()
	return err == nil && json.Unmarshal(raw, v) == nil
}
