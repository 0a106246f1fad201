package api

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// auditFixture writes a few changes of every kind, at two proposer times.
func auditFixture(t *testing.T, h *harness) time.Time {
	t.Helper()
	h.register(reg("web", "http", "10.0.0.1", 80))
	h.must(h.do("PUT", "/config/app/a", `1`), 200, nil)
	h.must(h.do("POST", "/config", map[string]any{"entries": []map[string]any{{"key": "app/b", "value": 2}, {"key": "app/c", "value": "x"}}}), 200, nil)
	h.must(h.do("POST", "/gateway/routes", map[string]any{"id": "r1", "service": "web", "paths": []string{"/web/"}}), 201, nil)
	later := h.now.Add(time.Hour)
	h.now = later
	h.must(h.do("DELETE", "/config/app/a", nil), 200, nil)
	h.must(h.do("PUT", "/config/app/b", `3`, "X-Request-ID", "rid-42"), 200, nil)
	return later
}

func auditList(t *testing.T, h *harness, query string) ([]auditEvent, *resp) {
	t.Helper()
	var out []auditEvent
	r := h.do("GET", "/audit?"+query, nil)
	h.must(r, 200, &out)
	return out, r
}

func keys(evs []auditEvent) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%d-%d %s %s %s", e.RaftIndex, e.Position, e.Action, e.ResourceType, e.Resource))
	}
	return strings.Join(s, "; ")
}

func TestAudit_ListFiltersAndPaging(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	later := auditFixture(t, h)
	for _, tc := range []struct {
		name, query, want string
	}{
		{"all newest first", "", "6-0 set config app/b; 5-0 delete config app/a; 4-0 upsert route r1; 3-0 set config app/b; 3-1 set config app/c; 2-0 set config app/a; 1-0 register service web; 1-1 register instance web/web-10.0.0.1-80"},
		{"resource type", "resource_type=config", "6-0 set config app/b; 5-0 delete config app/a; 3-1 set config app/c; 3-0 set config app/b; 2-0 set config app/a"},
		{"resource", "resource_type=config&resource=app/b", "6-0 set config app/b; 3-0 set config app/b"},
		{"instance resource", "resource_type=instance&resource=web/web-10.0.0.1-80", "1-1 register instance web/web-10.0.0.1-80"},
		{"action", "action=delete", "5-0 delete config app/a"},
		{"actor", "actor=anonymous&resource_type=route", "4-0 upsert route r1"},
		{"unknown actor", "actor=mallory", ""},
		{"since", "since=" + url.QueryEscape(later.UTC().Format(time.RFC3339)), "6-0 set config app/b; 5-0 delete config app/a"},
		{"cursor", "after=3-1", "3-0 set config app/b; 2-0 set config app/a; 1-1 register instance web/web-10.0.0.1-80; 1-0 register service web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, r := auditList(t, h, tc.query)
			if got := keys(evs); !sameSet(got, tc.want) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			for i := 1; i < len(evs); i++ {
				if !(registry.AuditKey{Index: evs[i].RaftIndex, Position: evs[i].Position}).Less(registry.AuditKey{Index: evs[i-1].RaftIndex, Position: evs[i-1].Position}) {
					t.Errorf("not newest first: %s", keys(evs))
				}
			}
			if r.get(HeaderIndex) != "6" {
				t.Errorf("X-Nexus-Index = %q, want 6", r.get(HeaderIndex))
			}
		})
	}

	// Every field of a record, as api.md pins them.
	evs, _ := auditList(t, h, "limit=1")
	e := evs[0]
	if e.RequestID != "rid-42" || e.Actor != "anonymous" || e.Node != "n1" || e.Time != later.UTC().Format(time.RFC3339Nano) ||
		string(e.Before) != `{"key":"app/b","value":2,"create_index":3,"modify_index":3}` ||
		string(e.After) != `{"key":"app/b","value":3,"create_index":3,"modify_index":6}` {
		t.Errorf("record = %+v (before %s after %s)", e, e.Before, e.After)
	}

	// Paging: limit 3 walks every record once, X-Nexus-Next until the end.
	var all []auditEvent
	q := "limit=3"
	for pages := 0; ; pages++ {
		evs, r := auditList(t, h, q)
		all = append(all, evs...)
		next := r.get(HeaderNext)
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		q = "limit=3&after=" + next
	}
	if len(all) != 8 {
		t.Errorf("paging returned %d records: %s", len(all), keys(all))
	}
}

// sameSet compares "; "-joined lists whatever the order of records that
// share a Raft index.
func sameSet(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := strings.Split(a, "; "), strings.Split(b, "; ")
	m := map[string]int{}
	for _, s := range x {
		m[s]++
	}
	for _, s := range y {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestAudit_BadQueriesNameTheField(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct{ query, field string }{
		{"resource_type=services", "resource_type"},
		{"since=yesterday", "since"},
		{"after=12", "after"},
		{"after=a-b", "after"},
		{"limit=0", "limit"},
		{"limit=10001", "limit"},
		{"source=postgres", "source"},
	} {
		e := h.mustErr(h.do("GET", "/audit?"+tc.query, nil), 400, registry.CodeInvalid)
		if e.Error.Field != tc.field {
			t.Errorf("%s: field %q, want %q (%s)", tc.query, e.Error.Field, tc.field, e.Error.Message)
		}
	}
}

func TestAudit_SettingsValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		body  string
		code  string
		field string
	}{
		{`{"max_records":0}`, registry.CodeInvalid, "max_records"},
		{`{"max_bytes":10}`, registry.CodeInvalid, "max_bytes"},
		{`{"on_full":"block"}`, registry.CodeInvalid, "on_full"},
		{`{"archive":"maybe"}`, registry.CodeInvalid, "archive"},
		{`{"max_records":"ten"}`, registry.CodeInvalid, "max_records"},
		{`{}`, registry.CodeInvalid, "body"},
		{`[`, CodeInvalidJSON, ""},
	} {
		e := h.mustErr(h.do("PUT", "/audit/settings", tc.body), 400, tc.code)
		if e.Error.Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.body, e.Error.Field, tc.field)
		}
	}
	var v auditSettingsView
	h.must(h.do("GET", "/audit/settings", nil), 200, &v)
	if v.AuditSettings != registry.DefaultAuditSettings() || v.Archiving {
		t.Errorf("defaults = %+v", v)
	}
}

