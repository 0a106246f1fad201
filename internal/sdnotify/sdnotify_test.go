package sdnotify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listener is a real unixgram socket standing in for systemd's.
type listener struct {
	t    *testing.T
	conn *net.UnixConn
	name string // the NOTIFY_SOCKET value
}

func listen(t *testing.T, abstract bool) *listener {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify.sock")
	if abstract {
		var b [8]byte
		_, _ = rand.Read(b[:])
		name = "@nexus-sdnotify-test-" + hex.EncodeToString(b[:])
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &listener{t: t, conn: c, name: name}
}

func (l *listener) env(k string) string {
	if k == EnvSocket {
		return l.name
	}
	return ""
}

// next reads one datagram (failing after 5s).
func (l *listener) next() string {
	l.t.Helper()
	_ = l.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := l.conn.ReadFrom(buf)
	if err != nil {
		l.t.Fatalf("reading a notification: %v", err)
	}
	return string(buf[:n])
}

// none checks that no datagram is waiting.
func (l *listener) none() {
	l.t.Helper()
	_ = l.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 4096)
	if n, _, err := l.conn.ReadFrom(buf); err == nil {
		l.t.Fatalf("unexpected notification %q", buf[:n])
	}
}

func notifier(t *testing.T, l *listener) *Notifier {
	t.Helper()
	n, err := New(l.env)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Enabled() {
		t.Fatal("notifier disabled with NOTIFY_SOCKET set")
	}
	return n
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		env     string
		enabled bool
		err     string
	}{
		{"", false, ""},
		{"/run/systemd/notify", true, ""},
		{"@/org/freedesktop/systemd1/notify/1", true, ""},
		{"relative/notify", false, "absolute path"},
		{"vsock:2:1234", false, "absolute path"},
	} {
		n, err := New(func(k string) string {
			if k == EnvSocket {
				return tc.env
			}
			return ""
		})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), EnvSocket) {
				t.Errorf("New(%q) error %v, want one naming %s and %q", tc.env, err, EnvSocket, tc.err)
			}
		} else if err != nil {
			t.Errorf("New(%q): %v", tc.env, err)
		}
		if n.Enabled() != tc.enabled {
			t.Errorf("New(%q).Enabled() = %v, want %v", tc.env, n.Enabled(), tc.enabled)
		}
	}
}

func TestDisabledSendsNothing(t *testing.T) {
	var nilN *Notifier
	for _, n := range []*Notifier{nilN, {}} {
		ran := false
		if err := errors.Join(n.Ready("x"), n.Stopping(), n.Status("x"), n.Reloading(),
			n.Reload(func() { ran = true }),
			n.WhenReady(context.Background(), make(chan struct{}), "")); err != nil {
			t.Errorf("disabled notifier: %v", err)
		}
		if !ran {
			t.Error("Reload did not run the reload on a disabled notifier")
		}
	}
}

func TestMessages(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run("abstract="+strconv.FormatBool(abstract), func(t *testing.T) {
			l := listen(t, abstract)
			n := notifier(t, l)
			for _, tc := range []struct {
				send func() error
				want string
			}{
				{func() error { return n.Status("waiting for a leader") }, "STATUS=waiting for a leader\n"},
				{func() error { return n.Status("two\nlines\r") }, "STATUS=two lines \n"},
				{func() error { return n.Ready("serving") }, "READY=1\nSTATUS=serving\n"},
				{func() error { return n.Ready("") }, "READY=1\n"},
				{n.Stopping, "STOPPING=1\n"},
			} {
				if err := tc.send(); err != nil {
					t.Fatal(err)
				}
				if got := l.next(); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	l := listen(t, false)
	n := notifier(t, l)
	before, _ := monotonicUsec()
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	got := l.next()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC=", got)
	}
	us, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	after, _ := monotonicUsec()
	if err != nil || us < before || us > after || before == 0 {
		t.Errorf("MONOTONIC_USEC %q not within [%d, %d]", lines[1], before, after)
	}
}

func TestReload(t *testing.T) {
	l := listen(t, true)
	n := notifier(t, l)

	// Not ready yet: the reload runs, systemd hears nothing (READY=1 is
	// WhenReady's to send).
	ran := 0
	if err := n.Reload(func() { ran++ }); err != nil {
		t.Fatal(err)
	}
	l.none()

	if err := n.Ready(""); err != nil {
		t.Fatal(err)
	}
	l.next()
	if err := n.Reload(func() {
		ran++
		// The reload runs after RELOADING=1 was sent.
		if got := l.next(); !strings.HasPrefix(got, "RELOADING=1\n") {
			t.Errorf("during the reload: got %q, want RELOADING=1 first", got)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got := l.next(); got != "READY=1\n" {
		t.Errorf("after the reload: got %q, want READY=1", got)
	}
	if ran != 2 {
		t.Errorf("reload ran %d times, want 2", ran)
	}
}

func TestWhenReady(t *testing.T) {
	l := listen(t, false)
	n := notifier(t, l)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- n.WhenReady(context.Background(), ready, "serving") }()
	// Nothing is sent before the node is ready.
	l.none()
	close(ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := l.next(); got != "READY=1\nSTATUS=serving\n" {
		t.Errorf("got %q", got)
	}
}

func TestWhenReadyGivesUpWithContext(t *testing.T) {
	l := listen(t, false)
	n := notifier(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.WhenReady(ctx, make(chan struct{}), "") }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("WhenReady = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WhenReady did not return after its context ended")
	}
	l.none()
}

func TestSendWithoutListener(t *testing.T) {
	name := filepath.Join(t.TempDir(), "gone.sock")
	n, err := New(func(string) string { return name })
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("Ready to a missing socket: %v, want an error naming it", err)
	}
	// A failed READY=1 does not count as ready: a reload sends nothing.
	if err := n.Reload(func() {}); err != nil {
		t.Errorf("Reload before a successful READY=1: %v", err)
	}
}
