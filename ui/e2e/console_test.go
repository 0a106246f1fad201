package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/retry"
)

// TestConsole_Cluster opens the console on a follower of a 3-node cluster
// and walks every page: what the API changes shows without a reload, the
// forms show the API's field errors and CAS conflicts, and the overview
// follows a leader change. The page asks no other host for anything.
func TestConsole_Cluster(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 3)
	leader, _ := waitLeader(t, c, []int{0, 1, 2})
	follower := (leader + 1) % 3
	api := newClient(t)
	L := func(path string) string { return c.URL(leader, path) }

	// A catalog, a config key.
	api.idem(t, "POST", L("/services/register"), map[string]any{"name": "web", "id": "web-1", "type": "http", "address": "127.0.0.1", "port": 9001,
		"tags": []string{"v1", "blue"}, "metadata": map[string]string{"zone": "a"}, "check": map[string]string{"ttl": "5m"}}, nil)
	api.idem(t, "PUT", L("/services/web/instances/web-1/heartbeat"), map[string]string{"status": "passing", "output": "all good"}, nil)
	api.idem(t, "POST", L("/services/register"), map[string]any{"name": "web", "id": "web-2", "type": "http", "address": "127.0.0.1", "port": 9002, "tags": []string{"v1"}}, nil)
	api.idem(t, "POST", L("/services/register"), map[string]any{"name": "db", "id": "db-1", "type": "tcp", "address": "127.0.0.1", "port": 5432}, nil)
	api.idem(t, "PUT", L("/config/app/db/pool"), "20", nil)
	api.idem(t, "PUT", L("/config/app/feature/flags"), `{"dark":true}`, nil)

	b := newBrowser(t, "http://"+c.HTTPAddr(follower))
	// The leader may change under load; the page must show the one the
	// node names now (and not the one named in not, killed).
	showsLeaderNot := func(not string) {
		t.Helper()
		retry.Run(b.t, func(r *retry.R) {
			var l struct {
				Node string `json:"node"`
			}
			code, body := api.do("GET", c.URL(follower, "/cluster/leader"), nil)
			if code != 200 || json.Unmarshal(body, &l) != nil {
				r.Fatalf("no leader: %d %s", code, body)
			}
			got, err := b.text("#ov-leader-name")
			r.Check(err)
			if got != l.Node || got == not {
				r.Fatalf("the overview names %q, the node %q (not %q)", got, l.Node, not)
			}
		}, retry.Timeout(uiWait), retry.What("the overview to name the leader"))
	}
	showsLeader := func() { t.Helper(); showsLeaderNot("") }

	t.Run("root redirects to the overview", func(t *testing.T) {
		b.step(t)
		b.load("/")
		b.waitCond("the redirect to /ui/", `location.pathname === '/ui/'`)
		showsLeader()
		b.waitText("#node-info", "node "+c.Node(follower).Name)
		b.waitText("#ov-services", "2")
		b.waitText("#main", "Members", c.Node(0).Name, c.Node(1).Name, c.Node(2).Name, "alive", "voter")
		// A reload would lose this marker: every later step must keep it.
		b.eval(`window.nexusMarker = 'no reload'; true`)
		b.checkAccessible("overview")
		b.screenshot("overview")
	})

	t.Run("services appear without a reload", func(t *testing.T) {
		b.step(t)
		b.goTo("services")
		b.waitText("#services-table", "web", "db")
		b.checkAccessible("services")
		b.screenshot("services")
		// Registered through another node's API: the blocking query shows it.
		api.idem(t, "POST", L("/services/register"), map[string]any{"name": "api", "id": "api-1", "type": "http", "address": "127.0.0.1", "port": 9100, "tags": []string{"edge"}}, nil)
		b.waitText("#services-table", "api")
		// The filters run on what is loaded: typing narrows the list.
		b.typeInto("#f-q", "edge")
		b.waitCond("the filter to leave only api", `(() => { const rows = [...document.querySelectorAll('#services-table tbody tr')].map(r => r.dataset.service); return rows.length === 1 && rows[0] === 'api'; })()`)
		b.setValue("#f-q", "")
		b.waitCond("the filter to clear", `document.querySelectorAll('#services-table tbody tr').length === 3`)
	})

	t.Run("a hidden tab stops asking", func(t *testing.T) {
		b.step(t)
		b.goTo("services")
		b.waitText("#services-table", "api")
		// The list's blocking query must be waiting (between two reads the
		// loop sleeps, with nothing to abort).
		b.waitPending("/services?", "index=")
		_, canceled := b.counts()
		// Headless tabs are always visible: the test sets what the
		// browser sets when a tab goes to the background.
		b.eval(`Object.defineProperty(document, 'hidden', {value: true, configurable: true});
			document.dispatchEvent(new Event('visibilitychange')); true`)
		retry.Run(t, func(r *retry.R) {
			if _, c := b.counts(); c <= canceled {
				r.Fatalf("the blocking query in flight was not aborted")
			}
		}, retry.Timeout(uiWait))
		sent, _ := b.counts()
		// A change made now reaches the node (a blocking query would
		// answer at once) but not the hidden page.
		api.idem(t, "POST", L("/services/register"), map[string]any{"name": "later", "type": "http", "address": "127.0.0.1", "port": 9300}, nil)
		retry.Run(t, func(r *retry.R) {
			if code, _ := api.do("GET", c.URL(follower, "/services/later"), nil); code != 200 {
				r.Fatalf("the follower has not applied the registration: %d", code)
			}
		}, retry.Timeout(uiWait))
		if now, _ := b.counts(); now != sent {
			t.Errorf("the hidden page sent %d requests", now-sent)
		}
		if got, _ := b.text("#services-table"); strings.Contains(got, "later") {
			t.Error("the hidden page updated")
		}
		b.eval(`delete document.hidden; document.dispatchEvent(new Event('visibilitychange')); true`)
		b.waitText("#services-table", "later")
	})

	t.Run("an instance turns critical with its check output", func(t *testing.T) {
		b.step(t)
		b.goTo("services/web")
		b.waitText("#instances-table", "web-1", "web-2", "all good")
		b.waitText(`tr[data-instance="web-1"] .status`, "passing")
		api.idem(t, "PUT", c.URL((leader+2)%3, "/services/web/instances/web-1/heartbeat"), map[string]string{"status": "critical", "output": "disk full on /var"}, nil)
		b.waitText(`tr[data-instance="web-1"] .status`, "critical")
		b.waitText(`tr[data-instance="web-1"] .output`, "disk full on /var")
		b.checkAccessible("service")
		b.screenshot("service")
		b.goTo("services/web/web-1")
		b.waitText("#instance-status", "critical")
		b.waitText("#main", "disk full on /var", "zone=a", "ttl")
		b.screenshot("instance")
	})

	t.Run("register through the form, with a field error", func(t *testing.T) {
		b.step(t)
		b.goTo("services")
		b.waitText("#services-table", "api")
		b.click("#main .toolbar button")
		b.waitVisible("dialog[open] form")
		b.fill("#reg-name", "Bad Name", "#reg-type", "http", "#reg-port", "9200")
		b.fieldError("dialog[open] button[type=submit]", "reg-name", "name", "register-error")
		b.setValue("#reg-name", "cache")
		b.click("dialog[open] button[type=submit]")
		b.waitCond("the new service's page", `location.hash === '#/services/cache'`)
		b.waitText("#instances-table", "cache-127.0.0.1-9200")
		api.must("GET", L("/services/cache"), nil, nil)
		// Deregister it from its instance page.
		b.goTo("services/cache/cache-127.0.0.1-9200")
		b.click("#main .actions button.danger")
		b.click("dialog[open] button[value=yes]")
		b.waitText("#main", "Service cache is not registered (any more).")
		if code, body := api.do("GET", L("/services/cache"), nil); code != 404 {
			t.Fatalf("after the deregistration: %d %s", code, body)
		}
	})

	t.Run("a route through the form, a field error first", func(t *testing.T) {
		b.step(t)
		b.goTo("routes?new=1")
		b.waitVisible("#route-form")
		b.fill("#f-id", "r-web", "#f-service", "web", "#f-paths", "web-without-slash")
		b.fieldError("#route-form button[type=submit]", "f-paths", "must start with /", "route-error")
		if code, _ := api.do("GET", L("/gateway/routes/r-web"), nil); code != 404 {
			t.Fatalf("the refused route exists: %d", code)
		}
		b.fill("#f-paths", "/web/", "#f-methods", "GET POST")
		b.click("#route-form button[type=submit]")
		b.waitCond("the route list", `location.hash === '#/routes'`)
		b.waitText("#routes-table", "r-web", "/web/", "GET POST", "web")
		var r struct {
			Paths   []string `json:"paths"`
			Methods []string `json:"methods"`
		}
		api.must("GET", L("/gateway/routes/r-web"), nil, &r)
		if strings.Join(r.Paths, ",") != "/web/" || strings.Join(r.Methods, ",") != "GET,POST" {
			t.Fatalf("route as stored: %+v", r)
		}
		// The rates come from this node's /metrics: traffic through its
		// gateway shows as requests per second, every answer a 5xx (no
		// upstream listens).
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			gw := "http://" + c.Node(follower).GatewayAddr + "/web/x"
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond): // paced traffic, not a wait
				}
				if res, err := api.hc.Get(gw); err == nil {
					res.Body.Close()
				}
			}
		}()
		b.waitCond("a request rate and a 5xx share for r-web", `(() => {
			const cells = [...document.querySelectorAll('tr[data-route="r-web"] td.rate')].map(c => c.innerText);
			return cells.length === 2 && parseFloat(cells[0]) > 0 && cells[1] === '100.0 %'; })()`)
		b.checkAccessible("routes")
		b.screenshot("routes")

		// Edit it: the form loads the route; the id stays.
		b.goTo("routes/r-web")
		b.waitCond("the route in the form", `!document.getElementById('route-form').hidden && document.getElementById('f-id').value === 'r-web'`)
		b.setValue("#f-methods", "GET")
		b.click("#route-form button[type=submit]")
		b.waitCond("the route list", `location.hash === '#/routes'`)
		b.waitCond("GET only", `document.querySelector('tr[data-route="r-web"] td:nth-of-type(3)').innerText === 'GET'`)
		api.must("GET", L("/gateway/routes/r-web"), nil, &r)
		if strings.Join(r.Methods, ",") != "GET" {
			t.Fatalf("edited route as stored: %+v", r)
		}
		// Delete it.
		b.click(`tr[data-route="r-web"] button`)
		b.click("dialog[open] button[value=yes]")
		b.waitCond("the row gone", `!document.querySelector('tr[data-route="r-web"]')`)
		if code, _ := api.do("GET", L("/gateway/routes/r-web"), nil); code != 404 {
			t.Fatalf("deleted route: %d", code)
		}
	})

	t.Run("a config edit meets a CAS conflict", func(t *testing.T) {
		b.step(t)
		b.goTo("config/app/db/pool")
		b.waitText("#config-value", "20")
		b.waitText(".tree", "app/", "db/", "pool", "feature/", "flags")
		b.click("#config-edit")
		b.waitVisible("#f-value")
		b.setValue("#f-value", "not json")
		b.waitText("#f-value-error", "Not valid JSON")
		b.setValue("#f-value", "30")
		// Someone else writes first.
		api.idem(t, "PUT", c.URL((leader+2)%3, "/config/app/db/pool"), "25", nil)
		b.waitCond("the stale-draft note", `!document.getElementById('stale-note').hidden`)
		b.click("#config-save")
		b.waitText("#cas-conflict", "Conflict", "25")
		b.waitCond("the draft to stay", `document.getElementById('f-value').value === '30'`)
		b.checkAccessible("config conflict")
		b.screenshot("config-conflict")
		var e struct {
			Value json.RawMessage `json:"value"`
		}
		api.must("GET", L("/config/app/db/pool"), nil, &e)
		if string(e.Value) != "25" {
			t.Fatalf("after the conflict the key holds %s, want 25", e.Value)
		}
		b.click("#cas-overwrite")
		b.waitText("#config-value", "30")
		retry.Run(t, func(r *retry.R) {
			api.must("GET", L("/config/app/db/pool"), nil, &e)
			if string(e.Value) != "30" {
				r.Fatalf("key holds %s, want 30", e.Value)
			}
		}, retry.Timeout(uiWait))
	})

	t.Run("the audit timeline", func(t *testing.T) {
		b.step(t)
		b.goTo("audit")
		b.waitText("#audit-timeline", "config", "app/db/pool", "route", "r-web", "register", "web/web-1")
		b.checkAccessible("audit")
		// Filters go to the API: only config records remain.
		b.setValue("#f-resource_type", "config")
		b.setValue("#f-resource", "app/db/pool")
		b.click("#main form[role=search] button[type=submit]")
		b.waitCond("config records only", `(() => { const li = [...document.querySelectorAll('#audit-timeline > li')];
			return li.length === 3 && li.every(l => l.innerText.includes('app/db/pool')); })()`)
		b.eval(`document.querySelector('#audit-timeline details').open = true; true`)
		b.waitText("#audit-timeline .diff", "value: 25 → 30")
		b.screenshot("audit")
		// Paging through the API's cursor: two records a page.
		b.goTo("audit?resource_type=config&limit=2")
		b.waitCond("two records", `document.querySelectorAll('#audit-timeline > li').length === 2`)
		first := evalT[string](b, `document.querySelector('#audit-timeline > li').dataset.raftIndex`)
		b.click(`a[rel=next]`)
		b.waitCond("the older page", fmt.Sprintf(`(() => { const li = document.querySelector('#audit-timeline > li'); return !!li && li.dataset.raftIndex !== %s && location.hash.includes('after='); })()`, jsString(first)))
		b.waitText("#main .pager", "Newest")
	})

	t.Run("phone width and dark", func(t *testing.T) {
		b.step(t)
		b.viewport(390, 844, "")
		b.goTo("services")
		b.waitText("#services-table", "web")
		wide := evalT[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`)
		if wide {
			t.Error("the services page scrolls sideways at 390 px")
		}
		b.screenshot("services-phone")
		b.viewport(1280, 900, "dark")
		b.goTo("overview")
		showsLeader()
		bg := evalT[string](b, `getComputedStyle(document.body).backgroundColor`)
		if bg != "rgb(18, 20, 23)" {
			t.Errorf("dark scheme background %q, want rgb(18, 20, 23)", bg)
		}
		b.screenshot("overview-dark")
		b.viewport(1280, 900, "light")
	})

	t.Run("keyboard", func(t *testing.T) {
		b.step(t)
		b.goTo("overview")
		showsLeader()
		// Tab from the start of the document, as after a load (blur alone
		// leaves the starting point where the focus was: on the page).
		b.eval(`document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex'); true`)
		b.pressTab()
		b.waitCond("the skip link first", `document.activeElement && document.activeElement.classList.contains('skip')`)
		b.eval(`document.querySelector('#nav a[href="#/services"]').focus(); true`)
		b.pressEnter()
		b.waitCond("Enter on the nav link to open services", `location.hash === '#/services'`)
		b.waitCond("focus moved to the page", `document.activeElement && document.activeElement.id === 'main'`)
	})

	b.t = t
	if got := evalT[string](b, `String(window.nexusMarker)`); got != "no reload" {
		t.Errorf("the page reloaded during the test (marker %q)", got)
	}
	b.checkNoExceptions()
	b.checkSameOrigin()

	t.Run("the overview follows a new leader", func(t *testing.T) {
		ldr, name := waitLeader(t, c, []int{0, 1, 2})
		if ldr == follower {
			// The page's own node leads now: watch from another one.
			follower = (ldr + 1) % 3
			b = newBrowser(t, "http://"+c.HTTPAddr(follower))
			b.load("/ui/#/overview")
		}
		b.step(t)
		b.goTo("overview")
		showsLeader()
		if err := c.Kill(ldr); err != nil {
			t.Fatal(err)
		}
		var live []int
		for i := range 3 {
			if i != ldr {
				live = append(live, i)
			}
		}
		waitLeader(t, c, live)
		// Another election may follow under load: the page must name the
		// leader the node names now, and not the killed one.
		showsLeaderNot(name)
		b.waitCond("the old leader shown failed", fmt.Sprintf(`[...document.querySelectorAll('#main tbody tr')].some(r => r.innerText.includes(%s) && /failed|suspect/.test(r.innerText))`, jsString(name)))
		b.screenshot("overview-failover")
		b.checkNoExceptions()
		b.checkSameOrigin()
	})
}
