// Package retry is the one way tests wait for a condition: they retry a
// function until it passes or a deadline ends, instead of sleeping and
// hoping (the shape of Consul's sdk/testutil/retry).
//
//	retry.Run(t, func(r *retry.R) {
//		if got := leader(); got == "" {
//			r.Fatalf("no leader yet")
//		}
//	})
//
// Code that is not a test (harnesses that return errors) uses Until.
package retry

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Defaults of Run.
const (
	DefaultTimeout = 10 * time.Second
	firstWait      = 10 * time.Millisecond
	maxWait        = 250 * time.Millisecond
)

// TB is the part of testing.TB that Run needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// R is one attempt. Fatalf, Errorf and FailNow end the attempt (not the
// test); the last attempt's messages are reported if time runs out.
type R struct {
	failed bool
	msgs   []string
}

// attemptDone unwinds an attempt from Fatalf/FailNow.
type attemptDone struct{}

// Helper is a no-op, so that helpers taking an *R read like test helpers.
func (r *R) Helper() {}

// Errorf records a failure and lets the attempt continue.
func (r *R) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// Error records a failure and lets the attempt continue.
func (r *R) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

// Fatalf records a failure and ends the attempt.
func (r *R) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(attemptDone{})
}

// Fatal records a failure and ends the attempt.
func (r *R) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// FailNow ends the attempt as failed.
func (r *R) FailNow() {
	r.failed = true
	panic(attemptDone{})
}

// Check ends the attempt if err is not nil.
func (r *R) Check(err error) {
	if err != nil {
		r.Fatal(err)
	}
}

// Option changes how Run waits.
type Option func(*options)

type options struct {
	timeout time.Duration
	what    string
}

// Timeout sets how long Run keeps trying (default DefaultTimeout).
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// What names the condition in the failure message.
func What(s string) Option { return func(o *options) { o.what = s } }

// Run calls f until an attempt passes, waiting a little longer between
// attempts (10 ms doubling to 250 ms). When the timeout passes it fails t
// with the last attempt's messages.
func Run(t TB, f func(r *R), opts ...Option) {
	t.Helper()
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	deadline := time.Now().Add(o.timeout)
	wait := firstWait
	for attempt := 1; ; attempt++ {
		r := &R{}
		run(r, f)
		if !r.failed {
			return
		}
		if time.Now().After(deadline) {
			what := ""
			if o.what != "" {
				what = " waiting for " + o.what
			}
			t.Fatalf("retry: gave up after %s (%d attempts)%s: %s", o.timeout, attempt, what, strings.Join(r.msgs, "; "))
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, maxWait)
	}
}

// Cond is an attempt that passes when cond reports true, and otherwise
// fails naming what it waits for:
//
//	retry.Run(t, retry.Cond("a leader", func() bool { return leader() != "" }))
func Cond(what string, cond func() bool) func(r *R) {
	return func(r *R) {
		if !cond() {
			r.Fatalf("not yet: %s", what)
		}
	}
}

// run runs one attempt, turning its FailNow panic back into a return.
func run(r *R, f func(r *R)) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(attemptDone); !ok {
				panic(p)
			}
		}
	}()
	f(r)
}

// Until calls f until it returns nil or ctx ends, waiting as Run does; it
// returns f's last error, wrapped with what, if ctx ends first.
func Until(ctx context.Context, what string, f func() error) error {
	wait := firstWait
	for {
		err := f()
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: gave up: %w", what, err)
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
