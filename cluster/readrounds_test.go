package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every caller gets an index read at or after its call (the commit index
// moves all the time here), and concurrent callers share rounds.
func TestReadRoundsIndexFromAfterTheCall(t *testing.T) {
	var commit, fetches atomic.Uint64
	r := &readRounds{timeout: time.Second, staleAfter: time.Second, fetch: func(context.Context) (uint64, error) {
		fetches.Add(1)
		idx := commit.Load()
		time.Sleep(200 * time.Microsecond) // a round trip
		return idx, nil
	}}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				commit.Add(1)
				time.Sleep(10 * time.Microsecond)
			}
		}
	}()
	defer close(stop)
	const callers, each = 32, 50
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				before := commit.Load()
				idx, err := r.get(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if idx < before {
					t.Errorf("read index %d is older than the commit index %d seen before the call", idx, before)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n >= callers*each {
		t.Fatalf("%d rounds for %d reads: nothing was shared", n, callers*each)
	} else {
		t.Logf("%d reads in %d rounds", callers*each, n)
	}
}

// A hanging round does not hold back callers that come after it for more
// than staleAfter; its own callers get its outcome (here, their deadline).
func TestReadRoundsHangingRound(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	r := &readRounds{timeout: 5 * time.Second, staleAfter: 50 * time.Millisecond, fetch: func(ctx context.Context) (uint64, error) {
		if calls.Add(1) == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return 0, errors.New("leader gone")
		}
		return 7, nil
	}}
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := r.get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller of the hanging round: %v, want its deadline", err)
	}
	start := time.Now()
	idx, err := r.get(context.Background())
	if err != nil || idx != 7 {
		t.Fatalf("caller after the hanging round: %d, %v", idx, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("caller after the hanging round waited %v", d)
	}
}

// A round's error reaches every caller that shared it.
func TestReadRoundsErrorReachesItsCallers(t *testing.T) {
	errNo := errors.New("no leader")
	gate := make(chan struct{})
	r := &readRounds{timeout: time.Second, staleAfter: time.Second, fetch: func(context.Context) (uint64, error) {
		<-gate
		return 0, errNo
	}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.get(context.Background())
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, errNo) {
			t.Fatalf("caller got %v, want %v", err, errNo)
		}
	}
}
