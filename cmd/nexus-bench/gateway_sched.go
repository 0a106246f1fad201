package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// schedSlowWait is the go_sched_latencies_seconds bucket bound above which a
// goroutine's wait for a CPU counts as slow: the runtime's buckets near 1 ms
// are 0.08 ms and 0.92 ms, and a millisecond wait is what shows in the
// gateway's p99 (docs/gateway.md, "The tail").
const schedSlowWait = 0.0009

// schedHist is the cumulative go_sched_latencies_seconds histogram of an
// agent: bucket upper bounds and counts, in the order of the exposition.
type schedHist struct {
	le    []float64
	count []float64
}

// scrapeSched reads the agent's scheduler latency histogram from its
// /metrics.
func scrapeSched(ctx context.Context, metricsURL string) (schedHist, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", metricsURL, nil)
	if err != nil {
		return schedHist{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return schedHist{}, err
	}
	defer res.Body.Close()
	return parseSchedHist(res.Body)
}

func parseSchedHist(r io.Reader) (schedHist, error) {
	const prefix = `go_sched_latencies_seconds_bucket{le="`
	var h schedHist
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		bound, value, ok := strings.Cut(line, `"} `)
		if !ok {
			continue
		}
		le, err1 := strconv.ParseFloat(bound, 64) // "+Inf" parses too
		n, err2 := strconv.ParseFloat(value, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		h.le = append(h.le, le)
		h.count = append(h.count, n)
	}
	return h, sc.Err()
}

// slowShare is the share of goroutine runs between two scrapes that waited
// longer than schedSlowWait for a CPU, or -1 when it cannot be told.
func slowShare(before, after schedHist) float64 {
	n := len(after.le)
	if n == 0 || len(before.le) != n {
		return -1
	}
	total := after.count[n-1] - before.count[n-1]
	if total <= 0 {
		return -1
	}
	for i, le := range after.le {
		if le >= schedSlowWait {
			fast := after.count[i] - before.count[i]
			return (total - fast) / total
		}
	}
	return -1
}
