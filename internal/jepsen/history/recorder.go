package history

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder collects ops from concurrent clients and streams each one, as it
// completes, to w as a JSON line. Safe for concurrent use.
type Recorder struct {
	start time.Time
	procs atomic.Int64

	mu  sync.Mutex
	ops []Op
	w   *bufio.Writer
	err error
}

// NewRecorder starts a history at start; w may be nil (memory only).
func NewRecorder(start time.Time, w io.Writer) *Recorder {
	r := &Recorder{start: start}
	if w != nil {
		r.w = bufio.NewWriterSize(w, 64<<10)
	}
	return r
}

// Now returns the time since the start of the run, in ns.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Start returns the run's start time.
func (r *Recorder) Start() time.Time { return r.start }

// NewProcess returns a fresh process id.
func (r *Recorder) NewProcess() int { return int(r.procs.Add(1) - 1) }

// Add appends a completed op (its Index is set here) and returns it.
func (r *Recorder) Add(op Op) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = len(r.ops)
	r.ops = append(r.ops, op)
	if r.w != nil && r.err == nil {
		b, err := json.Marshal(op)
		if err == nil {
			b = append(b, '\n')
			_, err = r.w.Write(b)
		}
		r.err = err
	}
	return op
}

// Ops returns a copy of the ops recorded so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Flush writes buffered lines and returns the first write error.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil && r.err == nil {
		r.err = r.w.Flush()
	}
	return r.err
}
