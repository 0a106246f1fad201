package tokenbucket

import (
	"testing"
	"time"
)

func TestLimiterRateAndBurst(t *testing.T) {
	cases := []struct {
		name       string
		rps        float64
		burst      int
		demand     float64 // requests per second offered
		wantPerSec float64
	}{
		{"under the limit", 100, 10, 50, 50},
		{"over the limit", 100, 10, 1000, 100},
		{"fractional rate", 0.5, 1, 100, 0.5},
		{"high rate", 10000, 100, 50000, 10000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := New(c.rps, c.burst, 0)
			const secs = 20
			step := time.Duration(float64(time.Second) / c.demand)
			start := int64(1_000_000_000_000)
			allowed := 0
			for now := start; now < start+secs*int64(time.Second); now += int64(step) {
				if l.Allow([]byte("k"), now).Allowed {
					allowed++
				}
			}
			want := c.wantPerSec*secs + float64(c.burst)
			if c.demand <= c.rps {
				want = c.demand * secs
			}
			if got := float64(allowed); got < want*0.97-1 || got > want*1.03+1 {
				t.Fatalf("allowed %v in %ds, want %.0f", got, secs, want)
			}
		})
	}
}

func TestLimiterDecision(t *testing.T) {
	l := New(10, 3, 0)
	now := int64(time.Hour)
	for i, wantRemaining := range []int64{2, 1, 0} {
		d := l.Allow([]byte("k"), now)
		if !d.Allowed || d.Remaining != wantRemaining || d.Limit != 3 {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := l.Allow([]byte("k"), now)
	if d.Allowed || d.RetryAfter != 100*time.Millisecond || d.Reset != 300*time.Millisecond {
		t.Fatalf("refusal: %+v", d)
	}
	if !l.Allow([]byte("other"), now).Allowed {
		t.Fatal("keys share a bucket")
	}
	if !l.Allow([]byte("k"), now+int64(100*time.Millisecond)).Allowed {
		t.Fatal("token not refilled after RetryAfter")
	}
}

func TestLimiterBoundsKeys(t *testing.T) {
	l := New(1, 1, shardCount*4)
	now := int64(time.Hour)
	for i := 0; i < 10000; i++ {
		l.Allow([]byte{byte(i), byte(i >> 8)}, now)
	}
	if n := l.Keys(); n > shardCount*4 {
		t.Fatalf("%d keys tracked, limit %d", n, shardCount*4)
	}
}

func TestLimiterAllocs(t *testing.T) {
	l := New(1e9, 1e9, 0)
	key := []byte("client-1")
	l.Allow(key, 1)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(key, 2) }); n != 0 {
		t.Fatalf("Allow allocates %v times", n)
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	l := New(1e9, 1e9, 0)
	b.RunParallel(func(pb *testing.PB) {
		key := []byte("client-1")
		now := time.Now().UnixNano()
		for pb.Next() {
			l.Allow(key, now)
		}
	})
}
