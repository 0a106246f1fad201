package archive

import (
	"strings"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:s3cret@db:5432/nexus?sslmode=require", "postgres://u:xxxxx@db:5432/nexus?sslmode=require"},
		{"postgres://db/nexus?password=s3cret&sslmode=disable", "postgres://db/nexus?password=xxxxx&sslmode=disable"},
		{"postgres://u:s3cret@[::1", "postgres://u:xxxxx@[::1"},
		{"host=db user=u password=s3cret dbname=n", "host=db user=u password=xxxxx dbname=n"},
		{"host=db password='s3 cret' dbname=n", "host=db password=xxxxx dbname=n"},
		{"postgres://u@db/n", "postgres://u@db/n"},
	} {
		if got := Redact(tc.in); got != tc.want || strings.Contains(got, "s3") {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in       string
		maxConns int
		timeout  time.Duration
		ssl      bool
		err      string
	}{
		{"postgres://u:p@db:5432/n?sslmode=disable", DefaultMaxConns, DefaultConnectTimeout, false, ""},
		{"postgres://u:p@db/n?sslmode=disable&pool_max_conns=9&connect_timeout=2", 9, 2 * time.Second, false, ""},
		{"postgres://u:p@db/n?sslmode=require", DefaultMaxConns, DefaultConnectTimeout, true, ""},
		{"host=db user=u password=p dbname=n sslmode=disable pool_max_conns=3", 3, DefaultConnectTimeout, false, ""},
		{"postgres://u:p@db/n?pool_max_conns=0", 0, 0, false, "pool_max_conns"},
		{"postgres://u:secretpw@db/n?sslmode=bogus", 0, 0, false, "invalid PostgreSQL URL"},
	} {
		pc, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "secretpw") {
				t.Errorf("ParseURL(%q) error = %v, want %q without the password", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if pc.MaxConns != tc.maxConns || pc.Conn.ConnectTimeout != tc.timeout || (pc.Conn.TLSConfig != nil) != tc.ssl {
			t.Errorf("ParseURL(%q) = max %d timeout %v tls %v", tc.in, pc.MaxConns, pc.Conn.ConnectTimeout, pc.Conn.TLSConfig != nil)
		}
		if _, ok := pc.Conn.RuntimeParams["pool_max_conns"]; ok {
			t.Errorf("ParseURL(%q) passes pool_max_conns to the server", tc.in)
		}
	}
}
