package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nexus/nexus/registry"
)

// prober runs HTTP and TCP checks.
type prober struct {
	client *http.Client
}

func newProber() prober {
	return prober{client: &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DisableKeepAlives:   true, // a check must see a fresh connection work
			MaxIdleConnsPerHost: -1,
		},
		// Redirects are followed like a browser would; the final status counts.
	}}
}

// probe runs one check: HTTP 2xx passing, 429 warning, anything else or a
// timeout critical; TCP connect passing, else critical.
func (p prober) probe(ctx context.Context, def registry.Check, timeout time.Duration) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch def.Kind {
	case registry.CheckHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, def.HTTP, nil)
		if err != nil {
			return registry.StatusCritical, "bad check URL: " + err.Error()
		}
		req.Header.Set("User-Agent", "nexus-health-check")
		resp, err := p.client.Do(req)
		if err != nil {
			return registry.StatusCritical, fmt.Sprintf("GET %s: %v", def.HTTP, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		out := fmt.Sprintf("HTTP GET %s: %d %s", def.HTTP, resp.StatusCode, http.StatusText(resp.StatusCode))
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return registry.StatusPassing, out
		case resp.StatusCode == http.StatusTooManyRequests:
			return registry.StatusWarning, out
		}
		return registry.StatusCritical, out
	case registry.CheckTCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", def.TCP)
		if err != nil {
			return registry.StatusCritical, fmt.Sprintf("TCP connect %s: %v", def.TCP, err)
		}
		conn.Close()
		return registry.StatusPassing, fmt.Sprintf("TCP connect %s: success", def.TCP)
	}
	return registry.StatusCritical, "unknown check kind " + def.Kind
}
