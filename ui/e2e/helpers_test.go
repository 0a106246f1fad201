package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

// uiWait bounds every wait on the page: generous, the machine is shared.
const uiWait = 45 * time.Second

var binary struct {
	once sync.Once
	path string
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// requireChromium returns the browser, or skips (fails with
// NEXUS_UI_REQUIRED=1) when there is none.
func requireChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("ui e2e: skipped in -short mode")
	}
	exe := os.Getenv("NEXUS_UI_CHROMIUM")
	if exe == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				exe = p
				break
			}
		}
	}
	if exe == "" {
		if os.Getenv("NEXUS_UI_REQUIRED") == "1" {
			t.Fatal("ui e2e: chromium is not installed and NEXUS_UI_REQUIRED=1 (apt-get install -y chromium)")
		}
		t.Skip("ui e2e: chromium is not installed (apt-get install -y chromium); NEXUS_UI_REQUIRED=1 makes this a failure")
	}
	return exe
}

// nexusBinary builds cmd/nexus once per test binary (or takes NEXUS_E2E_BINARY).
func nexusBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("NEXUS_E2E_BINARY"); b != "" {
		return b
	}
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "nexus-ui-e2e-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "nexus")
		out, err := exec.Command("go", "build", "-o", binary.path, "github.com/nexus/nexus/cmd/nexus").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build github.com/nexus/nexus/cmd/nexus: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// startCluster starts n nodes on addresses of their own (127.0.19.x by
// default) so that internal/e2e and a dev cluster can run beside them.
func startCluster(t *testing.T, n int, extra ...string) *proccluster.Cluster {
	t.Helper()
	base := os.Getenv("NEXUS_UI_BASE_IP")
	if base == "" {
		base = "127.0.19."
	}
	return proccluster.StartT(t, proccluster.Options{
		Binary: nexusBinary(t), Nodes: n, BaseIP: base,
		RaftPort: 19300, GossipPort: 19301, HTTPPort: 19500, GatewayPort: 19080,
		ExtraArgs:    extra,
		StartTimeout: 90 * time.Second,
	})
}

// waitLeader waits until every live node agrees on a leader and is ready.
func waitLeader(t *testing.T, c *proccluster.Cluster, among []int) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	i, name, err := c.WaitLeaderAmong(ctx, among)
	if err != nil {
		t.Fatalf("no leader: %v", err)
	}
	for _, j := range among {
		if err := c.WaitReady(ctx, j); err != nil {
			t.Fatalf("node %d not ready: %v", j, err)
		}
	}
	return i, name
}

// ---- the admin API, as a script would call it ------------------------------

type client struct {
	t     *testing.T
	hc    *http.Client
	token string
}

