package cluster

import "crypto/tls"

// PeerHTTP is how a node calls the other nodes' admin APIs: leader
// forwarding, read-index requests, relays to the leader and autopilot
// stats. The zero value is plain HTTP. With the admin API on TLS
// (docs/security.md) it is Scheme "https" and a TLS client config that
// trusts the cluster CA and, under mTLS, presents this node's certificate.
type PeerHTTP struct {
	Scheme string // "http" (default) or "https"
	TLS    *tls.Config
}

// URL returns the URL of path on the admin API at addr (HOST:PORT).
func (p PeerHTTP) URL(addr, path string) string { return p.url(addr, path) }

func (p PeerHTTP) url(addr, path string) string {
	s := p.Scheme
	if s == "" {
		s = "http"
	}
	return s + "://" + addr + path
}
