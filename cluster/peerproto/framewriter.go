package peerproto

import (
	"net"
	"sync"
	"time"
)

// frameWriter writes frames to a connection from many goroutines in as few
// writes as it can: a goroutine that adds a frame while another one is
// writing leaves it there, and the writing goroutine sends everything added
// meanwhile in its next write (group commit, as the Raft log does with
// entries). Under 64 concurrent forwarded writes one write(2) carries many
// frames.
//
// Frames are numbered by batch: the frames of one write share a number,
// and started is the number of the last batch handed to the connection. A
// frame whose batch is at most started may have reached the peer; a later
// one surely did not (stream.fail sorts the calls in flight so).
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration // each write's deadline

	mu      sync.Mutex
	out     []byte // the next batch
	spare   []byte
	started uint64 // the last batch handed to conn.Write
	writing bool
	err     error // set once: the connection is closed, nothing is added
}

// maxSpare bounds the buffer kept between writes.
const maxSpare = 1 << 20

// add appends a frame (build appends it to the batch it is given, whose
// number it is told) and writes the batch unless another goroutine is
// writing. It returns an error, without adding anything, once the writer
// has failed.
func (w *frameWriter) add(build func(b []byte, batch uint64) []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.out = build(w.out, w.started+1)
	if w.writing {
		return nil
	}
	w.writing = true
	for len(w.out) > 0 && w.err == nil {
		b := w.out
		w.out = w.spare[:0]
		w.spare = nil
		w.started++
		w.mu.Unlock()
		if w.timeout > 0 {
			_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		}
		_, err := w.conn.Write(b)
		w.mu.Lock()
		if cap(b) <= maxSpare {
			w.spare = b[:0]
		}
		if err != nil {
			w.failLocked(err)
		}
	}
	w.writing = false
	return nil
}

// fail closes the connection (once) and returns the number of the last
// batch that may have reached the peer; nothing is written after it.
func (w *frameWriter) fail(err error) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failLocked(err)
	return w.started
}

func (w *frameWriter) failLocked(err error) {
	if w.err != nil {
		return
	}
	w.err = err
	w.out = nil
	_ = w.conn.Close()
}
