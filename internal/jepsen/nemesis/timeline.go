package nemesis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"
)

// Event kinds.
const (
	EventStart = "start" // a fault began (ID pairs it with its end)
	EventEnd   = "end"   // the fault was healed
	EventError = "error" // injecting or healing failed
	EventNote  = "note"  // anything else worth knowing
	EventLeave = "leave" // a node's leave, from Time to End: it may deregister its instances
)

// Event is one line of the nemesis timeline.
type Event struct {
	Time    int64    `json:"time"`          // ns since the run started
	End     int64    `json:"end,omitempty"` // EventLeave: when the leave call returned
	Kind    string   `json:"kind"`
	ID      int      `json:"id,omitempty"` // fault number (start/end/error)
	Nemesis string   `json:"nemesis,omitempty"`
	Detail  string   `json:"detail,omitempty"`
	Nodes   []string `json:"nodes,omitempty"`
	Wall    string   `json:"wall"` // wall-clock time, to match node logs
}

// Timeline records nemesis events and streams them as JSON lines. Safe for
// concurrent use.
type Timeline struct {
	start time.Time
	mu    sync.Mutex
	evs   []Event
	w     io.Writer
}

// NewTimeline starts a timeline at start; w may be nil.
func NewTimeline(start time.Time, w io.Writer) *Timeline {
	return &Timeline{start: start, w: w}
}

// Now is the time since the start in ns.
func (t *Timeline) Now() int64 { return int64(time.Since(t.start)) }

// Add records ev; a zero Time means now.
func (t *Timeline) Add(ev Event) {
	if ev.Time == 0 {
		ev.Time = t.Now()
	}
	ev.Wall = t.start.Add(time.Duration(ev.Time)).UTC().Format(time.RFC3339Nano)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evs = append(t.evs, ev)
	if t.w != nil {
		b, _ := json.Marshal(ev)
		_, _ = t.w.Write(append(b, '\n'))
	}
}

// Note records a note.
func (t *Timeline) Note(nemesis, detail string) {
	t.Add(Event{Kind: EventNote, Nemesis: nemesis, Detail: detail})
}

// Events returns a copy of the events.
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Event(nil), t.evs...)
}

// Window is a period during which a fault was active.
type Window struct {
	Nemesis string
	Detail  string
	Start   int64
	End     int64
}

// Windows pairs start and end events; a fault never healed lasts until
// until.
func (t *Timeline) Windows(until int64) []Window { return WindowsOf(t.Events(), until) }

// WindowsOf pairs the start and end events of evs.
func WindowsOf(evs []Event, until int64) []Window {
	open := map[int]Window{}
	var out []Window
	for _, ev := range evs {
		switch ev.Kind {
		case EventStart:
			open[ev.ID] = Window{Nemesis: ev.Nemesis, Detail: ev.Detail, Start: ev.Time}
		case EventEnd:
			if w, ok := open[ev.ID]; ok {
				w.End = ev.Time
				out = append(out, w)
				delete(open, ev.ID)
			}
		}
	}
	for _, w := range open {
		w.End = until
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// Leaves returns the leave events.
func (t *Timeline) Leaves() []Event { return LeavesOf(t.Events()) }

// LeavesOf returns the leave events of evs.
func LeavesOf(evs []Event) []Event {
	var out []Event
	for _, ev := range evs {
		if ev.Kind == EventLeave {
			out = append(out, ev)
		}
	}
	return out
}

// ReadTimeline parses a nemesis.jsonl file.
func ReadTimeline(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Event
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		out = append(out, ev)
	}
	return out, nil
}