func TestAudit_BacklogFullAnswers503AndDropOldestCounts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var v auditSettingsView
	h.must(h.do("PUT", "/audit/settings", `{"archive":"on","max_records":3}`), 200, &v)
	if !v.Archiving || v.MaxRecords != 3 || v.OnFull != registry.OnFullReject || v.Backlog.Records != 1 {
		t.Fatalf("settings = %+v", v)
	}
	h.must(h.do("PUT", "/config/a", `1`), 200, nil)
	h.must(h.do("PUT", "/config/b", `1`), 200, nil) // 3 records: full
	before := h.dump()
	r := h.do("PUT", "/config/c", `1`)
	h.mustErr(r, 503, registry.CodeAuditBacklogFull)
	if r.get("Retry-After") == "" {
		t.Error("503 audit_backlog_full without Retry-After")
	}
	h.assertUnchanged(before)
	if n := rejectedCount(t, h, "audit_backlog_full"); n != 1 {
		t.Errorf("rejected{audit_backlog_full} = %v, want 1", n)
	}
	// The settings themselves always pass: switch to drop_oldest.
	h.must(h.do("PUT", "/audit/settings", `{"on_full":"drop_oldest"}`), 200, &v)
	h.must(h.do("PUT", "/config/c", `1`), 200, nil)
	h.must(h.do("PUT", "/config/d", `1`), 200, nil)
	h.must(h.do("GET", "/audit/settings", nil), 200, &v)
	if v.Backlog.Records != 3 || v.Backlog.Dropped != 3 {
		t.Errorf("after drop_oldest: %+v", v.Backlog)
	}
	evs, _ := auditList(t, h, "")
	if keys(evs) != "7-0 set config d; 6-0 set config c; 5-0 set cluster audit_settings" {
		t.Errorf("backlog = %s", keys(evs))
	}
}

// fakeArchive answers List from a slice, filtered like PostgreSQL would.
type fakeArchive struct {
	recs []registry.AuditRecord
	err  error
}

func (a *fakeArchive) List(_ context.Context, _ string, f registry.AuditFilter) ([]registry.AuditRecord, error) {
	if a.err != nil {
		return nil, a.err
	}
	var out []registry.AuditRecord
	for i := len(a.recs) - 1; i >= 0 && len(out) < f.Limit; i-- {
		r := a.recs[i]
		if (f.Before.IsZero() || r.Key().Less(f.Before)) && f.Match(&r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestAudit_MergesArchiveAndBacklog(t *testing.T) {
	t.Parallel()
	arch := &fakeArchive{}
	h := newHarness(t, func(d *Deps) { d.AuditArchive = arch })
	applyCmd := func(ty command.Type, msg any) {
		b, err := command.NewCodec().Encode(ty, msg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.writer.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	h.must(h.do("PUT", "/config/x", `1`), 200, nil) // index 1; no cluster id yet: backlog only
	evs, _ := auditList(t, h, "")
	if keys(evs) != "1-0 set config x" {
		t.Fatalf("before the cluster id: %s", keys(evs))
	}
	applyCmd(command.TypeClusterInit, &command.ClusterInit{ClusterID: "c-1", Secret: "s"}) // index 2
	h.must(h.do("PUT", "/config/y", `2`), 200, nil)                                        // index 3
	// The archiver wrote 1-0 and 2-0 and trimmed 1-0 from the backlog; 2-0
	// is in both, 3-0 only in the backlog.
	arch.recs = []registry.AuditRecord{
		{Index: 1, Position: 0, Action: "set", ResourceType: "config", Resource: "x", Actor: "anonymous"},
		{Index: 2, Position: 0, Action: "init", ResourceType: "cluster", Resource: "c-1", Actor: "system"},
	}
	applyCmd(command.TypeAuditWatermark, &command.AuditWatermark{Index: 1}) // index 4, not audited
	evs, _ = auditList(t, h, "")
	if keys(evs) != "3-0 set config y; 2-0 init cluster c-1; 1-0 set config x" {
		t.Errorf("merged = %s", keys(evs))
	}
	evs, r := auditList(t, h, "limit=2")
	if keys(evs) != "3-0 set config y; 2-0 init cluster c-1" || r.get(HeaderNext) != "2-0" {
		t.Errorf("page = %s, next %q", keys(evs), r.get(HeaderNext))
	}
	evs, _ = auditList(t, h, "limit=2&after=2-0")
	if keys(evs) != "1-0 set config x" {
		t.Errorf("second page = %s", keys(evs))
	}
	evs, _ = auditList(t, h, "source=backlog")
	if keys(evs) != "3-0 set config y; 2-0 init cluster c-1" {
		t.Errorf("backlog only = %s", keys(evs))
	}
	arch.err = errors.New("connection refused")
	r = h.do("GET", "/audit", nil)
	h.mustErr(r, 503, CodeArchiveUnavailable)
	if r.get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

func rejectedCount(t *testing.T, h *harness, reason string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "nexus_api_rejected_writes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
