package retry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeT records what Run reports instead of failing the real test.
type fakeT struct{ fatal string }

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
}

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		passAfter int // attempt that passes; 0 = never
		fail      func(r *R)
		wantFatal string
	}{
		{name: "passes at once", passAfter: 1, fail: func(r *R) { r.Fatalf("no") }},
		{name: "passes on the third attempt", passAfter: 3, fail: func(r *R) { r.Fatalf("not yet") }},
		{name: "never passes with Fatalf", fail: func(r *R) { r.Fatalf("leader is %q", "") }, wantFatal: `leader is ""`},
		{name: "never passes with Errorf", fail: func(r *R) { r.Errorf("a"); r.Errorf("b") }, wantFatal: "a; b"},
		{name: "Check of an error", fail: func(r *R) { r.Check(errors.New("boom")) }, wantFatal: "boom"},
		{name: "FailNow", fail: func(r *R) { r.FailNow() }, wantFatal: "gave up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeT{}
			attempts := 0
			Run(ft, func(r *R) {
				attempts++
				if tc.passAfter > 0 && attempts >= tc.passAfter {
					return
				}
				tc.fail(r)
			}, Timeout(150*time.Millisecond), What("the test condition"))
			if tc.wantFatal == "" {
				if ft.fatal != "" {
					t.Fatalf("Run failed: %s", ft.fatal)
				}
				if attempts != tc.passAfter {
					t.Fatalf("attempts = %d, want %d", attempts, tc.passAfter)
				}
				return
			}
			if !strings.Contains(ft.fatal, tc.wantFatal) || !strings.Contains(ft.fatal, "the test condition") {
				t.Fatalf("fatal = %q, want it to name %q and the condition", ft.fatal, tc.wantFatal)
			}
			if attempts < 2 {
				t.Fatalf("gave up after %d attempt(s)", attempts)
			}
		})
	}
}

func TestRunDoesNotSwallowOtherPanics(t *testing.T) {
	defer func() {
		if p := recover(); p != "other" {
			t.Fatalf("recovered %v, want the attempt's own panic", p)
		}
	}()
	Run(&fakeT{}, func(r *R) { panic("other") }, Timeout(50*time.Millisecond))
}

func TestUntil(t *testing.T) {
	n := 0
	err := Until(context.Background(), "third call", func() error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("err=%v n=%d", err, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	err = Until(ctx, "never", func() error { return errors.New("still no") })
	if err == nil || !strings.Contains(err.Error(), "never") || !strings.Contains(err.Error(), "still no") {
		t.Fatalf("err = %v", err)
	}
}

func TestCond(t *testing.T) {
	ft := &fakeT{}
	n := 0
	Run(ft, Cond("the third look", func() bool { n++; return n >= 3 }), Timeout(time.Second))
	if ft.fatal != "" || n != 3 {
		t.Fatalf("fatal %q after %d looks", ft.fatal, n)
	}
	ft = &fakeT{}
	Run(ft, Cond("never", func() bool { return false }), Timeout(50*time.Millisecond))
	if !strings.Contains(ft.fatal, "not yet: never") {
		t.Fatalf("fatal %q", ft.fatal)
	}
}
