package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nexus/nexus/registry"
)

func TestCORS(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", CORS: &registry.CORSPolicy{
		Origins: []string{"https://app.example", "https://*.corp.example"}, Headers: []string{"X-Token"},
		Credentials: true, MaxAge: "10m", ExposeHeaders: []string{"X-Upstream"},
	}})
	preflight := func(origin string) resp {
		return e.do("OPTIONS", "", "/x", map[string]string{"Origin": origin, "Access-Control-Request-Method": "PUT"}, nil)
	}
	r := preflight("https://app.example")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		r.header.Get("Access-Control-Allow-Headers") != "X-Token" || r.header.Get("Access-Control-Max-Age") != "600" ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	if up.hits.Load() != 0 {
		t.Fatal("preflight reached the upstream")
	}
	if r := preflight("https://a.corp.example"); r.status != 204 {
		t.Fatalf("wildcard origin preflight: %d", r.status)
	}
	if r := preflight("https://evil.example"); r.status != 403 || r.errorCode() != CodeCORSDenied {
		t.Fatalf("denied preflight: %d %s", r.status, r.body)
	}
	r = e.do("GET", "", "/x", map[string]string{"Origin": "https://app.example"}, nil)
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		r.header.Get("Access-Control-Expose-Headers") != "X-Upstream" {
		t.Fatalf("actual request: %d %v", r.status, r.header)
	}
	r = e.do("GET", "", "/x", map[string]string{"Origin": "https://evil.example"}, nil)
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed origin got CORS headers: %v", r.header)
	}
}

func TestCache(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	var n atomic.Int64
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		switch r.URL.Path {
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		case "/short":
			w.Header().Set("Cache-Control", "max-age=1")
		case "/vary":
			w.Header().Set("Vary", "Accept-Language")
			_, _ = fmt.Fprintf(w, "%s:%d", r.Header.Get("Accept-Language"), v)
			return
		case "/404":
			w.WriteHeader(404)
		}
		_, _ = fmt.Fprintf(w, "v%d", v)
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", Cache: &registry.CachePolicy{TTL: "1m"}})
	get := func(path string, h map[string]string) resp { return e.do("GET", "", path, h, nil) }

	first, second := get("/a", nil), get("/a", nil)
	if first.header.Get("X-Cache") != "MISS" || second.header.Get("X-Cache") != "HIT" || string(first.body) != string(second.body) {
		t.Fatalf("plain: %s %q then %s %q", first.header.Get("X-Cache"), first.body, second.header.Get("X-Cache"), second.body)
	}
	if second.header.Get("Age") == "" || second.header.Get("X-Upstream") != "a" {
		t.Fatalf("hit headers: %v", second.header)
	}
	if h := e.do("HEAD", "", "/a", nil, nil); h.header.Get("X-Cache") != "HIT" {
		t.Fatalf("HEAD not served from cache: %v", h.header)
	}
	if r := get("/a?q=1", nil); r.header.Get("X-Cache") != "MISS" {
		t.Fatal("query string not part of the key")
	}
	for _, path := range []string{"/nostore", "/private", "/404"} {
		a, b := get(path, nil), get(path, nil)
		if b.header.Get("X-Cache") == "HIT" || string(a.body) == string(b.body) {
			t.Errorf("%s was cached", path)
		}
	}
	if r := get("/a", map[string]string{"Cache-Control": "no-cache"}); r.header.Get("X-Cache") != "MISS" {
		t.Error("request no-cache served from cache")
	}
	en1, fr1 := get("/vary", map[string]string{"Accept-Language": "en"}), get("/vary", map[string]string{"Accept-Language": "fr"})
	en2, fr2 := get("/vary", map[string]string{"Accept-Language": "en"}), get("/vary", map[string]string{"Accept-Language": "fr"})
	if string(en1.body) != string(en2.body) || string(fr1.body) != string(fr2.body) || string(en1.body) == string(fr1.body) ||
		en2.header.Get("X-Cache") != "HIT" || !strings.HasPrefix(string(fr2.body), "fr:") {
		t.Errorf("vary: en %q %q fr %q %q", en1.body, en2.body, fr1.body, fr2.body)
	}
	s1 := get("/short", nil)
	if s2 := get("/short", nil); s2.header.Get("X-Cache") != "HIT" {
		t.Fatal("max-age=1 not cached")
	}
	time.Sleep(1100 * time.Millisecond)
	if s3 := get("/short", nil); s3.header.Get("X-Cache") != "MISS" || string(s3.body) == string(s1.body) {
		t.Fatal("max-age=1 served after expiry")
	}
	if v := metricValue(t, e, "nexus_gateway_cache_total", map[string]string{"route": "r", "result": "hit"}); v < 4 {
		t.Errorf("cache hit metric %v", v)
	}
}

