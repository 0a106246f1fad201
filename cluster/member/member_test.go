package member

import "testing"

func TestLive(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		live bool
	}{{Alive, true}, {Suspect, true}, {Failed, false}, {Left, false}, {"", false}} {
		if got := tc.s.Live(); got != tc.live {
			t.Errorf("%q.Live() = %v", tc.s, got)
		}
	}
}
