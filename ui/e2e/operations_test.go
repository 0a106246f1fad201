package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/retry"
)

// TestConsole_SessionsAndMaintenance opens the console on a follower of a
// 3-node cluster: sessions and locks made through the API show without a
// reload (list, detail, the config page's lock holder, the overview's
// count), the page creates (a field error first) and destroys a session,
// maintenance started from the page leaves an instance out of discovery
// and ending it brings it back, a service's maintenance is toggled from
// its page, and a node's maintenance set through the API shows in the
// overview.
func TestConsole_SessionsAndMaintenance(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 3)
	leader, _ := waitLeader(t, c, []int{0, 1, 2})
	follower, other := (leader+1)%3, (leader+2)%3
	api := newClient(t)
	L := func(path string) string { return c.URL(leader, path) }
	for _, r := range []map[string]any{
		{"name": "web", "id": "web-1", "type": "http", "address": "127.0.0.1", "port": 9001},
		{"name": "web", "id": "web-2", "type": "http", "address": "127.0.0.1", "port": 9002},
		{"name": "db", "id": "db-1", "type": "tcp", "address": "127.0.0.1", "port": 5432},
	} {
		api.idem(t, "POST", L("/services/register"), r, nil)
	}

	b := newBrowser(t, "http://"+c.HTTPAddr(follower))
	b.load("/ui/#/sessions")
	b.eval(`window.nexusMarker = 'no reload'; true`)

	type session struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Node     string `json:"node"`
		TTL      string `json:"ttl"`
		Behavior string `json:"behavior"`
	}
	var worker session
	t.Run("sessions appear and go without a reload", func(t *testing.T) {
		b.step(t)
		b.waitText("#main", "No sessions.")
		// Made on another node: it lives there.
		api.must("POST", c.URL(other, "/sessions"), map[string]any{"name": "worker-1", "lock_delay": "0s"}, &worker)
		b.waitText("#sessions-table", worker.ID, "worker-1", c.Node(other).Name, "release", "0s")
		var batch session
		api.must("POST", L("/sessions"), map[string]any{"name": "batch", "ttl": "1h", "behavior": "delete"}, &batch)
		b.waitText(fmt.Sprintf(`tr[data-session=%q]`, batch.ID), "batch", "1h", "delete")
		b.checkAccessible("sessions")
		b.screenshot("sessions")
		api.idem(t, "DELETE", c.URL(other, "/sessions/"+batch.ID), nil, nil)
		b.waitCond("the destroyed session gone", fmt.Sprintf(`!document.querySelector('tr[data-session=%q]') && !!document.querySelector('tr[data-session=%q]')`, batch.ID, worker.ID))
		b.goTo("overview")
		b.waitText("#ov-sessions", "1")
		// Nothing has written a maintenance record yet (X-Nexus-Index 0):
		// the overview still waits in a blocking query instead of polling.
		b.waitPending("/maintenance?", "index=0&wait=")
	})

	t.Run("a lock shows its holder", func(t *testing.T) {
		b.step(t)
		var l struct {
			Acquired  bool   `json:"acquired"`
			LockIndex uint64 `json:"lock_index"`
		}
		api.idem(t, "PUT", L("/config/app/leader?acquire="+worker.ID), `{"host":"a"}`, &l)
		if !l.Acquired || l.LockIndex != 1 {
			t.Fatalf("acquire: %+v", l)
		}
		b.goTo("config/app/leader")
		b.waitText("#config-lock", worker.ID, "lock index 1")
		b.waitText(".tree", "leader (locked)")
		b.checkAccessible("config lock")
		b.screenshot("config-lock")
		b.click("#config-lock a")
		b.waitCond("the session's page", fmt.Sprintf(`location.hash === %s`, jsString("#/sessions/"+worker.ID)))
		b.waitText("#session-info", "worker-1", c.Node(other).Name, "release", "none")
		b.waitText(`#session-keys tr[data-config-key="app/leader"]`, "app/leader", "1")
		// A second key, taken through another node, joins the list live.
		api.idem(t, "PUT", c.URL(other, "/config/jobs/nightly?acquire="+worker.ID), nil, nil)
		b.waitText(`#session-keys tr[data-config-key="jobs/nightly"]`, "jobs/nightly", "1")
		b.checkAccessible("session")
		b.screenshot("session")
		api.idem(t, "PUT", L("/config/jobs/nightly?release="+worker.ID), nil, nil)
		b.waitCond("the released key gone", `!document.querySelector('#session-keys tr[data-config-key="jobs/nightly"]') && !!document.querySelector('#session-keys tr[data-config-key="app/leader"]')`)
	})

	t.Run("create and destroy a session from the page", func(t *testing.T) {
		b.step(t)
		b.goTo("sessions")
		b.waitText("#sessions-table", worker.ID)
		b.click("#session-create")
		b.waitVisible("dialog[open] form")
		b.fill("#ses-name", "made in the console", "#ses-ttl", "5s")
		b.fieldError("dialog[open] button[type=submit]", "ses-ttl", "out of range", "session-error")
		var list []session
		api.must("GET", L("/sessions"), nil, &list)
		if len(list) != 1 {
			t.Fatalf("after the refused create: %+v", list)
		}
		b.fill("#ses-ttl", "1h", "#ses-behavior", "delete")
		b.click("dialog[open] button[type=submit]")
		b.waitCond("the new session's page", `/^#\/sessions\/[^/]+$/.test(location.hash)`)
		id := strings.TrimPrefix(evalT[string](b, `location.hash`), "#/sessions/")
		var s session
		api.must("GET", L("/sessions/"+id), nil, &s)
		if s.Name != "made in the console" || s.TTL != "1h" || s.Behavior != "delete" || s.Node != c.Node(follower).Name {
			t.Fatalf("created %+v", s)
		}
		api.idem(t, "PUT", L("/config/tmp/scratch?acquire="+id), `1`, nil)
		b.waitText("#session-keys", "tmp/scratch")
		b.click("#session-destroy")
		b.click("dialog[open] button[value=yes]")
		b.waitCond("back to the list", `location.hash === '#/sessions'`)
		b.waitCond("the row gone", fmt.Sprintf(`!!document.querySelector('#sessions-table') && !document.querySelector('tr[data-session=%q]')`, id))
		if code, body := api.do("GET", L("/sessions/"+id), nil); code != 404 {
			t.Fatalf("destroyed session: %d %s", code, body)
		}
		// behavior delete: its key went with it.
		if code, body := api.do("GET", L("/config/tmp/scratch"), nil); code != 404 {
			t.Fatalf("the key of a destroyed delete session: %d %s", code, body)
		}
	})

	type instance struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		Maintenance *struct {
			Scope       string `json:"scope"`
			Reason      string `json:"reason"`
			Since       string `json:"since"`
			CheckStatus string `json:"check_status"`
		} `json:"maintenance"`
	}
	instanceOf := func(node int, svc, id string) instance {
		var s struct {
			Instances []instance `json:"instances"`
		}
		api.must("GET", c.URL(node, "/services/"+svc), nil, &s)
		for _, i := range s.Instances {
			if i.ID == id {
				return i
			}
		}
		t.Fatalf("no instance %s of %s", id, svc)
		return instance{}
	}
	discovered := func(node int) string {
		var list []instance
		api.must("GET", c.URL(node, "/discover/http?service=web"), nil, &list)
		ids := make([]string, 0, len(list))
		for _, i := range list {
			ids = append(ids, i.ID)
		}
		return strings.Join(ids, " ")
	}
	type record struct {
		Scope, Node, Service, ID, Reason string
	}
	records := func() []record {
		var out []record
		api.must("GET", L("/maintenance"), nil, &out)
		return out
	}

	t.Run("instance maintenance from the page", func(t *testing.T) {
		b.step(t)
		b.goTo("services/web/web-1")
		b.waitText("#instance-status", "passing")
		b.waitText("#instance-maintenance", "Not in maintenance")
		b.waitText("#main .maint-toggle", "Start maintenance")
		b.click("#main .maint-toggle")
		b.waitVisible("#maint-reason")
		b.setValue("#maint-reason", strings.Repeat("r", 300))
		b.fieldError("#maint-submit", "maint-reason", "256", "maintenance-error")
		if r := records(); len(r) != 0 {
			t.Fatalf("maintenance after a refused start: %+v", r)
		}
		b.setValue("#maint-reason", "deploying v2")
		b.click("#maint-submit")
		b.waitCond("the dialog to close", `!document.querySelector('dialog[open]')`)
		b.waitText("#instance-status", "critical", "maintenance", "deploying v2")
		b.waitText("#instance-maintenance", "this instance", "deploying v2", "passing")
		b.waitText("#main .maint-toggle", "End maintenance")
		retry.Run(t, func(r *retry.R) {
			i := instanceOf(leader, "web", "web-1")
			if i.Status != "critical" || i.Maintenance == nil || i.Maintenance.Reason != "deploying v2" ||
				i.Maintenance.Scope != "instance" || i.Maintenance.CheckStatus != "passing" {
				r.Fatalf("web-1 on the leader: %+v %+v", i, i.Maintenance)
			}
			if got := discovered(follower); got != "web-2" {
				r.Fatalf("discovered %q, want web-2 alone", got)
			}
		}, retry.Timeout(uiWait))
		b.checkAccessible("instance maintenance")
		b.screenshot("instance-maintenance")
		b.goTo("services/web")
		b.waitText(`tr[data-instance="web-1"] .status`, "critical", "maintenance", "deploying v2")
		b.waitCond("the reason as a tooltip", `document.querySelector('tr[data-instance="web-1"] .maint .badge').title.includes('deploying v2')`)
		b.waitText("#main", "(1 in maintenance)")

		b.goTo("services/web/web-1")
		b.waitText("#main .maint-toggle", "End maintenance")
		b.click("#main .maint-toggle")
		b.waitText("#instance-status", "passing")
		b.waitText("#instance-maintenance", "Not in maintenance")
		retry.Run(t, func(r *retry.R) {
			if i := instanceOf(leader, "web", "web-1"); i.Status != "passing" || i.Maintenance != nil {
				r.Fatalf("web-1 after the end: %+v", i)
			}
			if got := discovered(follower); got != "web-1 web-2" {
				r.Fatalf("discovered %q, want web-1 web-2", got)
			}
		}, retry.Timeout(uiWait))
	})

	t.Run("service maintenance from its page", func(t *testing.T) {
		b.step(t)
		b.goTo("services/db")
		b.waitText("#main .toolbar .maint-toggle", "Start maintenance")
		b.click("#main .toolbar .maint-toggle")
		b.waitVisible("#maint-reason")
		b.setValue("#maint-reason", "migrating")
		b.click("#maint-submit")
		b.waitText("#service-maintenance", "db is in maintenance", "migrating")
		b.waitText(`tr[data-instance="db-1"] .status`, "critical", "maintenance", "migrating")
		if r := records(); len(r) != 1 || r[0].Scope != "service" || r[0].Service != "db" || r[0].Reason != "migrating" {
			t.Fatalf("records %+v", r)
		}
		b.checkAccessible("service maintenance")
		b.screenshot("service-maintenance")
		b.click("#main .toolbar .maint-toggle")
		b.waitText("#main .toolbar .maint-toggle", "Start maintenance")
		b.waitText(`tr[data-instance="db-1"] .status`, "passing")
		if r := records(); len(r) != 0 {
			t.Fatalf("records after the end %+v", r)
		}
	})

	t.Run("node maintenance through the API shows in the overview", func(t *testing.T) {
		b.step(t)
		name := c.Node(other).Name
		api.idem(t, "PUT", c.URL(other, "/maintenance/nodes/"+name), map[string]string{"reason": "kernel upgrade"}, nil)
		b.goTo("overview")
		row := fmt.Sprintf(`tr[data-member=%q] .maint-cell`, name)
		b.waitText(row, "maintenance", "kernel upgrade", "End maintenance")
		b.waitCond("the other members not in maintenance", fmt.Sprintf(
			`[...document.querySelectorAll('#ov-members-table tbody tr')].filter(r => r.dataset.member !== %q).every(r => r.querySelector('.maint-cell').innerText.includes('Start maintenance'))`, name))
		b.checkAccessible("overview maintenance")
		b.screenshot("overview-maintenance")
		// Ended from the page: its toggle keeps the focus across the redraws.
		b.eval(fmt.Sprintf(`document.querySelector(%s).focus(); true`, jsString(row+" .maint-toggle")))
		b.pressEnter()
		b.waitText(row, "Start maintenance")
		b.waitCond("the focus kept on the toggle", fmt.Sprintf(`document.activeElement === document.querySelector(%s)`, jsString(row+" .maint-toggle")))
		if r := records(); len(r) != 0 {
			t.Fatalf("records after the end %+v", r)
		}
	})

	t.Run("phone width and dark", func(t *testing.T) {
		b.step(t)
		b.viewport(390, 844, "dark")
		b.goTo("sessions/" + worker.ID)
		b.waitText("#session-keys", "app/leader")
		if evalT[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Error("the session page scrolls sideways at 390 px")
		}
		b.screenshot("session-phone-dark")
		b.goTo("sessions")
		b.waitText("#sessions-table", worker.ID)
		if evalT[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Error("the sessions page scrolls sideways at 390 px")
		}
		b.viewport(1280, 900, "light")
	})

	b.t = t
	if got := evalT[string](b, `String(window.nexusMarker)`); got != "no reload" {
		t.Errorf("the page reloaded during the test (marker %q)", got)
	}
	b.checkNoExceptions()
	b.checkSameOrigin()
}
