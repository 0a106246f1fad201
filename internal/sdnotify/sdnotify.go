// Package sdnotify tells systemd about the agent's state through the
// sd_notify protocol (sd_notify(3)): one datagram of NAME=VALUE lines sent to
// the unixgram socket named by $NOTIFY_SOCKET. A path starting with "@" is a
// Linux abstract socket. Without $NOTIFY_SOCKET (not under systemd, or a
// unit that is not Type=notify) every call does nothing.
//
// The agent sends READY=1 once /ready would answer 200 (WhenReady),
// RELOADING=1 and READY=1 around a SIGHUP reload (Reload) and STOPPING=1
// when it starts to stop (Stopping); STATUS= lines tell `systemctl status`
// what it waits for.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// EnvSocket is the environment variable systemd sets for Type=notify units.
const EnvSocket = "NOTIFY_SOCKET"

// Notifier sends notifications to one socket. The zero value and a nil
// *Notifier send nothing. Safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr // nil: disabled
	// mu orders the datagrams of Reload and WhenReady, so that READY=1 of
	// a reload can never pass the RELOADING=1 before it.
	mu    sync.Mutex
	ready atomic.Bool // READY=1 was sent
}

// New returns the notifier of the socket getenv(EnvSocket) names, or a
// disabled one when it is empty. A value that is neither an absolute path
// nor an abstract name ("@...") is an error (systemd's vsock: addresses are
// not supported).
func New(getenv func(string) string) (*Notifier, error) {
	s := getenv(EnvSocket)
	if s == "" {
		return &Notifier{}, nil
	}
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "@") {
		return &Notifier{}, fmt.Errorf("%s=%q: want an absolute path or an abstract socket name starting with @", EnvSocket, s)
	}
	// Go maps a leading "@" to the abstract namespace (a leading NUL byte).
	return &Notifier{addr: &net.UnixAddr{Name: s, Net: "unixgram"}}, nil
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends one datagram with the given NAME=VALUE lines.
func (n *Notifier) Send(lines ...string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Ready sends READY=1 (and STATUS=status when status is not empty).
func (n *Notifier) Ready(status string) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.readyLocked(status)
}

func (n *Notifier) readyLocked(status string) error {
	lines := []string{"READY=1"}
	if status != "" {
		lines = append(lines, statusLine(status))
	}
	err := n.Send(lines...)
	if err == nil {
		n.ready.Store(true)
	}
	return err
}

// Reloading sends RELOADING=1 with MONOTONIC_USEC, which systemd wants with
// it (systemd.service(5), Type=notify-reload).
func (n *Notifier) Reloading() error {
	lines := []string{"RELOADING=1"}
	if us, ok := monotonicUsec(); ok {
		lines = append(lines, "MONOTONIC_USEC="+strconv.FormatUint(us, 10))
	}
	return n.Send(lines...)
}

// Stopping sends STOPPING=1.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status sends STATUS=text (shown by `systemctl status`).
func (n *Notifier) Status(text string) error { return n.Send(statusLine(text)) }

// statusLine keeps a status to one line: a newline would start another
// assignment.
func statusLine(text string) string {
	return "STATUS=" + strings.NewReplacer("\r", " ", "\n", " ").Replace(text)
}

// Reload runs reload between RELOADING=1 and READY=1. Before the service
// was reported ready it only runs reload: READY=1 is WhenReady's to send.
// Send errors are joined; reload always runs.
func (n *Notifier) Reload(reload func()) error {
	if !n.Enabled() {
		reload()
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.ready.Load() {
		reload()
		return nil
	}
	err := n.Reloading()
	reload()
	return errors.Join(err, n.readyLocked(""))
}

// WhenReady waits until ready is closed and then sends READY=1 with
// STATUS=status. It returns nil once sent (or at once when disabled) and
// ctx.Err() if ctx ends first.
func (n *Notifier) WhenReady(ctx context.Context, ready <-chan struct{}, status string) error {
	if !n.Enabled() {
		return nil
	}
	select {
	case <-ready:
		return n.Ready(status)
	case <-ctx.Done():
		return ctx.Err()
	}
}
