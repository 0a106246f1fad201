package gateway

import (
	"sync"
	"testing"
)

// TestRequestIDsAreUnique: ids from concurrent requests never repeat, are
// 32 lowercase hex digits, and two gateways (processes) differ in prefix.
func TestRequestIDsAreUnique(t *testing.T) {
	g := newIDGen()
	const workers, each = 8, 20000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf [maxRequestIDLen]byte
			for range each {
				ids[w] = append(ids[w], string(g.appendID(buf[:0])))
			}
		}()
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, list := range ids {
		for _, id := range list {
			if seen[id] {
				t.Fatalf("duplicate request id %s", id)
			}
			seen[id] = true
			if len(id) != 32 || !validRequestID([]byte(id)) {
				t.Fatalf("malformed request id %q", id)
			}
			for _, c := range id {
				if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
					t.Fatalf("request id %q is not lowercase hex", id)
				}
			}
		}
	}
	var a, b [maxRequestIDLen]byte
	if x, y := newIDGen().appendID(a[:0]), newIDGen().appendID(b[:0]); string(x[:16]) == string(y[:16]) {
		t.Fatalf("two generators share the random prefix %s", x[:16])
	}
}

func TestRequestIDDoesNotAllocate(t *testing.T) {
	g := newIDGen()
	var buf [maxRequestIDLen]byte
	if n := testing.AllocsPerRun(100, func() { _ = g.appendID(buf[:0]) }); n != 0 {
		t.Fatalf("%v allocations per id", n)
	}
}
