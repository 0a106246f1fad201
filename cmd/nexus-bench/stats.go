package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// percentile returns the exact nearest-rank percentile p (0 < p <= 100) of
// sorted latencies: the smallest value such that at least p% of the samples
// are <= it. It returns 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// median returns the median of v (the mean of the two middle values for an
// even count, 0 for none); v need not be sorted and is not changed.
func median[T time.Duration | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := append([]T(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// keyFor returns the 8-byte config key number n of a key space named by
// the letter prefix: prefix + 7 lowercase hex digits (n modulo 16^7).
func keyFor(prefix byte, n uint64) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	b[0] = prefix
	for i := 7; i >= 1; i-- {
		b[i] = digits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// valueSize is the size of a write's body: a JSON string of this many bytes
// including its two quotes.
const valueSize = 256

// valueFor returns a valueSize-byte JSON string (quotes included) whose
// content depends on seed, so that bodies are not all identical.
func valueFor(seed uint64) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, valueSize)
	b[0], b[valueSize-1] = '"', '"'
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := 1; i < valueSize-1; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = alphabet[x%uint64(len(alphabet))]
	}
	return b
}

// parseClients parses "1,16,64" into client counts.
func parseClients(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad client count %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no client counts in %q", s)
	}
	return out, nil
}

// PhaseResult is one measured load phase.
type PhaseResult struct {
	Phase     string  `json:"phase"` // "config write", "local read", "consistent read"
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"seconds"`
	Ops       int     `json:"ops"` // successful operations
	Errors    int     `json:"errors"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// CPUPerOpUs is the CPU time of the three nodes (user+system) per
	// successful operation of the phase, in µs.
	CPUPerOpUs   float64  `json:"cpu_us_per_op,omitempty"`
	NA           bool     `json:"na,omitempty"` // not supported by the agent
	Note         string   `json:"note,omitempty"`
	ErrorSamples []string `json:"error_samples,omitempty"`
}

// FailoverRound is one kill -9 of the leader.
type FailoverRound struct {
	Round     int     `json:"round"`
	Killed    string  `json:"killed"`
	NewLeader string  `json:"new_leader,omitempty"`
	Ms        float64 `json:"ms"` // kill until the first acknowledged write sent after it
	Error     string  `json:"error,omitempty"`
}

// Report is everything nexus-bench raft measured.
type Report struct {
	Started          time.Time       `json:"started"`
	Nodes            int             `json:"nodes"`
	DurationPerPhase string          `json:"duration_per_phase"`
	ValueBytes       int             `json:"value_bytes"`
	Phases           []PhaseResult   `json:"phases"`
	Failover         []FailoverRound `json:"failover"`
	FailoverMedianMs float64         `json:"failover_median_ms,omitempty"`
}

// summarize turns raw samples into a PhaseResult. lat holds the latencies of
// successful operations (it is sorted in place).
func summarize(phase string, clients int, elapsed time.Duration, lat []time.Duration, errors int) PhaseResult {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := PhaseResult{Phase: phase, Clients: clients, Seconds: elapsed.Seconds(), Ops: len(lat), Errors: errors}
	if elapsed > 0 {
		r.OpsPerSec = float64(len(lat)) / elapsed.Seconds()
	}
	r.P50Ms = ms(percentile(lat, 50))
	r.P99Ms = ms(percentile(lat, 99))
	if len(lat) > 0 {
		r.MaxMs = ms(lat[len(lat)-1])
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

// formatMarkdown renders the report as markdown tables.
func formatMarkdown(r Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## nexus-bench raft: %d nodes, %s per phase, %d-byte values\n\n", r.Nodes, r.DurationPerPhase, r.ValueBytes)
	b.WriteString("| phase | clients | ops/s | p50 | p99 | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, p := range r.Phases {
		if p.NA {
			fmt.Fprintf(&b, "| %s | %d | n/a | n/a | n/a | n/a |\n", p.Phase, p.Clients)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f | %s | %s | %d |\n", p.Phase, p.Clients, p.OpsPerSec, fmtMs(p.P50Ms), fmtMs(p.P99Ms), p.Errors)
	}
	var notes []string
	for _, p := range r.Phases {
		if p.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s (%d clients): %s", p.Phase, p.Clients, p.Note))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	if len(r.Failover) > 0 {
		b.WriteString("\n| failover round | killed leader | new leader | kill → first acknowledged write |\n")
		b.WriteString("|---:|---|---|---:|\n")
		for _, f := range r.Failover {
			if f.Error != "" {
				fmt.Fprintf(&b, "| %d | %s | %s | failed: %s |\n", f.Round, f.Killed, f.NewLeader, strings.ReplaceAll(f.Error, "|", "/"))
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", f.Round, f.Killed, f.NewLeader, fmtMs(f.Ms))
		}
		fmt.Fprintf(&b, "| median | | | %s |\n", fmtMs(r.FailoverMedianMs))
	}
	return b.String()
}

// failoverMedian is the median over successful rounds (0 if none).
func failoverMedian(rounds []FailoverRound) float64 {
	var ds []time.Duration
	for _, f := range rounds {
		if f.Error == "" {
			ds = append(ds, time.Duration(f.Ms*float64(time.Millisecond)))
		}
	}
	return ms(median(ds))
}
