// Package tlstest makes throwaway certificate authorities and certificates
// for tests. It is the *testing.T face of package certgen: each helper
// fails the test instead of returning an error.
package tlstest

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/nexus/nexus/internal/tlsutil/certgen"
)

// CA is a test certificate authority. Cert, PEM and Pool come from the
// embedded certgen.CA; Issue, WriteFiles and KeyPair below take the test.
type CA struct{ *certgen.CA }

// Files are the PEM files of one certificate in a test directory.
type Files = certgen.Files

// NewCA makes a self-signed CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := certgen.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{ca}
}

// Issue makes a certificate for cn valid for server and client auth, for
// the DNS names and IPs given in hosts.
func (ca *CA) Issue(t testing.TB, cn string, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := ca.CA.Issue(cn, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// WriteFiles issues a certificate for cn and hosts and writes it, its key
// and the CA to dir as NAME.pem, NAME-key.pem and NAME-ca.pem.
func (ca *CA) WriteFiles(t testing.TB, dir, name, cn string, hosts ...string) Files {
	t.Helper()
	f := Files{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), CA: filepath.Join(dir, name+"-ca.pem")}
	if err := ca.CA.WriteFiles(f, cn, hosts...); err != nil {
		t.Fatal(err)
	}
	return f
}

// KeyPair issues a certificate for cn and hosts as a tls.Certificate.
func (ca *CA) KeyPair(t testing.TB, cn string, hosts ...string) tls.Certificate {
	t.Helper()
	pair, err := ca.CA.KeyPair(cn, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}
