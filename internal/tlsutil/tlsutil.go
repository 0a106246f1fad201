// Package tlsutil builds the TLS configurations of a Nexus node: server
// certificates that reload from their files (SIGHUP) through an atomic
// pointer, optional client-certificate verification, and client
// configurations that trust a cluster CA (docs/security.md).
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// Reloader serves a certificate and key pair that Reload reads again from
// their files. A failed reload keeps the previous pair.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// NewReloader loads certFile and keyFile (PEM).
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the pair again; on error the previous pair stays in use.
func (r *Reloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	if len(c.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
			c.Leaf = leaf
		}
	}
	r.cert.Store(&c)
	return nil
}

// Certificate returns the current pair.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// GetCertificate is a tls.Config.GetCertificate that returns the current pair.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate that presents
// the current pair (node-to-node calls under mTLS).
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// LoadPool reads a PEM bundle of CA certificates.
func LoadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, errors.New(file + " holds no PEM certificate")
	}
	return p, nil
}

// ServerConfig is a TLS 1.2+ server configuration serving r's pair; with a
// clientCAFile it requires client certificates signed by one of its CAs.
func ServerConfig(r *Reloader, clientCAFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
	if clientCAFile != "" {
		p, err := LoadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = p
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// ClientConfig is a TLS 1.2+ client configuration that trusts the CAs of
// caFile (the system roots when empty) and, when r is not nil, presents r's
// pair as its client certificate.
func ClientConfig(caFile string, r *Reloader) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		p, err := LoadPool(caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = p
	}
	if r != nil {
		c.GetClientCertificate = r.GetClientCertificate
	}
	return c, nil
}