func newClient(t *testing.T) *client {
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// do sends a request; body is JSON-encoded unless it is a string.
func (c *client) do(method, u string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("X-Nexus-Token", c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// must sends a request that has to succeed and decodes its answer into out.
func (c *client) must(method, u string, body, out any) {
	c.t.Helper()
	code, b := c.do(method, u, body)
	if code/100 != 2 {
		c.t.Fatalf("%s %s: %d %s", method, u, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
}

// idem sends a write that may be sent twice (an id given, a plain set, a
// release): a 503 no_leader or 504 outcome_unknown (an election on a
// loaded machine) sends it again; any other failure fails t.
func (c *client) idem(t *testing.T, method, u string, body, out any) {
	t.Helper()
	var code int
	var b []byte
	retry.Run(t, func(r *retry.R) {
		code, b = c.do(method, u, body)
		if code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout {
			r.Fatalf("%s %s: %d %s", method, u, code, b)
		}
	}, retry.Timeout(uiWait))
	if code/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, u, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
}

// ---- the browser -------------------------------------------------------------

// browser is one chromium tab on one node's console. It records every
// request the page makes and every uncaught JavaScript exception.
type browser struct {
	t      *testing.T
	ctx    context.Context
	origin string // http://host:port of the node

	mu         sync.Mutex
	requests   []string
	canceled   int                          // requests the page aborted
	open       map[network.RequestID]string // requests without an answer yet
	exceptions []string
}

func newBrowser(t *testing.T, origin string) *browser {
	t.Helper()
	exe := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in CI
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, origin: origin, open: map[network.RequestID]string{}}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.mu.Lock()
			b.requests = append(b.requests, e.Request.URL)
			b.open[e.RequestID] = e.Request.URL
			b.mu.Unlock()
		case *network.EventLoadingFinished:
			b.mu.Lock()
			delete(b.open, e.RequestID)
			b.mu.Unlock()
		case *network.EventLoadingFailed:
			b.mu.Lock()
			delete(b.open, e.RequestID)
			if e.Canceled {
				b.canceled++
			}
			b.mu.Unlock()
		case *cdpruntime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.exceptions = append(b.exceptions, msg)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("network.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdpruntime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("runtime.enable: %v", err)
	}
	return b
}

// run runs one action with a deadline.
func run[T any](b *browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, uiWait)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func (b *browser) must(what string, err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// load navigates (a real page load) to path on the node.
func (b *browser) load(path string) {
	b.t.Helper()
	_, err := run(b, chromedp.Navigate(b.origin+path))
	b.must("navigate "+path, err)
	b.waitVisible("#main")
}

// goTo changes the hash: the console routes without reloading.
func (b *browser) goTo(hash string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`location.hash = %s; true`, jsString("#/"+hash)))
}

func jsString(s string) string {
	j, _ := json.Marshal(s)
	return string(j)
}

// eval evaluates JavaScript that returns a value of T.
func evalT[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := run(b, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	b.must("evaluate "+js, err)
	return v
}

func (b *browser) eval(js string) { evalT[bool](b, js) }

// text is the visible text of the first element sel matches ("" if none).
func (b *browser) text(sel string) (string, error) {
	return run(b, chromedp.Evaluate[string](fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : ''; })()`, jsString(sel))))
}

// waitText waits until sel's text contains every one of want.
func (b *browser) waitText(sel string, want ...string) string {
	b.t.Helper()
	var got string
	retry.Run(b.t, func(r *retry.R) {
		var err error
		got, err = b.text(sel)
		r.Check(err)
		for _, w := range want {
			if !strings.Contains(got, w) {
				r.Fatalf("%s shows %q, want %q", sel, clip(got), w)
			}
		}
	}, retry.Timeout(uiWait), retry.What(fmt.Sprintf("%s to show %q", sel, want)))
	return got
}

// waitCond waits until the JavaScript expression js is true.
func (b *browser) waitCond(what, js string) {
	b.t.Helper()
	retry.Run(b.t, func(r *retry.R) {
		ok, err := run(b, chromedp.Evaluate[bool](js))
		r.Check(err)
		if !ok {
			page, _ := b.text("body")
			r.Fatalf("not yet: %s; the page shows %q", js, clip(page))
		}
	}, retry.Timeout(uiWait), retry.What(what))
}

func (b *browser) waitVisible(sel string) {
	b.t.Helper()
	_, err := run(b, chromedp.WaitVisible(chromedp.CSS(sel)))
	b.must("wait visible "+sel, err)
}

// click clicks the element sel matches. A live page may draw its table
// again between chromium finding the element and clicking it (the routes
// list does every 2 s, with the metrics poll): the element found is gone
// ("Could not find node with given id") and the click is tried again on
// the one that replaced it; nothing was clicked.
func (b *browser) click(sel string) {
	b.t.Helper()
	for attempt := 1; ; attempt++ {
		_, err := run(b, chromedp.Click(chromedp.CSS(sel)))
		if err != nil && attempt < 5 && strings.Contains(err.Error(), "Could not find node") {
			b.t.Logf("click %s: %v; again", sel, err)
			continue
		}
		b.must("click "+sel, err)
		return
	}
}

// setValue sets a form control's value and fires input and change, as typing would.
func (b *browser) setValue(sel, v string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) throw new Error('no ' + %s);
		e.value = %s; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`,
		jsString(sel), jsString(sel), jsString(v)))
}

// fill sets several controls: selector, value, selector, value...
func (b *browser) fill(pairs ...string) {
	b.t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		b.setValue(pairs[i], pairs[i+1])
	}
}

// typeInto types text with key events into sel (after focusing it).
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	_, err := run(b, chromedp.SendKeys(chromedp.CSS(sel), text))
	b.must("type into "+sel, err)
}

func (b *browser) pressTab() {
	b.t.Helper()
	_, err := run(b, chromedp.KeyEvent(kb.Tab))
	b.must("press Tab", err)
}

func (b *browser) pressEnter() {
	b.t.Helper()
	_, err := run(b, chromedp.KeyEvent(kb.Enter))
	b.must("press Enter", err)
}

