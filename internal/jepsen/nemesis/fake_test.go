package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// fakeCluster records what the nemeses do.
type fakeCluster struct {
	mu        sync.Mutex
	n         int
	leader    int
	calls     []string
	down      map[int]bool
	paused    map[int]bool
	execErr   func(argv []string) error
	leaveErr  error
	removeErr error
}

func newFake(n int) *fakeCluster {
	return &fakeCluster{n: n, leader: 0, down: map[int]bool{}, paused: map[int]bool{}}
}

func (f *fakeCluster) log(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

func (f *fakeCluster) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeCluster) N() int                { return f.n }
func (f *fakeCluster) NodeName(i int) string { return fmt.Sprintf("n%d", i+1) }
func (f *fakeCluster) NodeIP(i int) string   { return fmt.Sprintf("10.77.0.%d", 11+i) }
func (f *fakeCluster) Leader(context.Context) (int, error) {
	if f.leader < 0 {
		return -1, errors.New("no leader")
	}
	return f.leader, nil
}
func (f *fakeCluster) Kill(i int) error {
	f.log("kill %d", i)
	f.mu.Lock()
	f.down[i] = true
	f.mu.Unlock()
	return nil
}
func (f *fakeCluster) Restart(_ context.Context, i int) error {
	f.log("restart %d", i)
	f.mu.Lock()
	f.down[i] = false
	f.mu.Unlock()
	return nil
}
func (f *fakeCluster) Pause(i int) error  { f.log("pause %d", i); return nil }
func (f *fakeCluster) Resume(i int) error { f.log("resume %d", i); return nil }
func (f *fakeCluster) Leave(_ context.Context, i int) error {
	f.log("leave %d", i)
	return f.leaveErr
}
func (f *fakeCluster) RemovePeer(_ context.Context, i int) error {
	f.log("removepeer %d", i)
	return f.removeErr
}
func (f *fakeCluster) WipeData(i int) error                     { f.log("wipe %d", i); return nil }
func (f *fakeCluster) WaitVoter(_ context.Context, i int) error { f.log("voter %d", i); return nil }
func (f *fakeCluster) Exec(_ context.Context, i int, stdin []byte, argv ...string) ([]byte, error) {
	line := strings.Join(argv, " ")
	if len(stdin) > 0 {
		line += " <<" + strings.ReplaceAll(strings.TrimSpace(string(stdin)), "\n", ";")
	}
	f.log("exec %d %s", i, line)
	if f.execErr != nil {
		if err := f.execErr(argv); err != nil {
			return []byte(err.Error()), err
		}
	}
	return nil, nil
}