func TestCompression(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	text := strings.Repeat("compress me please ", 100)
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/png":
			w.Header().Set("Content-Type", "image/png")
		case "/small":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "tiny")
			return
		default:
			w.Header().Set("Content-Type", "application/json")
		}
		_, _ = io.WriteString(w, text)
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", Compression: &registry.Compression{Enabled: true}})
	r := e.do("GET", "", "/json", map[string]string{"Accept-Encoding": "gzip"}, nil)
	if r.header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("gzip: %v", r.header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if string(plain) != text || len(r.body) >= len(text) {
		t.Fatalf("gzip body: %d bytes compressed, %d plain", len(r.body), len(plain))
	}
	if r := e.do("GET", "", "/json", map[string]string{"Accept-Encoding": "gzip, br"}, nil); r.header.Get("Content-Encoding") != "br" {
		t.Errorf("br preferred: %v", r.header)
	}
	cases := []struct{ path, ae string }{{"/json", ""}, {"/json", "gzip;q=0"}, {"/png", "gzip"}, {"/small", "gzip"}}
	for _, c := range cases {
		if r := e.do("GET", "", c.path, map[string]string{"Accept-Encoding": c.ae}, nil); r.header.Get("Content-Encoding") != "" {
			t.Errorf("%s with %q was compressed", c.path, c.ae)
		}
	}
}

func TestJWT(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	e.instance("web", "a", up.addr(), nil)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	e.config("gateway/jwt/default", map[string]any{"keys": []map[string]any{
		{"alg": "HS256", "secret": "s3cret-s3cret-s3cret"},
		{"alg": "ES256", "kid": "ec1", "public_key": ecPEM},
	}})
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web",
		Auth: &registry.AuthPolicy{Type: "jwt", ForwardClaims: []string{"sub", "tier"}}})

	hs := func(claims jwt.MapClaims, secret string) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		return s
	}
	es := func(claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
		tok.Header["kid"] = "ec1"
		s, _ := tok.SignedString(ecKey)
		return s
	}
	now := time.Now()
	valid := jwt.MapClaims{"sub": "alice", "tier": "gold", "exp": now.Add(time.Hour).Unix()}
	cases := []struct {
		name   string
		token  string
		status int
	}{
		{"valid hs256", hs(valid, "s3cret-s3cret-s3cret"), 200},
		{"valid es256", es(valid), 200},
		{"expired", hs(jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}, "s3cret-s3cret-s3cret"), 401},
		{"not yet valid", hs(jwt.MapClaims{"sub": "alice", "nbf": now.Add(time.Hour).Unix()}, "s3cret-s3cret-s3cret"), 401},
		{"wrong signature", hs(valid, "another-secret-entirely"), 401},
		{"garbage", "not.a.jwt", 401},
		{"none", "", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"X-Jwt-Claim-Tier": "forged"}
			if c.token != "" {
				h["Authorization"] = "Bearer " + c.token
			}
			r := e.do("GET", "", "/x", h, nil)
			if r.status != c.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, c.status)
			}
			if c.status == 401 && (r.errorCode() != CodeUnauthenticated || r.header.Get("WWW-Authenticate") == "") {
				t.Fatalf("401 answer: %v %s", r.header, r.body)
			}
			if c.status == 200 {
				got := up.last.Load()
				if got.Header.Get("X-Jwt-Claim-Sub") != "alice" || got.Header.Get("X-Jwt-Claim-Tier") != "gold" || got.Header.Get("X-Consumer") != "alice" {
					t.Fatalf("forwarded claims: %v", got.Header)
				}
			}
		})
	}
	// Without configuration, JWT routes refuse everything.
	e.route(registry.Route{ID: "other", Paths: []string{"/other/"}, Service: "web", Auth: &registry.AuthPolicy{Type: "jwt"}})
	e.config("gateway/jwt/other", "not an object")
	if r := e.do("GET", "", "/other/x", map[string]string{"Authorization": "Bearer " + hs(valid, "s3cret-s3cret-s3cret")}, nil); r.status != 401 {
		t.Fatalf("misconfigured route: %d %s", r.status, r.body)
	}
}

