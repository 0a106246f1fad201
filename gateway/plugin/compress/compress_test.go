package compress

import "testing"

func TestChoose(t *testing.T) {
	cases := []struct{ ae, want string }{
		{"", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"gzip, br", "br"},
		{"gzip;q=1.0, br;q=0.5", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"gzip;q=0", ""},
		{"*", "br"},
		{"identity", ""},
		{"deflate", ""},
	}
	for _, c := range cases {
		if got := choose([]byte(c.ae)); got != c.want {
			t.Errorf("choose(%q) = %q, want %q", c.ae, got, c.want)
		}
	}
}

func TestCompressible(t *testing.T) {
	cases := []struct {
		ct   string
		want bool
	}{
		{"text/html; charset=utf-8", true},
		{"application/json", true},
		{"application/problem+json", true},
		{"image/svg+xml", true},
		{"image/png", false},
		{"application/zip", false},
		{"application/gzip", false},
		{"video/mp4", false},
		{"", false},
	}
	for _, c := range cases {
		if got := Compressible([]byte(c.ct)); got != c.want {
			t.Errorf("Compressible(%q) = %v", c.ct, got)
		}
	}
}