// step points the browser's failures at t and, if t fails, saves what the
// page showed to $TMPDIR/nexus-ui-failures/TEST.png (logged).
func (b *browser) step(t *testing.T) {
	b.t = t
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		png, err := run(b, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("no failure screenshot: %v", err)
			return
		}
		dir := filepath.Join(os.TempDir(), "nexus-ui-failures")
		_ = os.MkdirAll(dir, 0o755)
		path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+".png")
		if err := os.WriteFile(path, png, 0o644); err == nil {
			t.Logf("the page at the failure: %s", path)
		}
	})
}

// fieldError submits a form and waits for the API's error beside the
// control id, marked invalid; then checks labels and takes a screenshot.
func (b *browser) fieldError(submit, id, want, shot string) {
	b.t.Helper()
	b.click(submit)
	b.waitText("#"+id+"-error", want)
	b.waitCond(id+" marked invalid", fmt.Sprintf(`document.getElementById(%s).getAttribute('aria-invalid') === 'true'`, jsString(id)))
	b.checkAccessible(shot)
	b.screenshot(shot)
}

// screenshot writes docs/ui/NAME.png when NEXUS_UI_SCREENSHOTS=1; it always
// takes it, so a page that cannot be captured fails the test.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	// Confirmations would cover the page; quality 100 makes a PNG.
	b.eval(`document.getElementById('toast').replaceChildren(); true`)
	png, err := run(b, chromedp.FullScreenshot(100))
	b.must("screenshot "+name, err)
	if len(png) == 0 {
		b.t.Fatalf("screenshot %s: empty", name)
	}
	if os.Getenv("NEXUS_UI_SCREENSHOTS") != "1" {
		return
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "docs", "ui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// viewport sets the page size (phone width) and colour scheme.
func (b *browser) viewport(width, height int64, scheme string) {
	b.t.Helper()
	_, err := run(b, chromedp.EmulateViewport(width, height))
	b.must("viewport", err)
	var features []*emulation.MediaFeature
	if scheme != "" {
		features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
	}
	_, err = chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: features})
	b.must("emulated media", err)
}

// counts returns how many requests the page sent and aborted so far.
func (b *browser) counts() (sent, canceled int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.requests), b.canceled
}

// waitPending waits until a request whose URL contains every one of
// parts is in flight (sent, not answered): a blocking query that waits.
func (b *browser) waitPending(parts ...string) {
	b.t.Helper()
	retry.Run(b.t, func(r *retry.R) {
		b.mu.Lock()
		defer b.mu.Unlock()
	next:
		for _, u := range b.open {
			for _, p := range parts {
				if !strings.Contains(u, p) {
					continue next
				}
			}
			return
		}
		r.Fatalf("no request with %q in flight (%d open)", parts, len(b.open))
	}, retry.Timeout(uiWait), retry.What(fmt.Sprintf("a request with %q in flight", parts)))
}

// checkSameOrigin fails the test if the page requested anything from
// another host than its node (data: URLs are not requests to a host).
func (b *browser) checkSameOrigin() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requests) == 0 {
		b.t.Fatal("no request was recorded: the network listener is broken")
	}
	want, _ := url.Parse(b.origin)
	for _, r := range b.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != want.Host) {
			b.t.Errorf("the page requested %q: not its node %s", r, want.Host)
		}
	}
	b.t.Logf("%d requests, all to %s", len(b.requests), want.Host)
}

// checkNoExceptions fails the test on uncaught JavaScript exceptions.
func (b *browser) checkNoExceptions() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.exceptions {
		b.t.Errorf("uncaught exception in the page: %s", e)
	}
}

// checkAccessible fails on form controls without a label and buttons or
// links without a name on the current page.
func (b *browser) checkAccessible(page string) {
	b.t.Helper()
	bad := evalT[[]string](b, `(() => {
		const out = [];
		for (const e of document.querySelectorAll('main input, main select, main textarea, dialog input, dialog select, dialog textarea')) {
			if (e.type === 'hidden') continue;
			if ((e.labels && e.labels.length) || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')) continue;
			out.push(e.outerHTML.slice(0, 120));
		}
		for (const e of document.querySelectorAll('button, a[href]')) {
			if (!(e.innerText || '').trim() && !e.getAttribute('aria-label') && !e.querySelector('img[alt]:not([alt=""])')) out.push(e.outerHTML.slice(0, 120));
		}
		return out;
	})()`)
	for _, e := range bad {
		b.t.Errorf("%s: control without an accessible name: %s", page, e)
	}
}

func clip(s string) string {
	if len(s) > 1500 {
		return s[:1500] + "…"
	}
	return s
}