func TestAPIKeys(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	e.instance("web", "a", up.addr(), nil)
	e.config("gateway/api-keys/alice", "alice-key-0123456789")
	e.config("gateway/api-keys/bob", map[string]any{"key": "bob-key-0123456789ab", "consumer": "bob-co", "routes": []string{"other"}})
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", Auth: &registry.AuthPolicy{Type: "key"}})
	cases := []struct {
		name, key string
		status    int
		consumer  string
	}{
		{"valid", "alice-key-0123456789", 200, "alice"},
		{"unknown", "mallory-key-0123456789", 401, ""},
		{"missing", "", 401, ""},
		{"not for this route", "bob-key-0123456789ab", 403, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"X-Consumer": "forged"}
			if c.key != "" {
				h["X-API-Key"] = c.key
			}
			r := e.do("GET", "", "/", h, nil)
			if r.status != c.status {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if c.status == 200 {
				got := up.last.Load()
				if got.Header.Get("X-Consumer") != c.consumer || got.Header.Get("X-API-Key") != "" {
					t.Fatalf("upstream saw consumer %q key %q", got.Header.Get("X-Consumer"), got.Header.Get("X-API-Key"))
				}
			}
		})
	}
	// Revoking a key in the config takes effect at the next table.
	e.write(func(tx *registry.Tx) { _, _ = tx.ConfigDelete("gateway/api-keys/alice", nil) })
	if r := e.do("GET", "", "/", map[string]string{"X-API-Key": "alice-key-0123456789"}, nil); r.status != 401 {
		t.Fatalf("revoked key: %d", r.status)
	}
}

func TestRateLimitNodeScope(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	e.instance("web", "a", up.addr(), nil)
	// A low rate keeps the offered load far above it even on a loaded
	// machine (the bucket cannot make up for time the clients were starved).
	const rps, burst = 25, 5
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web",
		RateLimit: &registry.RateLimit{RPS: rps, Burst: burst, Key: "header:X-Client"}})

	r := e.do("GET", "", "/", map[string]string{"X-Client": "probe"}, nil)
	if r.header.Get("X-RateLimit-Limit") != strconv.Itoa(burst) || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(burst-1) {
		t.Fatalf("headers: %v", r.header)
	}
	var allowed, limited atomic.Int64
	var wg sync.WaitGroup
	const dur = 3 * time.Second
	start := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < dur {
				r, err := e.try("GET", "", "/", map[string]string{"X-Client": "c1"}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				switch r.status {
				case 200:
					allowed.Add(1)
				case 429:
					if r.header.Get("Retry-After") == "" || r.errorCode() != CodeRateLimited {
						t.Errorf("429 answer: %v %s", r.header, r.body)
					}
					limited.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	want := rps*elapsed + burst
	t.Logf("allowed %d (want %.0f) limited %d in %.2fs", allowed.Load(), want, limited.Load(), elapsed)
	if got := float64(allowed.Load()); got < want*0.9 || got > want*1.1 {
		t.Fatalf("allowed %v, want %.0f±10%%", got, want)
	}
	// Another key has its own bucket.
	if r := e.do("GET", "", "/", map[string]string{"X-Client": "c2"}, nil); r.status != 200 {
		t.Fatalf("second client limited: %d", r.status)
	}
	if v := metricValue(t, e, "nexus_gateway_rate_limited_total", map[string]string{"route": "r"}); v != float64(limited.Load()) {
		t.Errorf("rate_limited metric %v, want %d", v, limited.Load())
	}
}

func signHS(t *testing.T, sub, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
